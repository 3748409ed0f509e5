import { Graph, Tensor, backward, conv2dWeightGrad, graphOps as G } from '../src/node.js';
import { centralDifference, dot } from './ref/backward.js';
import { conv2d as conv2dRef, type Shape4 } from './ref/conv.js';
import { assertClose, assertThrows, gpuSuite, randomArray } from './util.js';

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
// up to rounding); fp32 kernels sum up to N·Ho·Wo (≤ 200) products: 1e-4.
const TOL = { atol: 1e-4, rtol: 1e-4 };

test('dx, dw and dbias of the graph op match finite differences of the float64 forward', async ({ gpu }) => {
  for (const [k, c] of CASES.entries()) {
    const geometry = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups };
    const xData = randomArray(c.x.reduce((a, b) => a * b), 10 + k, -1, 1);
    const wData = randomArray(c.w.reduce((a, b) => a * b), 20 + k, -1, 1);
    const bData = randomArray(c.w[0], 30 + k, -1, 1);
    const forward = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>) => conv2dRef(x, c.x, w, c.w, { ...geometry, bias: b });
    const yShape = forward(xData, wData, bData).shape;
    const r = randomArray(yShape.reduce((a, b) => a * b), 40 + k, -1, 1);

    const g = new Graph(gpu, `conv case ${k}`);
    const x = g.input('x', c.x);
    const w = g.input('w', c.w);
    const b = g.input('b', [c.w[0]]);
    const y = G.conv2d(g, x, w, { ...geometry, bias: b });
    const loss = G.reduceSum(g, G.mul(g, y, g.input('r', yShape)), [0, 1, 2, 3]);
    const grads = backward(g, loss, [x, w, b]);
    g.output('dx', grads.get(x)!);
    g.output('dw', grads.get(w)!);
    g.output('db', grads.get(b)!);
    const out = g.run({ x: xData, w: wData, b: bData, r });
    const label = `case ${k}: x [${c.x}] w [${c.w}]`;
    assertClose(await out.dx.read(), centralDifference((v) => dot(forward(v, wData, bData).data, r), xData), TOL, `${label} dx`);
    assertClose(await out.dw.read(), centralDifference((v) => dot(forward(xData, v, bData).data, r), wData), TOL, `${label} dw`);
    assertClose(await out.db.read(), centralDifference((v) => dot(forward(xData, wData, v).data, r), bData), TOL, `${label} dbias`);
    for (const t of Object.values(out)) t.dispose();
    g.dispose();
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
