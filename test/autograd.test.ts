import * as assert from 'uvu/assert';
import { AdamW, Graph, Tensor, graphOps as G, numel, preNormBlock, preNormBlockShapes, type Gpu, type PreNormBlockWeights, type Value } from '../src/node.js';
import { backward } from '../src/node.js';
import * as act from './ref/activations.js';
import { attentionRef } from './ref/attention.js';
import { attentionBackwardRef } from './ref/attention-backward.js';
import { crossEntropyRows, l2Normalize as l2NormalizeRef } from './ref/backward.js';
import { matmulRef, type RefMatmulOptions } from './ref/matmul.js';
import { layerNorm as layerNormRef, reduce as reduceRef, softmax as softmaxRef } from './ref/norm.js';
import { checkOp, opCase, type Feed, type OpCheck } from './ref/op-check.js';
import { broadcastBinary, concat as concatRef, pad as padRef, permute as permuteRef, slice as sliceRef } from './ref/tensor-ops.js';
import { preNormBlockRef } from './ref/transformer.js';
import { assertClose, assertThrows, gpuSuite, randn, type Tolerance } from './util.js';

const test = gpuSuite('autograd');

// The GPU gradient is f32 (errors ~1e-6 relative per op, a few ops deep, on
// O(1)–O(10) gradients); the float64 central differences are accurate to ~1e-9.
const TOL: Tolerance = { atol: 3e-4, rtol: 2e-3 };

/**
 * Checks the forward against the float64 reference and backward(y, wrt,
 * seed R) — the gradient of Σ y∘R — against central differences of it, for
 * every input marked `grad` (test/ref/op-check.ts checkOp).
 */
async function checkGrads(gpu: Gpu, label: string, c: Omit<OpCheck, 'tol'> & { tol?: Tolerance }): Promise<void> {
  await checkOp(gpu, label, { ...c, tol: c.tol ?? TOL });
}

opCase(test, 'matmul: dA, dB, dbias, dresidual through a fused activation, batch broadcast and transposes', { matmul: 'gradient', activationGrad: 'forward' }, async ({ gpu }) => {
  const cases: Array<{ a: number[]; b: number[]; o: RefMatmulOptions; bias?: number; residual?: number[] }> = [
    { a: [5, 7], b: [7, 3], o: {} },
    { a: [2, 5, 7], b: [7, 3], o: { activation: 'quickGelu', alpha: 0.7 }, bias: 3, residual: [2, 5, 3] },
    { a: [2, 7, 5], b: [2, 3, 7], o: { transA: true, transB: true, activation: 'gelu' }, bias: 3 },
    { a: [1, 4, 6], b: [3, 5, 6], o: { transB: true, activation: 'relu' }, residual: [5] },
    { a: [3, 6, 4], b: [6, 2], o: { transA: true, activation: 'geluTanh' } },
  ];
  for (const [i, m] of cases.entries()) {
    const inputs: Record<string, Feed> = { a: { shape: m.a, grad: true }, b: { shape: m.b, grad: true } };
    if (m.bias) inputs.bias = { shape: [m.bias], grad: true };
    if (m.residual) inputs.residual = { shape: m.residual, grad: true };
    await checkGrads(gpu, `matmul case ${i}`, {
      inputs,
      build: (g, v) => G.matmul(g, v.a, v.b, { ...m.o, activation: m.o.activation, bias: v.bias, residual: v.residual }),
      ref: (x) => matmulRef(x.a, m.a, x.b, m.b, { ...m.o, bias: x.bias, residual: x.residual, residualShape: m.residual }).data,
    });
  }
});

opCase(test, 'add, sub, mul with broadcasting; a value used twice accumulates', { add: 'gradient', sub: 'gradient', mul: 'gradient' }, async ({ gpu }) => {
  const sa = [2, 3, 4];
  await checkGrads(gpu, 'binary', {
    inputs: { a: { shape: sa, grad: true }, b: { shape: [3, 1], grad: true }, c: { shape: [4], grad: true } },
    build: (g, v) => G.mul(g, G.sub(g, v.a, v.b), G.add(g, v.a, v.c)),
    ref: (x) => {
      const d = broadcastBinary(x.a, sa, x.b, [3, 1], (u, w) => u - w).data;
      const s = broadcastBinary(x.a, sa, x.c, [4], (u, w) => u + w).data;
      return d.map((u, i) => u * s[i]);
    },
  });
});

