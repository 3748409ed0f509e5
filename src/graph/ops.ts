// Op builders for the graph runtime: each infers its output shape when added
// (errors name the op and the shapes involved) and binds the kernel that
// runs it, writing into the buffer the memory planner chose.

import { shapeString, type Shape } from '../tensor.js';
import { attention as attentionKernel, type AttentionOptions } from '../kernels/attention.js';
import { add as addKernel, broadcastShapes, mul as mulKernel, sub as subKernel } from '../kernels/binary.js';
import { conv2d as conv2dKernel, type Conv2dOptions } from '../kernels/conv.js';
import { gather as gatherKernel } from '../kernels/gather.js';
import { layerNorm as layerNormKernel } from '../kernels/layernorm.js';
import { matmul as matmulKernel, type MatmulActivation } from '../kernels/matmul.js';
import { softmax as softmaxKernel } from '../kernels/softmax.js';
import { concat as concatKernel, permute as permuteKernel, slice as sliceKernel } from '../kernels/transform.js';
import { unary, type UnaryOp } from '../kernels/unary.js';
import type { Graph, Value } from './graph.js';

function broadcast(op: string, a: Shape, b: Shape): number[] {
  try {
    return broadcastShapes(a, b);
  } catch {
    throw new Error(`${op}: shapes ${shapeString(a)} and ${shapeString(b)} do not broadcast`);
  }
}

export interface GraphMatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Value;
  activation?: MatmulActivation;
  residual?: Value;
  alpha?: number;
}

