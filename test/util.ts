// Shared test helpers: a seeded RNG, closeness checks with stated tolerances,
// an assertion that an op throws a useful Error, and a per-suite GPU device.

import * as assert from 'uvu/assert';
import { suite, type Test } from 'uvu';
import { getDevice, type Gpu } from '../src/node.js';

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