// Quotients of unit normals by denominators in [1.5, 3.5) (kept off zero so
// central differences stay accurate). DIV_TOL is ~10× the worst error measured
// on lavapipe: forward 2.8e-8, da 5.6e-8, db 1.0e-7 (on values up to 1.3).
const DIV_TOL: Tolerance = { atol: 1e-6, rtol: 0 };

opCase(test, 'div with broadcasting: da = dy / b, db = −dy·a / b²', { div: 'gradient' }, async ({ gpu }) => {
  const [sa, sb] = [[2, 3, 4], [3, 1]];
  const den = Float32Array.from(randn(3, 41), (v) => 2.5 + Math.tanh(v));
  await checkGrads(gpu, 'div', {
    inputs: { a: { shape: sa, grad: true }, b: { shape: sb, data: den, grad: true } },
    build: (g, v) => G.div(g, v.a, v.b),
    ref: (x) => broadcastBinary(x.a, sa, x.b, sb, (u, w) => u / w).data,
    tol: DIV_TOL,
  });
  // b broadcast against itself: a / b with a of b's shape, and b feeding both sides.
  await checkGrads(gpu, 'div same value', {
    inputs: { b: { shape: [5], data: Float32Array.from(randn(5, 42), (v) => 2.5 + Math.tanh(v)), grad: true } },
    build: (g, v) => G.div(g, G.mul(g, v.b, v.b), v.b),
    ref: (x) => Array.from(x.b, (u) => (u * u) / u),
    tol: DIV_TOL,
  });
});

opCase(test, 'activations, softmax, l2 normalize, reductions', { activation: 'gradient', activationGrad: 'forward', softmax: 'gradient', l2Normalize: 'gradient', l2NormalizeBackward: 'forward', reduceSum: 'gradient', reduceMean: 'gradient', zeros: 'forward' }, async ({ gpu }) => {
  for (const op of ['relu', 'gelu', 'geluTanh', 'quickGelu', 'sigmoid'] as const) {
    await checkGrads(gpu, op, {
      inputs: { x: { shape: [3, 7], grad: true, scale: 2 } },
      build: (g, v) => G.activation(g, op, v.x),
      ref: (x) => Array.from(x.x, act[op]),
    });
  }
  await checkGrads(gpu, 'softmax', {
    inputs: { x: { shape: [2, 5, 3], grad: true, scale: 2 } },
    build: (g, v) => G.softmax(g, v.x, 1),
    ref: (x) => softmaxRef(x.x, [2, 5, 3], 1),
  });
  await checkGrads(gpu, 'l2Normalize', {
    inputs: { x: { shape: [4, 6], grad: true, scale: 2 } },
    build: (g, v) => G.l2Normalize(g, v.x),
    ref: (x) => l2NormalizeRef(x.x, 4, 6, 1e-12),
  });
  await checkGrads(gpu, 'reduceSum + reduceMean', {
    inputs: { x: { shape: [3, 4, 5], grad: true } },
    // keepDims mean [3, 1, 5] broadcast back against x exercises both rules and broadcasting.
    build: (g, v) => G.reduceSum(g, G.mul(g, v.x, G.reduceMean(g, v.x, 1, true)), [0, 2]),
    ref: (x) => {
      const m = reduceRef(x.x, [3, 4, 5], [1], 'mean').y;
      const p = broadcastBinary(x.x, [3, 4, 5], m, [3, 1, 5], (u, w) => u * w).data;
      return reduceRef(p, [3, 4, 5], [0, 2], 'sum').y;
    },
  });
});

opCase(test, 'layerNorm with and without affine parameters', { layerNorm: 'gradient', layerNormBackward: 'forward' }, async ({ gpu }) => {
  await checkGrads(gpu, 'layerNorm affine', {
    inputs: { x: { shape: [2, 3, 8], grad: true, scale: 2 }, gamma: { shape: [8], grad: true }, beta: { shape: [8], grad: true } },
    build: (g, v) => G.layerNorm(g, v.x, v.gamma, v.beta),
    ref: (x) => layerNormRef(x.x, 6, 8, x.gamma, x.beta, 1e-5).y,
  });
  await checkGrads(gpu, 'layerNorm plain', {
    inputs: { x: { shape: [5, 6], grad: true } },
    build: (g, v) => G.layerNorm(g, v.x),
    ref: (x) => layerNormRef(x.x, 5, 6, undefined, undefined, 1e-5).y,
  });
});