/** act(alpha·(A·B) + bias) + residual, batch dims broadcast. */
export function matmul(g: Graph, a: Value, b: Value, opts: GraphMatmulOptions = {}): Value {
  if (a.shape.length < 2 || b.shape.length < 2) throw new Error(`matmul: operands need rank >= 2, got ${shapeString(a.shape)} and ${shapeString(b.shape)}`);
  const [m, ka] = opts.transA ? [a.shape.at(-1)!, a.shape.at(-2)!] : [a.shape.at(-2)!, a.shape.at(-1)!];
  const [kb, n] = opts.transB ? [b.shape.at(-1)!, b.shape.at(-2)!] : [b.shape.at(-2)!, b.shape.at(-1)!];
  if (ka !== kb) throw new Error(`matmul: inner dimensions differ: a ${shapeString(a.shape)} has K=${ka}, b ${shapeString(b.shape)} has K=${kb}`);
  const batch = broadcast('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, m, n];
  if (opts.bias && (opts.bias.shape.length !== 1 || opts.bias.shape[0] !== n)) {
    throw new Error(`matmul: bias must be [${n}], got ${shapeString(opts.bias.shape)}`);
  }
  const extra = [opts.bias, opts.residual].filter((v): v is Value => v !== undefined);
  const { transA, transB, activation, alpha } = opts;
  return g.apply('matmul', [a, b, ...extra], shape, 'f32', (gpu, [ta, tb, ...rest], out) => {
    const bias = opts.bias ? rest.shift() : undefined;
    const residual = opts.residual ? rest.shift() : undefined;
    matmulKernel(gpu, ta, tb, { transA, transB, activation, alpha, bias, residual, out });
  });
}

function binary(op: 'add' | 'sub' | 'mul', g: Graph, a: Value, b: Value): Value {
  const kernel = { add: addKernel, sub: subKernel, mul: mulKernel }[op];
  return g.apply(op, [a, b], broadcast(op, a.shape, b.shape), 'f32', (gpu, [ta, tb], out) => {
    kernel(gpu, ta, tb, out);
  });
}

export const add = (g: Graph, a: Value, b: Value) => binary('add', g, a, b);
export const sub = (g: Graph, a: Value, b: Value) => binary('sub', g, a, b);
export const mul = (g: Graph, a: Value, b: Value) => binary('mul', g, a, b);

export function activation(g: Graph, op: UnaryOp, x: Value): Value {
  return g.apply(op, [x], x.shape, 'f32', (gpu, [t], out) => {
    unary(gpu, op, t, out);
  });
}

export function layerNorm(g: Graph, x: Value, gamma?: Value, beta?: Value, eps = 1e-5): Value {
  const c = x.shape.at(-1);
  for (const [name, p] of [['gamma', gamma], ['beta', beta]] as const) {
    if (p && (p.shape.length !== 1 || p.shape[0] !== c)) throw new Error(`layerNorm: ${name} must be [${c}] for input ${shapeString(x.shape)}, got ${shapeString(p.shape)}`);
  }
  const params = [gamma, beta].filter((v): v is Value => v !== undefined);
  return g.apply('layerNorm', [x, ...params], x.shape, 'f32', (gpu, [t, ...rest], out) => {
    const gm = gamma ? rest.shift() : undefined;
    const bt = beta ? rest.shift() : undefined;
    layerNormKernel(gpu, t, gm, bt, { eps, out });
  });
}

export function softmax(g: Graph, x: Value, axis = -1): Value {
  return g.apply('softmax', [x], x.shape, 'f32', (gpu, [t], out) => {
    softmaxKernel(gpu, t, { axis, out });
  });
}

export interface GraphAttentionOptions {
  scale?: number;
  bias?: Value;
  causal?: boolean;
  layout?: AttentionOptions['layout'];
}

/** Fused softmax(scale·q·kᵀ + bias)·v; shapes as the attention kernel. */
export function attention(g: Graph, q: Value, k: Value, v: Value, opts: GraphAttentionOptions = {}): Value {
  for (const t of [q, k, v]) if (t.shape.length !== 4) throw new Error(`attention: q, k, v must be rank 4, got ${shapeString(q.shape)}, ${shapeString(k.shape)}, ${shapeString(v.shape)}`);
  const blhd = opts.layout === 'blhd';
  const lAxis = blhd ? 1 : 2;
  const hAxis = blhd ? 2 : 1;
  if (q.shape[0] !== k.shape[0] || k.shape[0] !== v.shape[0] || q.shape[hAxis] !== k.shape[hAxis] || k.shape[hAxis] !== v.shape[hAxis]) {
    throw new Error(`attention: batch and head dims differ: q ${shapeString(q.shape)}, k ${shapeString(k.shape)}, v ${shapeString(v.shape)}`);
  }
  if (q.shape[3] !== k.shape[3]) throw new Error(`attention: head dims differ: q ${shapeString(q.shape)}, k ${shapeString(k.shape)}`);
  if (k.shape[lAxis] !== v.shape[lAxis]) throw new Error(`attention: k ${shapeString(k.shape)} and v ${shapeString(v.shape)} differ in key length`);
  const shape = [...q.shape];
  shape[3] = v.shape[3];
  const { scale, causal, layout } = opts;
  const inputs = opts.bias ? [q, k, v, opts.bias] : [q, k, v];
  return g.apply('attention', inputs, shape, 'f32', (gpu, [tq, tk, tv, bias], out) => {
    attentionKernel(gpu, tq, tk, tv, { scale, causal, layout, bias, out });
  });
}

export function permute(g: Graph, x: Value, dims: readonly number[]): Value {
  const r = x.shape.length;
  const norm = dims.map((d) => (d < 0 ? d + r : d));
  if (norm.length !== r || [...norm].sort((a, b) => a - b).some((d, i) => d !== i)) {
    throw new Error(`permute: dims [${dims.join(', ')}] are not a permutation of the axes of ${shapeString(x.shape)}`);
  }
  return g.apply('permute', [x], norm.map((d) => x.shape[d]), x.dtype, (gpu, [t], out) => {
    permuteKernel(gpu, t, norm, out);
  });
}

/** Python-style slice on each axis (steps >= 1). */
export function slice(g: Graph, x: Value, starts: readonly number[], ends: readonly number[], steps?: readonly number[]): Value {
  const r = x.shape.length;
  if (starts.length !== r || ends.length !== r || (steps && steps.length !== r)) {
    throw new Error(`slice: starts/ends/steps need ${r} entries for ${shapeString(x.shape)}, got ${starts.length}/${ends.length}/${steps?.length ?? r}`);
  }
  const shape = x.shape.map((n, i) => {
    const step = steps?.[i] ?? 1;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const len = Math.ceil((clamp(ends[i]) - clamp(starts[i])) / step);
    return Math.max(0, len);
  });
  return g.apply('slice', [x], shape, x.dtype, (gpu, [t], out) => {
    sliceKernel(gpu, t, starts, ends, steps, out);
  });
}

export function concat(g: Graph, xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw new Error('concat: needs at least one value');
  const r = xs[0].shape.length;
  const ax = axis < 0 ? axis + r : axis;
  if (ax < 0 || ax >= r) throw new Error(`concat: axis ${axis} out of range for rank ${r}`);
  xs.forEach((x, i) => {
    if (x.shape.length !== r || x.shape.some((d, k) => k !== ax && d !== xs[0].shape[k])) {
      throw new Error(`concat: value ${i} ${shapeString(x.shape)} differs from value 0 ${shapeString(xs[0].shape)} off axis ${ax}`);
    }
  });
  const shape = [...xs[0].shape];
  shape[ax] = xs.reduce((s, x) => s + x.shape[ax], 0);
  return g.apply('concat', xs, shape, xs[0].dtype, (gpu, ts, out) => {
    concatKernel(gpu, ts, ax, out);
  }, xs.length);
}

/** Embedding lookup: table [V, ...rest] at i32 indices → [...indices, ...rest]. */
export function gather(g: Graph, table: Value, indices: Value): Value {
  if (indices.dtype !== 'i32') throw new Error(`gather: indices must be i32, got ${indices.dtype}`);
  return g.apply('gather', [table, indices], [...indices.shape, ...table.shape.slice(1)], table.dtype, (gpu, [t, i], out) => {
    gatherKernel(gpu, t, i, { out });
  });
}

export interface GraphConv2dOptions extends Omit<Conv2dOptions, 'bias' | 'out' | 'variant'> {
  bias?: Value;
}

export function conv2d(g: Graph, x: Value, w: Value, opts: GraphConv2dOptions = {}): Value {
  if (x.shape.length !== 4 || w.shape.length !== 4) throw new Error(`conv2d: x and w must be rank 4, got ${shapeString(x.shape)} and ${shapeString(w.shape)}`);
  const pair = (p: number | readonly [number, number] | undefined, d: number): [number, number] => (p === undefined ? [d, d] : typeof p === 'number' ? [p, p] : [p[0], p[1]]);
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const [n, , h, wd] = x.shape;
  const [o, , kh, kw] = w.shape;
  const ho = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((wd + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (ho <= 0 || wo <= 0) throw new Error(`conv2d: output size ${ho}×${wo} is empty for input ${shapeString(x.shape)} and weight ${shapeString(w.shape)}`);
  const { bias, ...rest } = opts;
  const inputs = bias ? [x, w, bias] : [x, w];
  return g.apply('conv2d', inputs, [n, o, ho, wo], 'f32', (gpu, [tx, tw, tb], out) => {
    conv2dKernel(gpu, tx, tw, { ...rest, bias: tb, out });
  });
}
