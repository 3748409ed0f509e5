import * as assert from 'uvu/assert';
import { Graph, Tensor, graphOps as G, type Value } from '../src/node.js';
import { matmulRef } from './ref/matmul.js';
import { layerNorm as layerNormRef, softmax as softmaxRef } from './ref/norm.js';
import { permute as permuteRef, broadcastBinary } from './ref/tensor-ops.js';
import { assertClose, assertThrows, gpuSuite, randn } from './util.js';

const test = gpuSuite('graph');

/** A pre-norm transformer block (CLIP's residual attention block) on the graph. */
function block(g: Graph, x: Value, w: Record<string, Value>, heads: number): Value {
  const [b, l, c] = x.shape;
  const d = c / heads;
  const h = G.layerNorm(g, x, w.ln1g, w.ln1b);
  const qkv = G.matmul(g, h, w.wqkv, { bias: w.bqkv }); // [B, L, 3C]
  const split = g.reshape(qkv, [b, l, 3, heads, d]);
  const q = g.reshape(G.slice(g, split, [0, 0, 0, 0, 0], [b, l, 1, heads, d]), [b, l, heads, d]);
  const k = g.reshape(G.slice(g, split, [0, 0, 1, 0, 0], [b, l, 2, heads, d]), [b, l, heads, d]);
  const v = g.reshape(G.slice(g, split, [0, 0, 2, 0, 0], [b, l, 3, heads, d]), [b, l, heads, d]);
  const att = G.attention(g, q, k, v, { layout: 'blhd' }); // [B, L, H, D]
  const x1 = G.matmul(g, g.reshape(att, [b, l, c]), w.wo, { bias: w.bo, residual: x });
  const h2 = G.layerNorm(g, x1, w.ln2g, w.ln2b);
  const f = G.matmul(g, h2, w.w1, { bias: w.b1, activation: 'quickGelu' });
  return G.matmul(g, f, w.w2, { bias: w.b2, residual: x1 });
}

/** The same block in float64 from the independent references. */
function blockRef(x: Float32Array, shape: number[], w: Record<string, Float32Array>, heads: number): Float64Array {
  const [b, l, c] = shape;
  const d = c / heads;
  const h = layerNormRef(x, b * l, c, w.ln1g, w.ln1b, 1e-5).y;
  const qkv = matmulRef(h, [b * l, c], w.wqkv, [c, 3 * c], { bias: w.bqkv }).data;
  // [B, L, 3, H, D] → [3, B, H, L, D]
  const parts = permuteRef(qkv, [b, l, 3, heads, d], [2, 0, 3, 1, 4]).data;
  const per = b * heads * l * d;
  const [q, k, v] = [0, 1, 2].map((i) => parts.slice(i * per, (i + 1) * per));
  const scores = matmulRef(q, [b, heads, l, d], k, [b, heads, l, d], { transB: true, alpha: 1 / Math.sqrt(d) }).data;
  const probs = softmaxRef(scores, [b, heads, l, l], 3);
  const o = matmulRef(probs, [b, heads, l, l], v, [b, heads, l, d]).data; // [B, H, L, D]
  const merged = permuteRef(o, [b, heads, l, d], [0, 2, 1, 3]).data; // [B, L, H, D]
  const x1 = matmulRef(merged, [b * l, c], w.wo, [c, c], { bias: w.bo, residual: x }).data;
  const h2 = layerNormRef(x1, b * l, c, w.ln2g, w.ln2b, 1e-5).y;
  const f = matmulRef(h2, [b * l, c], w.w1, [c, 4 * c], { bias: w.b1, activation: 'quickGelu' }).data;
  return matmulRef(f, [b * l, 4 * c], w.w2, [4 * c, c], { bias: w.b2, residual: x1 }).data;
}

function blockShapes(c: number): Record<string, number[]> {
  return {
    ln1g: [c], ln1b: [c], wqkv: [c, 3 * c], bqkv: [3 * c], wo: [c, c], bo: [c],
    ln2g: [c], ln2b: [c], w1: [c, 4 * c], b1: [4 * c], w2: [4 * c, c], b2: [c],
  };
}

/** Random block weights: matrices scaled by 1/sqrt(fan-in), norm gains around 1, small biases. */
function blockWeights(c: number, seed: number): Record<string, { data: Float32Array; shape: number[] }> {
  const out: Record<string, { data: Float32Array; shape: number[] }> = {};
  Object.entries(blockShapes(c)).forEach(([name, shape], k) => {
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
    y = block(g, y, vals, heads);
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
    expected = blockRef(Float32Array.from(expected), [b, l, c], flat, heads);
  }
  // Run twice with the same plan: the second run reuses slots and pipelines.
  for (let run = 0; run < 2; run++) {
    const { y: out } = g.run({ x: input });
    assertClose(await out.read(), expected, TOL, `run ${run}`);
    out.dispose();
  }
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
    for (const [name, shape] of Object.entries(blockShapes(c))) w[name] = g.input(`${i}.${name}`, shape);
    x = block(g, x, w, heads);
  }
  g.output('features', x);
  const stats = g.compile();
  assert.ok(stats.plannedPeakBytes * 2 <= stats.unplannedBytes, `planned ${stats.plannedPeakBytes} vs unplanned ${stats.unplannedBytes}`);
});

test.run();