opCase(test, 'permute, slice, pad, concat, reshape', { permute: 'gradient', slice: 'gradient', pad: 'gradient', concat: 'gradient', reshape: 'gradient' }, async ({ gpu }) => {
  const s = [2, 3, 4];
  await checkGrads(gpu, 'permute+reshape', {
    inputs: { x: { shape: s, grad: true } },
    build: (g, v) => g.reshape(G.permute(g, v.x, [2, 0, 1]), [4, 6]),
    ref: (x) => permuteRef(x.x, s, [2, 0, 1]).data,
  });
  await checkGrads(gpu, 'slice+pad', {
    inputs: { x: { shape: s, grad: true } },
    build: (g, v) => G.pad(g, G.slice(g, v.x, [1, 0, 1], [2, -1, 4]), [[0, 1], [2, 0], [1, 1]]),
    ref: (x) => {
      const sl = sliceRef(x.x, s, [1, 0, 1], [2, -1, 4], [1, 1, 1]);
      return padRef(sl.data, sl.shape, [[0, 1], [2, 0], [1, 1]], 0).data;
    },
  });
  await checkGrads(gpu, 'concat', {
    inputs: { a: { shape: [2, 1, 3], grad: true }, b: { shape: [2, 4, 3] }, c: { shape: [2, 2, 3], grad: true } },
    build: (g, v) => G.concat(g, [v.a, v.b, v.c], 1),
    ref: (x) => concatRef([{ data: x.a, shape: [2, 1, 3] }, { data: x.b, shape: [2, 4, 3] }, { data: x.c, shape: [2, 2, 3] }], 1).data,
  });
});

/** The attention backward is one fused op: no matmul/softmax recomputing the scores. */
function expectFusedAttentionBackward(ops: string[]): void {
  assert.equal(ops.filter((op) => op === 'attentionBackward').length, 1, `backward ops: ${ops.join(', ')}`);
  assert.equal(ops.filter((op) => op === 'matmul' || op === 'softmax').length, 0, `backward ops: ${ops.join(', ')}`);
}

opCase(test, 'attention: dq, dk, dv, dbias in both layouts, causal, key padding (fused backward)', { attention: 'gradient', attentionBackward: 'forward' }, async ({ gpu }) => {
  const [B, H, L, D] = [2, 2, 5, 4];
  const keyPaddingMask = [0, 0, 0, 1, 1, 0, 1, 0, 0, 0]; // [B, L]: two keys of batch 0, one of batch 1
  for (const layout of ['bhld', 'blhd'] as const) {
    const shape = layout === 'bhld' ? [B, H, L, D] : [B, L, H, D];
    for (const causal of [false, true]) {
      for (const masked of [false, true]) {
        await checkGrads(gpu, `attention ${layout}${causal ? ' causal' : ''}${masked ? ' masked' : ''}`, {
          inputs: {
            q: { shape, grad: true },
            k: { shape, grad: true },
            v: { shape, grad: true },
            bias: { shape: [1, H, L, L], grad: true },
            mask: { shape: [B, L], data: masked ? keyPaddingMask : new Array(B * L).fill(0), dtype: 'i32' },
          },
          build: (g, v) => G.attention(g, v.q, v.k, v.v, { layout, causal, bias: v.bias, keyPaddingMask: v.mask, scale: 0.6 }),
          ref: (x) =>
            attentionRef({ q: x.q, k: x.k, v: x.v, B, H, Lq: L, Lk: L, D, Dv: D, layout, causal, scale: 0.6, bias: { data: x.bias, shape: [1, H, L, L] }, keyPaddingMask: x.mask }).out,
          backwardOps: expectFusedAttentionBackward,
        });
      }
    }
  }
  // Without a bias gradient (frozen bias, Lq ≠ Lk, Dv ≠ D) only dq, dk, dv are computed.
  await checkGrads(gpu, 'attention frozen bias', {
    inputs: { q: { shape: [1, 2, 3, 4], grad: true }, k: { shape: [1, 2, 6, 4], grad: true }, v: { shape: [1, 2, 6, 5], grad: true }, bias: { shape: [1, 1, 3, 6] } },
    build: (g, v) => G.attention(g, v.q, v.k, v.v, { bias: v.bias }),
    ref: (x) => attentionRef({ q: x.q, k: x.k, v: x.v, B: 1, H: 2, Lq: 3, Lk: 6, D: 4, Dv: 5, layout: 'bhld', bias: { data: x.bias, shape: [1, 1, 3, 6] } }).out,
    backwardOps: expectFusedAttentionBackward,
  });
});

