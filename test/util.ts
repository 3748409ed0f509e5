// Shared test helpers: the suite every test file uses (hooks that cannot fail
// silently), the one way to skip, paths into ../shared, a seeded RNG,
// closeness checks with stated tolerances, an assertion that an op throws a
// useful Error, and a per-suite GPU device.
//
// Contract with scripts/test.js, which counts what uvu cannot say by itself:
// - uvu 0.5.6 swallows an Error thrown by a `before` hook (its runner returns
//   from a `finally`), so no test runs and the file exits 0. `suite` here wraps
//   every hook: a throw prints HOOK_FAILED_MARK and the error, and the runner
//   fails the file (it also fails any file where passed < registered).
// - uvu has no skip from inside a test: `skip(reason)` prints SKIP_MARK and the
//   reason, and the runner counts that test as skipped, not passed. A skip is
//   allowed only where ../shared or Chromium is absent, and never under CI=true
//   (CI has both), where it throws instead. `skipForAdapter(reason)` is the
//   one other skip: a test of an optional adapter feature that the adapter
//   in front of it lacks (shader-f16 in Chromium's SwiftShader), which no
//   set-up can supply; counted and listed the same, allowed under CI.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite as uvuSuite, type Callback, type Test } from 'uvu';
import { getDevice, type Gpu } from '../src/node.js';
import { seededRandom } from '../src/util/random.js';
import type { DecodedImage } from '../src/io/image.js';
import type { Tensor } from '../src/tensor.js';

/** Line prefixes scripts/test.js counts (each on its own line of stdout). */
export const SKIP_MARK = '#medfocus-skip: ';
export const HOOK_FAILED_MARK = '#medfocus-hook-failed: ';

/**
 * A uvu suite whose hooks report their failure: the error is printed after
 * HOOK_FAILED_MARK (the runner then fails the file) and re-thrown. Test files
 * import `suite` from here, never from 'uvu' (the runner refuses that).
 */
export function suite<S extends object = Record<string, never>>(name: string, state: S = {} as S): Test<S> {
  const s = uvuSuite<S>(name, state);
  const guard = (kind: string, register: (fn: Callback<S>) => void) => (fn: Callback<S>) =>
    register(async (ctx) => {
      try {
        await fn(ctx);
      } catch (e) {
        const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
        process.stdout.write(`\n${HOOK_FAILED_MARK}suite "${name}", ${kind} hook: ${text.replace(/\n/g, '\n    ')}\n`);
        throw e;
      }
    });
  const before = Object.assign(guard('before', s.before), { each: guard('before.each', s.before.each) });
  const after = Object.assign(guard('after', s.after), { each: guard('after.each', s.after.each) });
  return Object.assign(s, { before, after }) as Test<S>;
}

/**
 * Marks the running test as skipped (the caller returns right after). Only for
 * a missing ../shared or a missing Chromium; under CI=true it throws, since CI
 * has both and every test must run there.
 */
export function skip(reason: string): void {
  if (process.env.CI) throw new Error(`CI must run every test, but this one would skip: ${reason}`);
  process.stdout.write(`\n${SKIP_MARK}${reason}\n`);
}

/**
 * Marks the running test as skipped because the adapter it needs lacks an
 * optional feature the test is about (the caller returns right after): the
 * adapters are fixed (Chromium's SwiftShader has no shader-f16), so unlike
 * skip() this holds under CI=true too. The reason must name the adapter and
 * the feature.
 */
export function skipForAdapter(reason: string): void {
  process.stdout.write(`\n${SKIP_MARK}${reason}\n`);
}

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
/** ../shared beside the repository (fixtures, datasets, clip-vocab), as CI lays it out. */
export const sharedDir = join(repoRoot, '..', 'shared');

/**
 * A path under ../shared: null when ../shared itself is absent (the test then
 * calls skip), an Error naming the path when ../shared is there but the file or
 * folder is not — a missing fixture fails, it never skips.
 */
