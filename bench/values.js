// Deterministic inputs in [-0.5, 0.5), identical for every library a case compares.
export function values(n, seed) {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** Largest |a − b| over two equally long arrays. */
export function maxAbsDiff(a, b) {
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
  return diff;
}

/**
 * A model's f16-weight line: `half()` (f16 weights) and `full()` (f32) each
 * return a new tensor; checks that half's is within 1e-2 · max(1, max|full|)
 * of full's (else throws `mismatch` and the difference), notes the
 * difference, then benches `half` with `full` as the peer 'ours f32 weights'.
 */
export async function benchF16Weights(ctx, { name, shape, flops, half, full, mismatch }) {
  const [a, b] = [half(), full()];
  const [got, want] = [await a.read(), await b.read()];
  for (const t of [a, b]) t.dispose();
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const diff = maxAbsDiff(got, want);
  ctx.note(`${name}: max |f16 - f32 weights| = ${diff.toExponential(2)} (max |f32| ${scale.toFixed(3)})`);
  if (!(diff <= 1e-2 * Math.max(1, scale))) throw new Error(`${mismatch} by ${diff}`);
  const disposing = (run) => () => {
    const y = run();
    return () => y.dispose();
  };
  await ctx.bench({ name, shape, flops, warmup: 1, runs: 3, ours: disposing(half), peers: { 'ours f32 weights': disposing(full) } });
}