// Sums over 512 keys in f32 against a float64 reference.
const LONG_TOL: Tolerance = { atol: 2e-4, rtol: 2e-3 };

test('attention backward on a long sequence (L=512, D=32) never builds the Lq×Lk matrix', async ({ gpu }) => {
  const [B, H, L, D] = [1, 2, 512, 32];
  const shape = [B, L, H, D];
  const x = { q: randn(B * L * H * D, 11), k: randn(B * L * H * D, 12), v: randn(B * L * H * D, 13) };
  const bias = randn(L, 14, 0.5); // a frozen per-key bias [1, 1, 1, L]
  const keyPaddingMask = Array.from({ length: L }, (_, j) => (j >= L - 37 ? 1 : 0));
  const dOut = randn(B * L * H * D, 15);
  const g = new Graph(gpu, 'long attention');
  const [q, k, v] = (['q', 'k', 'v'] as const).map((n) => g.input(n, shape));
  const biasV = g.input('bias', [1, 1, 1, L]);
  const mask = g.input('mask', [B, L], 'i32');
  const y = G.attention(g, q, k, v, { layout: 'blhd', causal: true, bias: biasV, keyPaddingMask: mask });
  const lse = g.producerOf(y)!.outputs[1];
  assert.not.ok(g.isRead(lse), 'a forward-only graph does not write the lse');
  const grads = backward(g, y, [q, k, v], { seed: g.constant('dOut', dOut, y.shape) });
  for (const [name, w] of [['dq', q], ['dk', k], ['dv', v]] as const) g.output(name, grads.get(w)!);
  assert.ok(g.isRead(lse), 'the backward reads the lse');
  for (const node of g.nodeList) for (const o of node.outputs) assert.ok(numel(o.shape) < L * L, `${node.op} makes ${o.name} [${o.shape.join(', ')}]`);
  assert.ok(g.compile().plannedPeakBytes < L * L * 4, 'planned memory holds no score matrix');
  const out = g.run({ ...x, bias, mask: keyPaddingMask });
  const ref = attentionBackwardRef({ ...x, B, H, Lq: L, Lk: L, D, Dv: D, layout: 'blhd', causal: true, bias: { data: bias, shape: [1, 1, 1, L] }, keyPaddingMask }, dOut);
  assertClose(await out.dq.read(), ref.dq, LONG_TOL, 'dq');
  assertClose(await out.dk.read(), ref.dk, LONG_TOL, 'dk');
  assertClose(await out.dv.read(), ref.dv, LONG_TOL, 'dv');
  for (const t of Object.values(out)) t.dispose();
  g.dispose();
});

opCase(test, 'crossEntropy: loss and dlogits', { crossEntropy: 'gradient' }, async ({ gpu }) => {
  const labels = [2, 0, 4, 1];
  await checkGrads(gpu, 'crossEntropy', {
    inputs: { logits: { shape: [4, 5], grad: true, scale: 2 }, labels: { shape: [4], data: labels, dtype: 'i32' } },
    build: (g, v) => G.crossEntropy(g, v.logits, v.labels),
    ref: (x) => [crossEntropyRows(x.logits, labels, 4, 5, 0).reduce((a, b) => a + b, 0) / 4],
  });
});

