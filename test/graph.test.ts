import * as assert from 'uvu/assert';
import { Graph, Tensor, cachedBindGroupCount, graphOps as G, preNormBlock, preNormBlockShapes, type PreNormBlockWeights, type Value } from '../src/node.js';
import { convTranspose2d as convTranspose2dRef, maxPool2d as maxPool2dRef } from './ref/conv.js';
import { layerNorm2d as layerNorm2dRef, softmax as softmaxRef } from './ref/norm.js';
import { matmulRef } from './ref/matmul.js';
import { broadcastBinary, resize as resizeRef } from './ref/tensor-ops.js';
import { preNormBlockRef } from './ref/transformer.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('graph');

/** Random block weights: matrices scaled by 1/sqrt(fan-in), norm gains around 1, small biases. */
function blockWeights(c: number, seed: number): Record<string, { data: Float32Array; shape: number[] }> {
  const out: Record<string, { data: Float32Array; shape: number[] }> = {};
  Object.entries(preNormBlockShapes(c)).forEach(([name, shape], k) => {
    const scale = shape.length === 2 ? 1 / Math.sqrt(shape[0]) : 0.1;
    const data = randn(shape.reduce((a, b) => a * b, 1), seed + k, scale);
    if (name.startsWith('ln') && name.endsWith('g')) for (let i = 0; i < data.length; i++) data[i] += 1;
    out[name] = { data, shape };
  });
  return out;
}

// fp32 through two matmuls of K <= 4C and a softmax: 1e-4 relative on O(1) activations.
const TOL = { atol: 2e-4, rtol: 2e-4 };

test('a two-block transformer on the graph matches the float64 reference', async ({ gpu }) => {
  const [b, l, c, heads] = [2, 13, 32, 4];
  const weights = [blockWeights(c, 100), blockWeights(c, 200)];
  const g = new Graph(gpu, 'vit');
  const x = g.input('x', [b, l, c]);
  let y = x;
  const owned: Tensor[] = [];
  weights.forEach((ws, i) => {
    const vals: Record<string, Value> = {};
    for (const [name, p] of Object.entries(ws)) {
      const t = Tensor.fromArray(gpu, p.data, p.shape);
      owned.push(t);
      vals[name] = g.weight(`block${i}.${name}`, t);
    }
    y = preNormBlock(g, y, vals as unknown as PreNormBlockWeights, heads);
  });
  g.output('y', y);
  const stats = g.compile();
  assert.ok(stats.plannedPeakBytes < stats.unplannedBytes, `planning saved memory: ${JSON.stringify(stats)}`);
  assert.is(stats.ops, weights.length * 10); // per block: 2 layer norms, 4 matmuls, 3 slices, attention

  const input = randn(b * l * c, 7);
  let expected: Float64Array = Float64Array.from(input);
  for (const ws of weights) {
    const flat: Record<string, Float32Array> = {};
    for (const [name, p] of Object.entries(ws)) flat[name] = p.data;
    expected = preNormBlockRef(Float32Array.from(expected), [b, l, c], flat, heads);
  }
  // Run three times with the same plan: later runs reuse slots, pipelines and bind groups.
  const bindGroups: number[] = [];
  for (let run = 0; run < 3; run++) {
    const { y: out } = g.run({ x: input });
    assertClose(await out.read(), expected, TOL, `run ${run}`);
    out.dispose();
    bindGroups.push(cachedBindGroupCount(gpu));
  }
  assert.is(bindGroups[2], bindGroups[1], `no new bind groups on a re-run (cached after each run: ${bindGroups.join(', ')})`);
  g.dispose();
  for (const t of owned) t.dispose();
});

test('outputs that are inputs, views or shared values come back as separate tensors', async ({ gpu }) => {
  const g = new Graph(gpu);
  const a = g.input('a', [2, 3]);
  const b = g.input('b', [3]);
  const s = G.add(g, a, b);
  g.output('sum', s);
  g.output('sumFlat', g.reshape(s, [6]));
  g.output('a', a);
  const av = [1, 2, 3, 4, 5, 6];
  const bv = [10, 20, 30];
  const out = g.run({ a: av, b: bv });
  const sum = broadcastBinary(av, [2, 3], bv, [3], (u, v) => u + v);
  assert.equal(Array.from(await out.sum.read()), Array.from(sum.data));
  assert.equal(out.sumFlat.shape, [6]);
  assert.equal(Array.from(await out.sumFlat.read()), Array.from(sum.data));
  assert.equal(Array.from(await out.a.read()), av);
});

