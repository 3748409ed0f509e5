// A training run on disk:
//   RUN/config.json              what was trained and how (RunConfig)
//   RUN/checkpoint.safetensors   the trainable parameters, the AdamW state
//                                (`opt.<param>.m|v`) and, in the metadata,
//                                the progress (epoch, step, losses) — ONE file,
//                                written atomically, so parameters, optimizer
//                                state and step counter can never disagree
//   RUN/state.json               a readable copy of the progress
//   RUN/head.json, head.safetensors, clip.safetensors
//                                (clip backbone) the head exported for the
//                                web demo and apps: exportHead below
// `train` on a run dir whose config matches (the epoch count may grow)
// resumes from the checkpoint.

import { copyFile, mkdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { bytesSource, openSafetensors, writeSafetensors, type SafetensorsEntry } from '../io/safetensors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Tensor } from '../tensor.js';
import type { OptimizerState } from '../train/optimizer.js';
import { WORK_SIDE, type FocusMode } from './focus.js';
import { HEAD_FORMAT, HEAD_VERSION, type HeadSpec } from './head.js';

export interface RunConfig {
  version: 1;
  backbone: 'clip' | 'sam-encoder';
  focus: FocusMode;
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
const HEAD_JSON = 'head.json';
const HEAD_TENSORS = 'head.safetensors';
const HEAD_CLIP = 'clip.safetensors';

export async function readRunConfig(run: string): Promise<RunConfig | null> {
  let text: string;
  try {
    text = await readFile(join(run, CONFIG), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return JSON.parse(text) as RunConfig;
  } catch (e) {
    throw new Error(`run ${run}: ${CONFIG} is not valid JSON (${(e as Error).message})`);
  }
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

export async function writeCheckpoint(run: string, ckpt: Checkpoint): Promise<void> {
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
  const file = await openSafetensors(bytesSource(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)), path);
  const meta = file.metadata;
  if (!meta.progress || !meta.optimizer) throw new Error(`run ${run}: ${CHECKPOINT} lacks its progress metadata; it was not written by medfocus train`);
  const params = new Map<string, { shape: number[]; data: Float32Array }>();
  const slots: OptimizerState['slots'] = {};
  for (const name of file.tensors.keys()) {
    const data = Float32Array.from(await file.read(name));
    if (name.startsWith('param.')) params.set(name.slice(6), { shape: [...file.info(name).shape], data });
    else if (name.startsWith('opt.')) {
      const dot = name.lastIndexOf('.');
      const param = name.slice(4, dot);
      (slots[param] ??= {})[name.slice(dot + 1)] = data;
    }
  }
  const progress = JSON.parse(meta.progress) as RunProgress;
  const optimizer: OptimizerState = { optimizer: meta.optimizer as OptimizerState['optimizer'], step: Number(meta.optimizerStep), slots };
  await file.close();
  return { params, optimizer, progress };
}

/**
 * Exports a CLIP run's head for the web (src/medfocus/head.ts reads it):
 * RUN/head.safetensors (the trained parameters, no optimizer state),
 * RUN/head.json, and RUN/clip.safetensors, a symbolic link to the CLIP
 * weights (a copy where links are refused), so that the run directory is all
 * a page needs: `node scripts/serve.js --run RUN` serves it at /run/.
 */
export async function exportHead(run: string, config: RunConfig): Promise<void> {
  if (config.backbone !== 'clip' || !config.weights) throw new Error(`export: run ${run} has backbone ${config.backbone}; the web head is a CLIP head`);
  const ckpt = await readCheckpoint(run);
  if (!ckpt) throw new Error(`export: run ${run} has no checkpoint yet`);
  const entries: SafetensorsEntry[] = [...ckpt.params].map(([name, p]) => ({ name, dtype: 'F32', shape: p.shape, data: p.data }));
  await writeFileAtomic(join(run, HEAD_TENSORS), writeSafetensors(entries));
  const clipLink = join(run, HEAD_CLIP);
  const tmp = `${clipLink}.tmp-${process.pid}`;
  await rm(tmp, { force: true });
  try {
    await symlink(resolve(config.weights), tmp);
  } catch {
    await copyFile(config.weights, tmp);
  }
  await rename(tmp, clipLink);
  const spec: HeadSpec = {
    format: HEAD_FORMAT,
    version: HEAD_VERSION,
    classes: config.classes,
    clip: HEAD_CLIP,
    tensors: HEAD_TENSORS,
    prompts: config.prompts,
    deep: config.deep ?? 0,
    workSide: WORK_SIDE,
    focus: { mode: config.focus, strength: config.strength, overlayAlpha: config.overlayAlpha },
  };
  await writeFileAtomic(join(run, HEAD_JSON), `${JSON.stringify(spec, null, 2)}\n`);
}
