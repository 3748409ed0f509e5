// What the commands of one medfocus process share: the GPU, the disk cache,
// the models loaded so far (each once, on first use) and the output lines.

import type { Gpu } from '../device.js';
import type { ClipModel } from '../models/clip/model.js';
import type { DiskCache } from './cache.js';
import type { EmbeddingSegmenter, Segmenter } from '../models/sam/segmenter.js';
import type { WeightDtype } from '../models/weight-dtype.js';

export interface Session {
  gpu: Gpu;
  cache: DiskCache;
  clip?: ClipModel;
  /** MobileSAM, loaded on the first cache miss and shared by every pipeline of the session (one input side per session). */
  sam?: Promise<EmbeddingSegmenter>;
  /** The weight dtype `sam` was asked for. */
  samDtype?: WeightDtype;
  /** SAM2 checkpoints by path: content hash (cache keys) and the segmenter, loaded on the first cache miss. */
  sam2?: Map<string, { id: string; source?: Promise<Segmenter> }>;
  log: (s: string) => void;
  err: (s: string) => void;
  /** What the preprocessing of this process cost (cache misses only), summed over its pipelines. */
  prep?: PreprocessingCost;
}

/** Preprocessing cost by stage: MobileSAM encoder passes (raw and overlaid images) and automatic-mask sets, with their seconds. */
export interface PreprocessingCost {
  encoderPasses: number;
  encoderSeconds: number;
  maskSets: number;
  maskSeconds: number;
}

/** Frees the models the session loaded; one whose load failed has nothing to free. */
export async function closeSession(session: Session): Promise<void> {
  session.clip?.dispose();
  (await session.sam?.catch(() => undefined))?.dispose();
  for (const entry of session.sam2?.values() ?? []) (await entry.source?.catch(() => undefined))?.dispose();
}