test('the planner reuses memory along a chain and never aliases an op with its inputs', async ({ gpu }) => {
  const g = new Graph(gpu);
  let x = g.input('x', [1024]);
  const bias = g.input('bias', [1024]);
  for (let i = 0; i < 20; i++) x = G.add(g, x, bias);
  g.output('y', x);
  const stats = g.compile();
  // The last op writes the output; the 19 intermediates need only two alternating slots.
  assert.is(stats.slots, 2);
  assert.is(stats.plannedPeakBytes, 2 * 4096);
  assert.is(stats.unplannedBytes, 19 * 4096);
  const xs = randn(1024, 3);
  const bs = randn(1024, 4);
  const { y } = g.run({ x: xs, bias: bs });
  assertClose(await y.read(), Array.from(xs, (v, i) => v + 20 * bs[i]), { atol: 1e-5, rtol: 1e-6 }, 'chain');
});

test('profile times every dispatching node once, in order, and leaves run() working', async ({ gpu }) => {
  const g = new Graph(gpu);
  const x = g.input('x', [8, 16]);
  const w = g.input('w', [16, 16]);
  const h = G.activation(g, 'relu', G.matmul(g, x, w));
  const y = G.softmax(g, g.reshape(G.add(g, h, x), [4, 32]));
  g.output('y', y);
  const feeds = { x: randn(8 * 16, 5), w: randn(16 * 16, 6) };
  // float64: softmax over rows of 32 of relu(x·w) + x.
  const h64 = matmulRef(feeds.x, [8, 16], feeds.w, [16, 16], { activation: 'relu' }).data.map((v, i) => v + feeds.x[i]);
  const expected = softmaxRef(h64, [4, 32], 1);
  // fp32 dot products of 16 unit-normal terms, then a softmax of 32: 1e-5 on probabilities.
  const tol = { atol: 1e-5, rtol: 1e-4 };
  assertClose(await g.run(feeds).y.read(), expected, tol, 'run before profile');
  const profile = await g.profile(feeds);
  const dispatching = g.nodeList.map((n, i) => ({ n, i })).filter(({ n }) => n.op !== 'reshape');
  assert.equal(profile.nodes.map((p) => p.index), dispatching.map(({ i }) => i));
  assert.equal(profile.nodes.map((p) => p.op), dispatching.map(({ n }) => n.op));
  assert.ok(profile.nodes.every((p) => p.ms > 0), 'every node takes time');
  assert.equal(profile.nodes[0].inputs, ['[8, 16]', '[16, 16]']);
  // Per-op totals and the grand total, summed here from the per-node times.
  const byOp = new Map<string, { count: number; ms: number }>();
  for (const p of profile.nodes) {
    const k = byOp.get(p.op) ?? { count: 0, ms: 0 };
    byOp.set(p.op, { count: k.count + 1, ms: k.ms + p.ms });
  }
  assert.equal(new Set(profile.byOp.map((k) => k.op)), new Set(byOp.keys()), 'one entry per op kind');
  for (const k of profile.byOp) {
    assert.is(k.count, byOp.get(k.op)!.count, `${k.op}: count`);
    assertClose([k.ms], [byOp.get(k.op)!.ms], { atol: 1e-9, rtol: 1e-9 }, `${k.op}: ms`);
  }
  assertClose([profile.totalMs], [profile.nodes.reduce((s, p) => s + p.ms, 0)], { atol: 1e-9, rtol: 1e-9 }, 'total');
  for (let i = 1; i < profile.byOp.length; i++) assert.ok(profile.byOp[i - 1].ms >= profile.byOp[i].ms, 'op kinds slowest first');
  assert.match(profile.table(), /^total .* ms over 4 ops/);
  assertClose(await g.run(feeds).y.read(), expected, tol, 'run after profile');
  g.dispose();
});

test('shape errors name the op and both shapes at build time', async ({ gpu }) => {
  const g = new Graph(gpu);
  const a = g.input('a', [4, 5]);
  const b = g.input('b', [6, 7]);
  await assertThrows(() => G.matmul(g, a, b), /matmul/, /\[4, 5\]/, /\[6, 7\]/);
  await assertThrows(() => G.add(g, a, b), /add/, /\[4, 5\]/, /\[6, 7\]/);
  await assertThrows(() => g.reshape(a, [3, -1]), /reshape/, /\[4, 5\]/);
  await assertThrows(() => G.permute(g, a, [0, 0]), /permute/);
  await assertThrows(() => G.concat(g, [a, b], 0), /concat/, /\[6, 7\]/);
  const other = new Graph(gpu).input('z', [4, 5]);
  await assertThrows(() => G.add(g, a, other), /another graph/);
});