test('backward reports what it cannot do; unreachable values get zeros; frozen inputs get no ops', async ({ gpu }) => {
  const g = new Graph(gpu);
  const table = g.input('table', [5, 3]);
  const ids = g.input('ids', [2], 'i32');
  const image = g.input('image', [1, 1, 4, 4]);
  const kernel = g.input('kernel', [2, 1, 2, 2]);
  const emb = G.gather(g, table, ids);
  await assertThrows(() => backward(g, G.maxPool2d(g, image, { kernel: 2 }), [image]), /backward/, /maxPool2d/, /no backward rule/);
  await assertThrows(() => backward(g, G.conv2d(g, image, kernel, { activation: 'relu' }), [kernel]), /conv2d/, /fused relu/, /\[2, 1, 2, 2\]/);
  await assertThrows(() => backward(g, emb, [table], { seed: g.constant('seed', [1, 1, 1], [3]) }), /seed \[3\]/, /loss \[2, 3\]/);
  // Nothing that leads to `table` needs a rule: gradients w.r.t. a value added after the gather are fine.
  const w = g.input('w', [3, 4]);
  const y = G.matmul(g, emb, w);
  const before = g.nodeList.length;
  const grads = backward(g, y, [w, kernel]);
  assert.equal(g.nodeList.slice(before).map((node) => node.op), ['matmul', 'zeros']); // dW = embᵀ·ones; kernel is unreachable
  g.output('dw', grads.get(w)!);
  g.output('dkernel', grads.get(kernel)!);
  const table0 = randn(15, 3);
  const out = g.run({ table: table0, ids: [4, 1], image: new Float32Array(16), kernel: new Float32Array(8), w: new Float32Array(12) });
  const colSums = [0, 1, 2].flatMap((j) => Array(4).fill(table0[4 * 3 + j] + table0[1 * 3 + j]));
  assertClose(await out.dw.read(), colSums, { atol: 1e-6, rtol: 1e-6 }, 'dW with the implicit ones seed');
  assert.equal(Array.from(await out.dkernel.read()), new Array(8).fill(0));
  g.dispose();
});

/** CLIP's pre-norm residual attention block (as in graph.test.ts), weights keyed as there. */
function blockFeeds(c: number, grad: readonly string[]): Record<string, Feed> {
  const shapes = preNormBlockShapes(c);
  const feeds: Record<string, Feed> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const isGain = name.startsWith('ln') && name.endsWith('g');
    const data = randn(numel(shape), 500 + Object.keys(feeds).length, shape.length === 2 ? 1 / Math.sqrt(shape[0]) : 0.1);
    if (isGain) for (let i = 0; i < data.length; i++) data[i] += 1;
    feeds[name] = { shape, data, grad: grad.includes(name) };
  }
  return feeds;
}

test('a whole transformer block: gradients w.r.t. its input and weights', async ({ gpu }) => {
  const [b, l, c, heads] = [2, 3, 8, 2];
  const w = blockFeeds(c, ['ln1g', 'wqkv', 'bo', 'ln2b', 'w1', 'b2']);
  await checkGrads(gpu, 'block', {
    inputs: { x: { shape: [b, l, c], grad: true }, ...w },
    build: (g, v) => preNormBlock(g, v.x, v as unknown as PreNormBlockWeights, heads),
    ref: (x) => preNormBlockRef(x.x, [b, l, c], x, heads),
  });
});

