// The precision a model stores its matmul and conv weights in (issue 19 §1).
// 'f16' halves their GPU memory: matmul and the conv kernels read them as
// halves and widen them to f32 (f32 accumulation; activations, biases, norms
// and softmax stay f32).
// Adapters without `shader-f16` cannot hold f16 tensors: there a request for
// f16 falls back to f32, with no error, and the reason in `note`.

import type { Gpu } from '../device.js';

export type WeightDtype = 'f32' | 'f16';

export interface WeightDtypeChoice {
  /** What the weights are stored as. */
  dtype: WeightDtype;
  /** Why that differs from what was asked (the f32 fallback); undefined when it does not. */
  note?: string;
}

/**
 * The weight dtype for `requested` on this adapter. The default is f32 on
 * every adapter for now. On lavapipe f16 weights were faster in CPU time in
 * every run (bench/cases/matmul.js "f16 B", clip.js and mobilesam.js "f16
 * weights": models 1.07–1.37×), but only ever measured on a heavily loaded
 * machine, no GPU has measured them (issue 19 §2), and f16 moves every model
 * output by ~1e-4 relative: the switch waits for a quiet-machine run (see
 * the README's Performance section).
 */
export function chooseWeightDtype(gpu: Gpu, requested: WeightDtype | undefined, model: string): WeightDtypeChoice {
  if (requested === undefined || requested === 'f32') return { dtype: 'f32' };
  if (requested !== 'f16') throw new Error(`${model}: dtype must be 'f32' or 'f16', got ${JSON.stringify(requested)}`);
  if (!gpu.hasF16) {
    return { dtype: 'f32', note: `${model}: dtype 'f16' asked for, but the adapter (${gpu.adapter.description || gpu.adapter.name}) lacks shader-f16: weights stay f32` };
  }
  return { dtype: 'f16' };
}
