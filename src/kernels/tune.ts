// Per-adapter variant selection. Kernels stay written for real GPUs (tiles in
// workgroup memory, coalesced loads); which tile shape, vector width or
// workgroup size is fastest differs between lavapipe, SwiftShader and real
// GPUs, so a short timed sweep picks one per adapter and problem class.
// Choices are cached per device, and optionally in a persistent store that
// the application provides (a JSON file in Node, localStorage in a browser).

import type { Gpu } from '../device.js';

export interface TuningStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

let store: TuningStore | undefined;

/** Lets choices survive the process: keys include the adapter name. */
export function setTuningStore(s: TuningStore | undefined): void {
  store = s;
}

const chosen = new WeakMap<Gpu, Map<string, string>>();

/** The variant chosen earlier for `key` on this device, if any. */
export function tunedVariant(gpu: Gpu, key: string): string | undefined {
  return chosen.get(gpu)?.get(key) ?? store?.get(`${gpu.adapter.name}|${key}`);
}

export interface SweepResult {
  best: string;
  /** Median milliseconds per variant; Infinity for variants that threw. */
  times: Record<string, number>;
}

/**
 * Times `run(variant)` for each variant (1 warm-up, then `runs` timed runs to
 * queue completion) and remembers the fastest for `key` on this device.
 * `run` records the work; the sweep submits and waits.
 */
export async function sweepVariants(gpu: Gpu, key: string, variants: readonly string[], run: (variant: string) => void, runs = 3): Promise<SweepResult> {
  if (variants.length === 0) throw new Error(`sweepVariants(${key}): no variants given`);
  const times: Record<string, number> = {};
  for (const v of variants) {
    try {
      run(v);
      await gpu.sync();
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        run(v);
        await gpu.sync();
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      times[v] = samples[Math.floor(samples.length / 2)];
    } catch {
      times[v] = Infinity;
    }
  }
  const best = variants.reduce((a, b) => (times[b] < times[a] ? b : a));
  if (!Number.isFinite(times[best])) throw new Error(`sweepVariants(${key}): every variant failed`);
  let map = chosen.get(gpu);
  if (!map) chosen.set(gpu, (map = new Map()));
  map.set(key, best);
  store?.set(`${gpu.adapter.name}|${key}`, best);
  return { best, times };
}