test('frozen backbone, 4 prompt tokens and a linear head learn a separable task with AdamW', async ({ gpu }) => {
  const [n, patches, c, heads, prompts, classes] = [24, 6, 16, 2, 4, 3];
  // Each sample's patch tokens are noise around its class prototype.
  const proto = randn(classes * c, 11);
  const labels = Array.from({ length: n }, (_, i) => i % classes);
  const tokens = randn(n * patches * c, 12, 0.7);
  labels.forEach((y, i) => {
    for (let p = 0; p < patches; p++) for (let j = 0; j < c; j++) tokens[(i * patches + p) * c + j] += proto[y * c + j];
  });

  const owned: Tensor[] = [];
  const weight = (g: Graph, name: string, data: Float32Array, shape: number[]) => {
    const t = Tensor.fromArray(gpu, data, shape);
    owned.push(t);
    return { value: g.weight(name, t), tensor: t };
  };
  const g = new Graph(gpu, 'prompt-vit');
  const frozen: Record<string, Value> = {};
  for (const [name, f] of Object.entries(blockFeeds(c, []))) frozen[name] = weight(g, name, Float32Array.from(f.data!), f.shape).value;
  const cls = weight(g, 'cls', randn(c, 13, 0.1), [1, 1, c]).value;
  const prompt = weight(g, 'prompt', randn(prompts * c, 14, 0.02), [1, prompts, c]);
  const headW = weight(g, 'headW', randn(c * classes, 15, 0.02), [c, classes]);
  const headB = weight(g, 'headB', new Float32Array(classes), [classes]);
  const x = g.input('x', [n, patches, c]);
  const y = g.input('labels', [n], 'i32');
  const seq = G.concat(g, [G.broadcastTo(g, cls, [n, 1, c]), x, G.broadcastTo(g, prompt.value, [n, prompts, c])], 1);
  const feats = g.reshape(G.slice(g, preNormBlock(g, seq, frozen as unknown as PreNormBlockWeights, heads), [0, 0, 0], [n, 1, c]), [n, c]);
  const logits = G.matmul(g, G.layerNorm(g, feats), headW.value, { bias: headB.value });
  const loss = G.crossEntropy(g, logits, y);

  // Gradients for the head alone touch nothing of the backbone.
  const forwardNodes = g.nodeList.length;
  backward(g, loss, [headW.value, headB.value]);
  const headOps = g.nodeList.slice(forwardNodes).map((node) => node.op);
  assert.ok(headOps.length <= 6, `head-only backward added ${headOps.join(', ')}`);
  // Prompts need the path back through the block, but no frozen weight gets a gradient.
  const beforePrompt = g.nodeList.length;
  const grads = backward(g, loss, [prompt.value, headW.value, headB.value]);
  const added = g.nodeList.slice(beforePrompt);
  // A weight gradient is a 2-D matmul not over the n samples' rows: only the head's may appear.
  const weightGrads = added.filter((node) => node.op === 'matmul' && node.outputs[0].shape.length === 2 && node.outputs[0].shape[0] !== n);
  assert.equal(weightGrads.map((node) => node.outputs[0].shape), [[c, classes]]);
  assert.ok(added.every((node) => node.op !== 'layerNormBackward' || node.outputs.length === 1), 'no dγ/dβ for frozen layer norms');
  assert.ok(added.some((node) => node.op === 'layerNormBackward'), 'the prompt gradient goes back through the block');
  g.output('loss', loss);
  g.output('logits', logits);
  g.output('dPrompt', grads.get(prompt.value)!);
  g.output('dHeadW', grads.get(headW.value)!);
  g.output('dHeadB', grads.get(headB.value)!);

  const stats = g.compile();
  assert.ok(stats.plannedPeakBytes < stats.unplannedBytes / 2, `forward + backward planned ${stats.plannedPeakBytes} of ${stats.unplannedBytes} bytes`);

  const opt = new AdamW(gpu, [{ name: 'prompt', param: prompt.tensor }, { name: 'headW', param: headW.tensor }, { name: 'headB', param: headB.tensor }], { lr: 0.05, weightDecay: 0 });
  const losses: number[] = [];
  let accuracy = 0;
  const steps = 60;
  for (let step = 0; step <= steps; step++) {
    const out = g.run({ x: tokens, labels });
    if (step < steps) opt.step({ prompt: out.dPrompt, headW: out.dHeadW, headB: out.dHeadB });
    losses.push((await out.loss.read())[0]);
    if (step === steps) {
      const z = await out.logits.read();
      accuracy = labels.filter((lab, i) => {
        const row = Array.from(z.slice(i * classes, (i + 1) * classes));
        return row.indexOf(Math.max(...row)) === lab;
      }).length / n;
    }
    for (const t of Object.values(out)) t.dispose();
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(losses.slice(-5)) < 0.5 * mean(losses.slice(0, 5)), `smoothed loss fell: ${losses.map((v) => v.toFixed(3)).join(' ')}`);
  assert.is(accuracy, 1, `train accuracy ${accuracy}; losses ${losses.map((v) => v.toFixed(3)).join(' ')}`);
  opt.dispose();
  g.dispose();
  for (const t of owned) t.dispose();
});

test.run();
