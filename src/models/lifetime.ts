// What the model classes share about their GPU resources' lifetime: the
// disposed state their calls check, and tensors they own on the caller's
// behalf.

import type { Tensor } from '../tensor.js';

/** A model's disposal: `check(op)` throws "`owner`.`op`: `what` was disposed" once `end()` ran. */
export class Lifetime {
  private ended = false;

  constructor(
    private readonly owner: string,
    private readonly what: string,
  ) {}

  get disposed(): boolean {
    return this.ended;
  }

  end(): void {
    this.ended = true;
  }

  check(op: string): void {
    if (this.ended) throw new Error(`${this.owner}.${op}: ${this.what} was disposed`);
  }
}

/** Disposes every tensor of `tensors` and empties it. */
export function disposeAll(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
  tensors.clear();
}

/**
 * The low-resolution masks of a predictor's last predictBatch: returned to
 * the caller to read, owned by the predictor until the next batch or its
 * disposal.
 */
export class BatchMasks {
  private masks: Tensor | undefined;

  /** Releases the previous batch's masks, then runs `decode` and keeps its masks. */
  async replace<T extends { lowResMasks: Tensor }>(decode: () => Promise<T>): Promise<T> {
    this.release();
    const out = await decode();
    this.masks = out.lowResMasks;
    return out;
  }

  release(): void {
    this.masks?.dispose();
    this.masks = undefined;
  }
}
