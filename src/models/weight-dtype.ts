// The precision a model stores its matmul and conv weights in (issue 19 §1).
// 'f16' halves their GPU memory: matmul and the conv kernels read them as
// halves and widen them to f32 (f32 accumulation; activations, biases, norms
// and softmax stay f32).
// Adapters without `shader-f16` cannot hold f16 tensors: there a request for
// f16 falls back to f32, with no error, and the reason in `note`. With no
// request, a model takes f16 where the adapter has shader-f16 (faster, within
// each model's tested tolerance; see chooseWeightDtype) and f32 elsewhere.

import type { Gpu } from '../device.js';

export type WeightDtype = 'f32' | 'f16';

export interface WeightDtypeChoice {
  /** What the weights are stored as. */
  dtype: WeightDtype;
  /** Why that differs from what was asked (the f32 fallback); undefined when it does not. */
  note?: string;
}

/**
 * The weight dtype for `requested` on this adapter. The default (undefined)
 * is f16 where the adapter has shader-f16, else f32 (no note: nothing was
 * asked for). Measured on lavapipe with the machine otherwise idle
 * (bench/run.js --filter "f16 weights", 2026-12-08): the CLIP ViT-B/16 image
 * tower 1.51× and the MobileSAM encoder at 1024² 1.28× faster with f16
 * weights, in wall and CPU time alike, each model within its tested f16
 * tolerance (~1e-4 relative). On GPUs f16 weights halve the bytes a
 * weight-bound matmul reads; no GPU has measured ours yet (bench/gpu.sh).
 * Callers that must reproduce f32 results (the CLI's runs, web heads, the
 * golden-fixture tests) ask for 'f32'.
 */
export function chooseWeightDtype(gpu: Gpu, requested: WeightDtype | undefined, model: string): WeightDtypeChoice {
  if (requested === undefined) return { dtype: gpu.hasF16 ? 'f16' : 'f32' };
  if (requested === 'f32') return { dtype: 'f32' };
  if (requested !== 'f16') throw new Error(`${model}: dtype must be 'f32' or 'f16', got ${JSON.stringify(requested)}`);
  if (!gpu.hasF16) {
    return { dtype: 'f32', note: `${model}: dtype 'f16' asked for, but the adapter (${gpu.adapter.description || gpu.adapter.name}) lacks shader-f16: weights stay f32` };
  }
  return { dtype: 'f16' };
}