export function sharedPath(...parts: string[]): string | null {
  if (!existsSync(sharedDir)) return null;
  const path = join(sharedDir, ...parts);
  if (!existsSync(path)) throw new Error(`${path} is missing, though ${sharedDir} is present: the test needs it`);
  return path;
}

/** The reason to skip a test that needs ../shared. */
export const NO_SHARED = `${sharedDir} is absent (fixtures, datasets and the CLIP vocabulary live there)`;

/** The code base's seeded generator (mulberry32, src/util/random.ts). */
export const rng = seededRandom;

/** Uniform values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Standard normal values (Box–Muller). */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * scale;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** Asserts |actual - expected| <= atol + rtol·|expected| elementwise; reports the worst element. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  assert.is(actual.length, expected.length, `${label}: length ${actual.length} vs expected ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(e)) {
      assert.unreachable(`${label}: element ${i} is ${a}, expected ${e}`);
    }
    if (Number.isNaN(e)) continue;
    const err = Math.abs(a - e);
    maxAbs = Math.max(maxAbs, err);
    const excess = err - (tol.atol + tol.rtol * Math.abs(e));
    if (excess > worstExcess || Number.isNaN(err)) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.unreachable(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (max abs err ${maxAbs.toExponential(3)}, tol atol ${tol.atol} rtol ${tol.rtol})`,
    );
  }
}

/** max |actual − expected| and max |expected| (the scale relative errors divide by). */
export function maxErrors(actual: ArrayLike<number>, expected: ArrayLike<number>): { maxAbsErr: number; maxAbsRef: number } {
  let maxAbsErr = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxAbsErr = Math.max(maxAbsErr, Math.abs(actual[i] - expected[i]));
    maxAbsRef = Math.max(maxAbsRef, Math.abs(expected[i]));
  }
  return { maxAbsErr, maxAbsRef };
}

/**
 * The central difference (loss(x + step) − loss(x − step)) / (2·step) in
 * entry `at` of an f32 parameter, whose values are restored afterwards.
 */
export async function tensorCentralDifference(param: Tensor, at: number, loss: () => Promise<number>, step = 1e-2): Promise<number> {
  const base = Float32Array.from((await param.read()) as Float32Array);
  const shifted = async (d: number) => {
    const p = Float32Array.from(base);
    p[at] += d;
    param.write(p);
    return loss();
  };
  const fd = ((await shifted(step)) - (await shifted(-step))) / (2 * step);
  param.write(base);
  return fd;
}

/** Asserts that fn throws (or rejects) an Error whose message matches every pattern. */
export async function assertThrows(fn: () => unknown, ...patterns: RegExp[]): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof Error)) assert.unreachable(`expected an Error matching ${patterns.join(' and ')}, but ${error === undefined ? 'nothing was thrown' : `got ${String(error)}`}`);
  const message = (error as Error).message;
  for (const p of patterns) assert.match(message, p, `error message "${message}" should match ${p}`);
}

export interface GpuContext {
  gpu: Gpu;
}

/** A uvu suite whose context holds a fresh device, destroyed after the suite (Dawn busy-spins otherwise). */
export function gpuSuite(name: string): Test<GpuContext> {
  const s = suite<GpuContext>(name, {} as GpuContext);
  s.before(async (ctx) => {
    ctx.gpu = await getDevice();
  });
  s.after((ctx) => {
    ctx.gpu?.destroy();
  });
  return s;
}

/** A smooth synthetic RGBA image with one disc (gradients in red and green, the disc in blue). */
export function syntheticDiscImage(width: number, height: number): DecodedImage {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      data[i] = (x * 255) / width;
      data[i + 1] = (y * 255) / height;
      data[i + 2] = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2 ? 220 : 30;
      data[i + 3] = 255;
    }
  }
  return { width, height, data, channels: 3 };
}