test('run checks its feeds', async ({ gpu }) => {
  const g = new Graph(gpu);
  const a = g.input('a', [2, 2]);
  g.output('y', G.activation(g, 'relu', a));
  await assertThrows(() => g.run({}), /input 'a'/, /not given/);
  await assertThrows(() => g.run({ a: [1, 2, 3] }), /input 'a'/, /4 values/, /got 3/);
  await assertThrows(() => g.run({ a: [1, NaN, 3, 4] }), /non-finite/, /index 1/);
  await assertThrows(() => g.run({ a: [1, 2, 3, 4], b: [1] }), /unknown input 'b'/);
  await assertThrows(() => g.run({ a: Tensor.fromArray(gpu, [1, 2, 3], [3]) }), /expects f32 \[2, 2\]/);
});

test('a ViT-B/16-shaped forward (batch 8) plans at most half the unplanned memory', ({ gpu }) => {
  // Shapes only: weights are graph inputs here, so nothing large is allocated.
  const [b, l, c, heads, layers] = [8, 197, 768, 12, 12];
  const g = new Graph(gpu, 'vit-b16');
  const image = g.input('image', [b, 3, 224, 224]);
  const patch = g.input('conv1', [c, 3, 16, 16]);
  const tokens = G.permute(g, g.reshape(G.conv2d(g, image, patch, { stride: 16 }), [b, c, 196]), [0, 2, 1]);
  const cls = g.input('cls', [b, 1, c]);
  let x = G.add(g, G.concat(g, [cls, tokens], 1), g.input('pos', [l, c]));
  for (let i = 0; i < layers; i++) {
    const w: Record<string, Value> = {};
    for (const [name, shape] of Object.entries(preNormBlockShapes(c))) w[name] = g.input(`${i}.${name}`, shape);
    x = preNormBlock(g, x, w as unknown as PreNormBlockWeights, heads);
  }
  g.output('features', x);
  const stats = g.compile();
  assert.ok(stats.plannedPeakBytes * 2 <= stats.unplannedBytes, `planned ${stats.plannedPeakBytes} vs unplanned ${stats.unplannedBytes}`);
});

test('spatial ops (convTranspose2d, maxPool2d, resize, layerNorm2d, div) infer shapes and match float64 references', async ({ gpu }) => {
  const [n, c, h, w] = [1, 6, 7, 5];
  const x = randn(n * c * h * w, 31);
  const wt = randn(c * 4 * 2 * 2, 32, 0.3);
  const bias = randn(4, 33, 0.1);
  const gamma = randn(c, 34, 0.2).map((v) => v + 1);
  const beta = randn(c, 35, 0.1);
  const den = randn(c, 36).map((v) => 2 + Math.abs(v));
  const g = new Graph(gpu, 'spatial');
  const xv = g.input('x', [n, c, h, w]);
  const owned = [Tensor.fromArray(gpu, wt, [c, 4, 2, 2]), Tensor.fromArray(gpu, bias, [4]), Tensor.fromArray(gpu, gamma, [c]), Tensor.fromArray(gpu, beta, [c]), Tensor.fromArray(gpu, den, [c, 1, 1])];
  const [wv, bv, gv, betav, denv] = owned.map((t, i) => g.weight(`w${i}`, t));
  const up = G.convTranspose2d(g, xv, wv, { stride: 2, bias: bv });
  const pooled = G.maxPool2d(g, xv, { kernel: 2 });
  const resized = G.resize(g, xv, [11, 3], { mode: 'bilinear' });
  const normed = G.layerNorm2d(g, xv, gv, betav);
  const ratio = G.div(g, xv, denv);
  assert.equal([up.shape, pooled.shape, resized.shape, ratio.shape], [[n, 4, 14, 10], [n, c, 3, 2], [n, c, 11, 3], [n, c, h, w]]);
  for (const [name, v] of Object.entries({ up, pooled, resized, normed, ratio })) g.output(name, v);
  const out = g.run({ x });
  const xs = [n, c, h, w] as [number, number, number, number];
  const expected = {
    up: convTranspose2dRef(x, xs, wt, [c, 4, 2, 2], { stride: [2, 2], bias }).data,
    pooled: maxPool2dRef(x, xs, { kernel: [2, 2] }).data,
    resized: resizeRef(x, xs, 11, 3, { mode: 'bilinear' }),
    normed: layerNorm2dRef(x, xs, gamma, beta, 1e-6),
    ratio: broadcastBinary(x, xs, den, [c, 1, 1], (a, b) => a / b).data,
  };
  // fp32 sums of at most 4 products or a C=6 normalization: 1e-5 on O(1) values.
  for (const [name, want] of Object.entries(expected)) assertClose(await out[name].read(), want, { atol: 1e-5, rtol: 1e-5 }, name);
  for (const t of [...Object.values(out), ...owned]) t.dispose();
  g.dispose();
});

test.run();
