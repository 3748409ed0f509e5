// Per-adapter variant selection. Kernels stay written for real GPUs (tiles in
// workgroup memory, coalesced loads); which tile shape, vector width or
// workgroup size is fastest differs between lavapipe, SwiftShader and real
// GPUs, so a short timed sweep picks one per adapter and problem class.
// Choices are cached per device, and optionally in a persistent store that
// the application provides (a JSON file in Node, localStorage in a browser).
//
// A variant is chosen only after it computed the right numbers on the adapter
// at hand: the sweep times every candidate, then runs the fastest through the
// kernel's check (a small random problem compared with a float64 CPU
// reference, see referenceMismatch) and, if it gives wrong numbers, logs and
// skips it and tries the next fastest. A driver bug, a subgroup size the
// kernel did not expect or a race that only shows on one GPU then costs speed,
// never correctness.

import type { Gpu } from '../device.js';
import { seededRandom } from '../util/random.js';

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
  /** Variants that ran but failed their check (wrong numbers on this adapter), with why; never chosen. */
  rejected: Record<string, string>;
}

/**
 * Checks `variant` on this adapter: runs it on a small problem and returns
 * why its output is wrong (e.g. referenceMismatch's text), or undefined when
 * it is right. A throw counts as wrong.
 */
export type VariantCheck = (variant: string) => Promise<string | undefined>;

export interface SweepOptions {
  /** Required: a variant is remembered only after this passes for it. */
  check: VariantCheck;
  /** Timed runs per variant after one warm-up (default 3). */
  runs?: number;
}

/** Where the sweep reports a rejected variant (default console.warn); tests capture it. */
let tuningLog: (message: string) => void = (m) => console.warn(m);

/** Replaces the log of rejected variants (undefined restores console.warn). */
export function setTuningLog(log: ((message: string) => void) | undefined): void {
  tuningLog = log ?? ((m) => console.warn(m));
}

/**
 * Test hook: when it returns true for (key, variant), compareVariantOutput
 * sees that variant's output with one element changed, as if the variant
 * computed a wrong number on this adapter. Undefined (the default) is off.
 */
let faultHook: ((key: string, variant: string) => boolean) | undefined;

export function setTuningFaultForTests(hook: ((key: string, variant: string) => boolean) | undefined): void {
  faultHook = hook;
}

/**
 * Times `run(variant)` for each variant (1 warm-up, then `runs` timed runs to
 * queue completion), then remembers for `key` on this device the fastest one
 * whose `check` passes. `run` records the work; the sweep submits and waits.
 * Variants that throw are skipped; variants that fail the check are logged,
 * listed in `rejected` and skipped; if none is left, it throws.
 */
export async function sweepVariants(gpu: Gpu, key: string, variants: readonly string[], run: (variant: string) => void, options: SweepOptions): Promise<SweepResult> {
  if (variants.length === 0) throw new Error(`sweepVariants(${key}): no variants given`);
  const { check, runs = 3 } = options;
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
  const ran = variants.filter((v) => Number.isFinite(times[v])).sort((a, b) => times[a] - times[b]);
  if (ran.length === 0) throw new Error(`sweepVariants(${key}): every variant failed to run (${variants.join(', ')})`);
  const rejected: Record<string, string> = {};
  let best: string | undefined;
  for (const v of ran) {
    let problem: string | undefined;
    try {
      problem = await check(v);
    } catch (e) {
      problem = `its check threw: ${(e as Error).message}`;
    }
    if (problem === undefined) {
      best = v;
      break;
    }
    rejected[v] = problem;
    tuningLog(`medfocus tuning ${key}: variant ${v} gives wrong numbers on ${gpu.adapter.description || gpu.adapter.name} (${problem}); skipped`);
  }
  if (best === undefined) {
    throw new Error(`sweepVariants(${key}): every variant failed (threw or gave wrong numbers): ${Object.entries(rejected).map(([v, why]) => `${v}: ${why}`).join('; ')}`);
  }
  let map = chosen.get(gpu);
  if (!map) chosen.set(gpu, (map = new Map()));
  map.set(key, best);
  store?.set(`${gpu.adapter.name}|${key}`, best);
  return { best, times, rejected };
}

/** Relative tolerance of the variant checks: f32 kernels on small problems are ~1e-6 off a float64 reference. */
export const VARIANT_CHECK_TOLERANCE = 1e-4;

/**
 * Why `got` (a kernel's f32 output) is not `want` (a float64 reference), or
 * undefined when every element is within `tol` · max|want| of it (NaN and
 * Infinity never are). Wrong variants (a race, a bad tile edge, an
 * unexpected subgroup size) are off by a sizeable part of the output's
 * scale, far above f32 rounding.
 */
export function referenceMismatch(got: ArrayLike<number>, want: ArrayLike<number>, tol = VARIANT_CHECK_TOLERANCE): string | undefined {
  if (got.length !== want.length) return `${got.length} outputs instead of ${want.length}`;
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  const bound = tol * scale;
  let worst = -1;
  let worstErr = 0;
  let bad = 0;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= bound)) {
      bad++;
      if (worst < 0 || !(err <= worstErr)) [worst, worstErr] = [i, err];
    }
  }
  if (bad === 0) return undefined;
  return `${bad} of ${got.length} values off by more than ${bound.toExponential(1)}; worst at ${worst}: ${got[worst]} instead of ${want[worst]}`;
}

/** A variant check's comparison: referenceMismatch, after the test hook (setTuningFaultForTests) had its say. */
export function compareVariantOutput(key: string, variant: string, got: Float32Array, want: ArrayLike<number>, tol = VARIANT_CHECK_TOLERANCE): string | undefined {
  if (faultHook?.(key, variant) && got.length > 0) {
    got = Float32Array.from(got);
    got[got.length >> 1] += 1 + Math.abs(got[got.length >> 1]);
  }
  return referenceMismatch(got, want, tol);
}

/** Random values in [-1, 1) from a fixed seed: the inputs of the variant checks. */
export function checkValues(n: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: n }, () => next() * 2 - 1);
}
