import { Graph, Tensor, backward, conv2dWeightGrad, graphOps as G } from '../src/node.js';
import { conv2d as conv2dRef, convTranspose2d as convTranspose2dRef, type Shape4 } from './ref/conv.js';
import { checkOp, opCase } from './ref/op-check.js';
import { assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('conv2d backward');

interface Case {
  x: Shape4;
  w: Shape4;
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
}

const CASES: Case[] = [
  { x: [1, 1, 3, 3], w: [1, 1, 1, 1] },
  { x: [2, 3, 7, 6], w: [4, 3, 3, 3], stride: [2, 2], padding: [1, 1] },
  { x: [1, 4, 9, 8], w: [6, 2, 3, 2], stride: [1, 2], padding: [2, 0], dilation: [2, 1], groups: 2 },
  { x: [2, 3, 18, 17], w: [5, 3, 4, 4], stride: [4, 4] }, // patch embedding; the last rows/columns are unused (floor)
  { x: [1, 4, 6, 5], w: [4, 1, 3, 3], padding: [1, 1], groups: 4 }, // depthwise
];

// Gradients of Σ conv2d(x, w, b) ∘ r by central differences of the float64
// forward (the loss is linear in each of x, w, b separately, so they are exact
// up to rounding); fp32 kernels sum up to N·Ho·Wo (≤ 200) products. TOL is
// ~10× the worst measured on lavapipe: forward 2.0e-6, dx 5.6e-7, dw 1.7e-6,
// dbias 1.1e-6 (on values up to 16).
const TOL = { atol: 2e-5, rtol: 0 };

const numelOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

opCase(test, 'dx, dw and dbias of the graph op match finite differences of the float64 forward', { conv2d: 'gradient', convTranspose2d: 'forward', conv2dWeightGrad: 'forward' }, async ({ gpu }) => {
  for (const [k, c] of CASES.entries()) {
    const geometry = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups };
    await checkOp(gpu, `conv2d case ${k}: x [${c.x}] w [${c.w}]`, {
      inputs: {
        x: { shape: c.x, data: randomArray(numelOf(c.x), 10 + k, -1, 1), grad: true },
        w: { shape: c.w, data: randomArray(numelOf(c.w), 20 + k, -1, 1), grad: true },
        b: { shape: [c.w[0]], data: randomArray(c.w[0], 30 + k, -1, 1), grad: true },
      },
      build: (g, v) => G.conv2d(g, v.x, v.w, { ...geometry, bias: v.b }),
      ref: (v) => conv2dRef(v.x, c.x, v.w, c.w, { ...geometry, bias: v.b }).data,
      tol: TOL,
    });
  }
});

interface TransposeCase extends Case {
  outputPadding?: [number, number];
}

// x [N, C, H, W], w [C, O/groups, kH, kW]: strides, padding, output padding
// (one ≥ stride, allowed as dilation > stride: the rule crops dx and pads x
// for dW), dilation, groups.
const TRANSPOSE_CASES: TransposeCase[] = [
  { x: [1, 2, 3, 3], w: [2, 3, 2, 2], stride: [2, 2] }, // SAM's mask-decoder upscaling shape: 2×2, stride 2
  { x: [2, 4, 4, 3], w: [4, 1, 3, 3], stride: [2, 1], padding: [1, 1], outputPadding: [1, 0], groups: 2 },
  { x: [1, 3, 3, 4], w: [3, 2, 3, 2], stride: [1, 2], padding: [0, 1], dilation: [3, 1], outputPadding: [2, 1] },
];

// Σ of at most C·kH·kW (≤ 18) products per dx/output element and N·H·W (≤ 24) per dW element, of values in [-1, 1]
// and r ~ N(0, 1). TRANSPOSE_TOL is ~10× the worst measured on lavapipe: forward 1.5e-7, dx 5.0e-7, dw 8.0e-7,
// dbias 6.6e-7 (on gradients up to 12).
const TRANSPOSE_TOL = { atol: 1e-5, rtol: 0 };

opCase(test, 'convTranspose2d: dx (conv2d), dw (conv2dWeightGrad) and dbias match finite differences of the float64 forward', { convTranspose2d: 'gradient', conv2d: 'forward', conv2dWeightGrad: 'forward' }, async ({ gpu }) => {
  for (const [k, c] of TRANSPOSE_CASES.entries()) {
    const geometry = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, outputPadding: c.outputPadding };
    const o = c.w[1] * (c.groups ?? 1);
    await checkOp(gpu, `convTranspose2d case ${k}: x [${c.x}] w [${c.w}]`, {
      inputs: {
        x: { shape: c.x, data: randomArray(numelOf(c.x), 50 + k, -1, 1), grad: true },
        w: { shape: c.w, data: randomArray(numelOf(c.w), 60 + k, -1, 1), grad: true },
        b: { shape: [o], data: randomArray(o, 70 + k, -1, 1), grad: true },
      },
      build: (g, v) => G.convTranspose2d(g, v.x, v.w, { ...geometry, bias: v.b }),
      ref: (v) => convTranspose2dRef(v.x, c.x, v.w, c.w, { ...geometry, bias: v.b }).data,
      tol: TRANSPOSE_TOL,
    });
  }
});

test('bad inputs throw errors naming the op and the shapes', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, new Float32Array(2 * 3 * 5 * 5), [2, 3, 5, 5]);
  const dy = Tensor.fromArray(gpu, new Float32Array(2 * 4 * 3 * 3), [2, 4, 3, 3]);
  await assertThrows(() => conv2dWeightGrad(gpu, x, dy, [4, 3, 2, 2]), /conv2dWeightGrad/, /dy must be \[2, 4, 4, 4\]/, /\[2, 4, 3, 3\]/);
  await assertThrows(() => conv2dWeightGrad(gpu, x, dy, [4, 2, 3, 3]), /conv2dWeightGrad/, /does not fit/, /groups=1/);
  const g = new Graph(gpu);
  const xv = g.input('x', [1, 2, 4, 4]);
  const wv = g.input('w', [2, 2, 3, 3]);
  const y = G.conv2d(g, xv, wv, { activation: 'gelu' });
  await assertThrows(() => backward(g, G.reduceSum(g, y, [0, 1, 2, 3]), [wv]), /conv2d/, /fused gelu/);
});

test.run();
