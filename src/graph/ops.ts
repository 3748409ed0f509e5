// Op builders for the graph runtime: each infers its output shape when added
// (errors name the op and the shapes involved), binds the kernel that runs
// it, writing into the buffer the memory planner chose, and registers the
// backward rule autograd.ts calls: a rule adds ops (built here too) that
// compute its inputs' gradients, only for the inputs that need one.
// Over 500 lines as one job: one short builder per graph op (op-table.ts lists
// them), each beside its backward rule; a split by op family would only spread
// the shared shape helpers.

import { numel, shapeString, type Shape } from '../tensor.js';
import { activationBackward } from '../kernels/activation-backward.js';
import { attention as attentionKernel, type AttentionOptions } from '../kernels/attention.js';
import { attentionBackward } from '../kernels/attention-backward.js';
import { add as addKernel, broadcastShapes, div as divKernel, mul as mulKernel, sub as subKernel } from '../kernels/binary.js';
import { conv2d as conv2dKernel, convTranspose2d as convTranspose2dKernel, depthwiseConv2dNhwc as depthwiseConv2dNhwcKernel, maxPool2d as maxPool2dKernel, type Conv2dOptions, type DepthwiseConv2dNhwcOptions, type ConvTranspose2dOptions, type MaxPool2dOptions } from '../kernels/conv.js';
import { conv2dWeightGrad } from '../kernels/conv-backward.js';
import { softmaxCrossEntropy } from '../kernels/cross-entropy.js';
import { gather as gatherKernel } from '../kernels/gather.js';
import { gatherBackward } from '../kernels/gather-backward.js';
import { layerNorm as layerNormKernel, layerNorm2d as layerNorm2dKernel } from '../kernels/layernorm.js';
import { layerNormBackward } from '../kernels/layernorm-backward.js';
import { l2Normalize as l2NormalizeKernel, l2NormalizeBackward } from '../kernels/l2norm.js';
import { matmul as matmulKernel, type MatmulActivation } from '../kernels/matmul.js';
import { resize as resizeKernel, resizeAxisMatrix, type ResizeOptions } from '../kernels/resize.js';
import { reduceMean as reduceMeanKernel, reduceSum as reduceSumKernel } from '../kernels/reduce.js';
import { softmax as softmaxKernel } from '../kernels/softmax.js';
import { concat as concatKernel, pad as padKernel, permute as permuteKernel, slice as sliceKernel } from '../kernels/transform.js';
import { unary, type UnaryOp } from '../kernels/unary.js';
import type { BackwardRule, Graph, Value } from './graph.js';
import { sameShape } from '../util/shape.js';

/** A zero-filled value (one clearBuffer, planned memory like any op). */
export function zeros(g: Graph, shape: Shape): Value {
  return g.apply('zeros', [], shape, 'f32', (gpu, _, out) => {
    if (out.byteLength > 0) gpu.commandEncoder().clearBuffer(out.buffer, 0, Math.ceil(out.byteLength / 4) * 4);
  });
}

/** x broadcast (numpy rules) to `shape`. */
export function broadcastTo(g: Graph, x: Value, shape: Shape): Value {
  if (sameShape(x.shape, shape)) return x;
  if (!sameShape(broadcast('broadcastTo', x.shape, shape), shape)) throw new Error(`broadcastTo: ${shapeString(x.shape)} does not broadcast to ${shapeString(shape)}`);
  return add(g, zeros(g, shape), x);
}

/**
 * The gradient of a value broadcast from `shape` up to dy's shape: dy summed
 * over the broadcast axes (leading extra axes and axes of length 1 in `shape`).
 */
export function sumToShape(g: Graph, dy: Value, shape: Shape): Value {
  if (sameShape(dy.shape, shape)) return dy;
  const lead = dy.shape.length - shape.length;
  if (lead < 0) throw new Error(`sumToShape: ${shapeString(dy.shape)} has fewer axes than ${shapeString(shape)}`);
  const axes = dy.shape.map((_, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1));
  const summed = axes.length > 0 ? reduceSum(g, dy, axes) : dy;
  return g.reshape(summed, shape);
}

const constantCache = new WeakMap<Graph, Map<number, Value>>();

/** A graph-owned f32 [1] constant, one per graph and value. */
export function scalar(g: Graph, value: number): Value {
  let cache = constantCache.get(g);
  if (!cache) constantCache.set(g, (cache = new Map()));
  let v = cache.get(value);
  if (!v) cache.set(value, (v = g.constant(`scalar(${value})`, [value], [1])));
  return v;
}

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
  }, 1, matmulBackward(opts));
}

/**
 * Y = act(alpha·op(A)·op(B) + bias) + residual. A fused activation's
 * derivative needs the pre-activation, which the forward does not keep: the
 * rule recomputes it (one more matmul without activation, only when a
 * gradient flows through this node), so the forward stays one fused dispatch.
 */
function matmulBackward(opts: GraphMatmulOptions): BackwardRule {
  const { transA = false, transB = false, bias, residual, activation = 'none' } = opts;
  const alpha = opts.alpha ?? 1;
  return (g, { inputs, dOutputs, needs }) => {
    const [a, b] = inputs;
    const dY = dOutputs[0]!;
    const grads: Array<Value | undefined> = [];
    let dZ = dY;
    if (activation !== 'none' && (needs[0] || needs[1] || (bias && needs[2]))) {
      const pre = matmul(g, a, b, { transA, transB, bias, alpha });
      dZ = activationGrad(g, activation, pre, dY);
    }
    if (needs[0]) {
      let dA: Value;
      if (!transA) dA = matmul(g, dZ, b, { transB: !transB, alpha });
      else dA = matmul(g, b, dZ, { transA: transB, transB: true, alpha });
      grads[0] = sumToShape(g, dA, a.shape);
    }
    if (needs[1]) {
      // A batched activation times a shared weight: fold the batch into rows so dB is one matmul, not a per-batch product summed after.
      const fold = b.shape.length === 2 && a.shape.length > 2 && !transA;
      const a2 = fold ? g.reshape(a, [-1, a.shape.at(-1)!]) : a;
      const dZ2 = fold ? g.reshape(dZ, [-1, dZ.shape.at(-1)!]) : dZ;
      let dB: Value;
      if (!transB) dB = matmul(g, a2, dZ2, { transA: !transA, alpha });
      else dB = matmul(g, dZ2, a2, { transA: true, transB: transA, alpha });
      grads[1] = sumToShape(g, dB, b.shape);
    }
    let k = 2;
    if (bias) {
      if (needs[k]) grads[k] = sumToShape(g, dZ, bias.shape);
      k++;
    }
    if (residual && needs[k]) grads[k] = sumToShape(g, dY, residual.shape);
    return grads;
  };
}

const binaryBackward: Record<'add' | 'sub' | 'mul', BackwardRule> = {
  add: (g, { inputs: [a, b], dOutputs: [dY], needs }) => [needs[0] ? sumToShape(g, dY!, a.shape) : undefined, needs[1] ? sumToShape(g, dY!, b.shape) : undefined],
  sub: (g, { inputs: [a, b], dOutputs: [dY], needs }) => [
    needs[0] ? sumToShape(g, dY!, a.shape) : undefined,
    needs[1] ? sumToShape(g, mul(g, dY!, scalar(g, -1)), b.shape) : undefined,
  ],
  mul: (g, { inputs: [a, b], dOutputs: [dY], needs }) => [
    needs[0] ? sumToShape(g, mul(g, dY!, b), a.shape) : undefined,
    needs[1] ? sumToShape(g, mul(g, dY!, a), b.shape) : undefined,
  ],
};

function binary(op: 'add' | 'sub' | 'mul', g: Graph, a: Value, b: Value): Value {
  const kernel = { add: addKernel, sub: subKernel, mul: mulKernel }[op];
  return g.apply(op, [a, b], broadcast(op, a.shape, b.shape), 'f32', (gpu, [ta, tb], out) => {
    kernel(gpu, ta, tb, out);
  }, 1, binaryBackward[op]);
}

export const add = (g: Graph, a: Value, b: Value) => binary('add', g, a, b);
export const sub = (g: Graph, a: Value, b: Value) => binary('sub', g, a, b);
export const mul = (g: Graph, a: Value, b: Value) => binary('mul', g, a, b);

export function activation(g: Graph, op: UnaryOp, x: Value): Value {
  return g.apply(op, [x], x.shape, 'f32', (gpu, [t], out) => {
    unary(gpu, op, t, out);
  }, 1, (gr, { inputs: [xv], dOutputs: [dY] }) => [activationGrad(gr, op, xv, dY!)]);
}

/** dy · op'(x): the activation's backward as an op (first-order only: it has no backward itself). */
export function activationGrad(g: Graph, op: UnaryOp, x: Value, dy: Value): Value {
  if (!sameShape(x.shape, dy.shape)) throw new Error(`activationGrad: dy ${shapeString(dy.shape)} must have the shape of x ${shapeString(x.shape)}`);
  return g.apply(`activationBackward.${op}`, [x, dy], x.shape, 'f32', (gpu, [tx, tdy], out) => {
    activationBackward(gpu, op, tx, tdy, { out });
  });
}

/** x / max(‖x‖, eps) over the last axis (CLIP normalizes embeddings before cosine logits). */
export function l2Normalize(g: Graph, x: Value, eps = 1e-12): Value {
  return g.apply('l2Normalize', [x], x.shape, 'f32', (gpu, [t], out) => {
    l2NormalizeKernel(gpu, t, { eps, out });
  }, 1, (gr, { inputs: [xv], dOutputs: [dY] }) => [
    gr.apply('l2NormalizeBackward', [dY!, xv], xv.shape, 'f32', (gpu, [tdy, tx], out) => {
      l2NormalizeBackward(gpu, tdy, tx, { eps, out });
    }),
  ]);
}

function reduceAxes(op: string, x: Value, axes: number | readonly number[]): number[] {
  const r = x.shape.length;
  const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => (a < 0 ? a + r : a));
  if (list.length === 0 || list.some((a) => a < 0 || a >= r) || new Set(list).size !== list.length) {
    throw new Error(`${op}: axes [${typeof axes === 'number' ? axes : axes.join(', ')}] must be distinct axes of ${shapeString(x.shape)}`);
  }
  return list.sort((a, b) => a - b);
}

function reduction(kind: 'sum' | 'mean', g: Graph, x: Value, axes: number | readonly number[], keepDims: boolean): Value {
  const op = kind === 'sum' ? 'reduceSum' : 'reduceMean';
  const list = reduceAxes(op, x, axes);
  const kept = x.shape.map((d, i) => (list.includes(i) ? 1 : d));
  const shape = keepDims ? kept : x.shape.filter((_, i) => !list.includes(i));
  const count = list.reduce((n, a) => n * x.shape[a], 1);
  const kernel = kind === 'sum' ? reduceSumKernel : reduceMeanKernel;
  return g.apply(op, [x], shape, 'f32', (gpu, [t], out) => {
    kernel(gpu, t, list, { keepDims, out });
  }, 1, (gr, { inputs: [xv], dOutputs: [dY] }) => {
    const spread = broadcastTo(gr, gr.reshape(dY!, kept), xv.shape);
    return [kind === 'sum' ? spread : mul(gr, spread, scalar(gr, 1 / count))];
  });
}

/** Sum over `axes`. */
export const reduceSum = (g: Graph, x: Value, axes: number | readonly number[], keepDims = false) => reduction('sum', g, x, axes, keepDims);
/** Mean over `axes`. */
export const reduceMean = (g: Graph, x: Value, axes: number | readonly number[], keepDims = false) => reduction('mean', g, x, axes, keepDims);

export function layerNorm(g: Graph, x: Value, gamma?: Value, beta?: Value, eps = 1e-5): Value {
  const c = x.shape.at(-1);
  for (const [name, p] of [['gamma', gamma], ['beta', beta]] as const) {
    if (p && (p.shape.length !== 1 || p.shape[0] !== c)) throw new Error(`layerNorm: ${name} must be [${c}] for input ${shapeString(x.shape)}, got ${shapeString(p.shape)}`);
  }
  const params = [gamma, beta].filter((v): v is Value => v !== undefined);
  // The row statistics are written in the same pass (they are small); they live on only if a backward reads them.
  const rows = numel(x.shape) / (c ?? 1);
  const [y] = g.applyMulti('layerNorm', [x, ...params], [{ shape: x.shape, dtype: 'f32' }, { shape: [rows], dtype: 'f32' }, { shape: [rows], dtype: 'f32' }], (gpu, [t, ...rest], [out, mean, rstd]) => {
    const gm = gamma ? rest.shift() : undefined;
    const bt = beta ? rest.shift() : undefined;
    layerNormKernel(gpu, t, gm, bt, { eps, out, mean, rstd });
  }, 1, layerNormBackwardRule(gamma !== undefined, beta !== undefined));
  return y;
}

function layerNormBackwardRule(hasGamma: boolean, hasBeta: boolean): BackwardRule {
  return (g, { inputs, outputs: [, mean, rstd], dOutputs: [dY], needs }) => {
    const [x, ...params] = inputs;
    const gamma = hasGamma ? params[0] : undefined;
    const iBeta = hasGamma ? 2 : 1;
    const wantDx = needs[0];
    const wantDgamma = hasGamma && needs[1];
    const wantDbeta = hasBeta && needs[iBeta];
    const grads: Array<Value | undefined> = [];
    // Without γ the kernel returns dx only; dβ is then the plain row sum of dy.
    if (hasBeta && !hasGamma && wantDbeta) grads[iBeta] = sumToShape(g, dY!, [x.shape.at(-1)!]);
    const wanted: Array<'dx' | 'dgamma' | 'dbeta'> = [];
    if (wantDx) wanted.push('dx');
    if (wantDgamma) wanted.push('dgamma');
    if (hasGamma && wantDbeta) wanted.push('dbeta');
    if (wanted.length === 0) return grads;
    const c = x.shape.at(-1)!;
    const ins = gamma ? [dY!, x, mean, rstd, gamma] : [dY!, x, mean, rstd];
    const outs = g.applyMulti('layerNormBackward', ins, wanted.map((w) => ({ shape: w === 'dx' ? x.shape : [c], dtype: 'f32' as const })), (gpu, [tdy, tx, tm, tr, tg], outTensors) => {
      const r = layerNormBackward(gpu, tdy, tx, tm, tr, tg, { needInputGrad: wantDx, out: Object.fromEntries(wanted.map((w, k) => [w, outTensors[k]])) });
      // The kernel computes dγ and dβ together; the one not asked for is dropped.
      for (const w of ['dgamma', 'dbeta'] as const) if (!wanted.includes(w)) r[w]?.dispose();
    }, 3);
    wanted.forEach((w, k) => {
      grads[w === 'dx' ? 0 : w === 'dgamma' ? 1 : iBeta] = outs[k];
    });
    return grads;
  };
}

export function softmax(g: Graph, x: Value, axis = -1): Value {
  return g.apply('softmax', [x], x.shape, 'f32', (gpu, [t], out) => {
    softmaxKernel(gpu, t, { axis, out });
  }, 1, (gr, { outputs: [y], dOutputs: [dY] }) => [softmaxGrad(gr, y, dY!, axis)]);
}

/** dX = Y ∘ (dY − Σ_axis dY∘Y), the softmax backward from its output. */
function softmaxGrad(g: Graph, y: Value, dY: Value, axis: number): Value {
  const dot = reduceSum(g, mul(g, dY, y), axis, true);
  return mul(g, y, sub(g, dY, dot));
}

export interface GraphAttentionOptions {
  scale?: number;
  /** Additive f32 scores, rank 4, broadcastable to [B, H, Lq, Lk]; differentiable. */
  bias?: Value;
  causal?: boolean;
  /** [B, Lk] u32/i32/f32, nonzero = padded key (no gradient: it only selects). */
  keyPaddingMask?: Value;
  layout?: AttentionOptions['layout'];
}

/**
 * Fused softmax(scale·q·kᵀ + bias, masked)·v; shapes and masking as the
 * attention kernel. The node has a second output, the row log-sum-exp
 * [B, H, Lq] (1/Dv of the output's size), which the fused backward reads to
 * recompute the probabilities. The kernel writes it only when something
 * reads it (Graph.isRead), i.e. only when a backward was built through this
 * node; otherwise it costs one small planned slot and no work.
 */
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
  const [b, h, lq, lk] = [q.shape[0], q.shape[hAxis], q.shape[lAxis], k.shape[lAxis]];
  const full = [b, h, lq, lk];
  const { bias, keyPaddingMask: mask } = opts;
  if (bias && (bias.shape.length !== 4 || bias.shape.some((n, i) => n !== 1 && n !== full[i]))) {
    throw new Error(`attention: bias ${shapeString(bias.shape)} is not broadcastable to [B, H, Lq, Lk] = ${shapeString(full)} (rank 4, each dim equal or 1)`);
  }
  if (mask && (mask.shape.length !== 2 || mask.shape[0] !== b || mask.shape[1] !== lk)) {
    throw new Error(`attention: keyPaddingMask must be [B, Lk] = ${shapeString([b, lk])}, got ${shapeString(mask.shape)}`);
  }
  const shape = [...q.shape];
  shape[3] = v.shape[3];
  const { scale, causal, layout } = opts;
  const inputs = [q, k, v, ...[bias, mask].filter((x): x is Value => x !== undefined)];
  const outputs = g.applyMulti('attention', inputs, [{ shape, dtype: 'f32' }, { shape: [b, h, lq], dtype: 'f32' }], (gpu, [tq, tk, tv, ...rest], [out, lse]) => {
    const tBias = bias ? rest.shift() : undefined;
    const tMask = mask ? rest.shift() : undefined;
    attentionKernel(gpu, tq, tk, tv, { scale, causal, layout, bias: tBias, keyPaddingMask: tMask, out, lse: g.isRead(outputs[1]) ? lse : undefined });
  }, 1, attentionBackwardRule(opts));
  return outputs[0];
}

/**
 * The fused FlashAttention-2 style backward: probabilities are recomputed per
 * tile from q, k and the forward's lse, so no [B, H, Lq, Lk] matrix exists
 * unless the bias needs a gradient (dbias is dS summed to the bias's shape).
 * The kernel always computes dq, dk and dv (two dispatches); only the
 * gradients asked for become outputs of the node.
 */
function attentionBackwardRule(opts: GraphAttentionOptions): BackwardRule {
  const { scale, causal, layout, bias, keyPaddingMask: mask } = opts;
  return (g, { inputs, outputs: [out, lse], dOutputs: [dOut], needs }) => {
    const [q, k, v] = inputs;
    const biasIndex = bias ? 3 : -1;
    const needBiasGrad = bias !== undefined && needs[biasIndex];
    const wanted = (['dq', 'dk', 'dv'] as const).filter((_, i) => needs[i]);
    const names: Array<'dq' | 'dk' | 'dv' | 'dbias'> = needBiasGrad ? [...wanted, 'dbias'] : [...wanted];
    const grads: Array<Value | undefined> = [];
    if (names.length === 0 || !dOut) return grads;
    const shapeOf = { dq: q.shape, dk: k.shape, dv: v.shape, dbias: bias?.shape ?? [] };
    const extra = inputs.slice(3); // bias, mask: as the forward
    // Summing dS over the bias's broadcast dims is one more dispatch.
    const blhd = layout === 'blhd';
    const full = [q.shape[0], q.shape[blhd ? 2 : 1], q.shape[blhd ? 1 : 2], k.shape[blhd ? 1 : 2]];
    const dispatches = needBiasGrad && bias.shape.some((n, i) => n !== full[i]) ? 3 : 2;
    const outs = g.applyMulti('attentionBackward', [q, k, v, out, dOut, lse, ...extra], names.map((n) => ({ shape: shapeOf[n], dtype: 'f32' as const })), (gpu, [tq, tk, tv, tOut, tdOut, tLse, ...rest], outTensors) => {
      const tBias = bias ? rest.shift() : undefined;
      const tMask = mask ? rest.shift() : undefined;
      const r = attentionBackward(gpu, tq, tk, tv, tOut, tdOut, tLse, { scale, causal, layout, bias: tBias, keyPaddingMask: tMask, needBiasGrad, out: Object.fromEntries(names.map((n, i) => [n, outTensors[i]])) });
      // The kernel always computes dq, dk and dv; those not asked for are dropped.
      for (const n of ['dq', 'dk', 'dv'] as const) if (!names.includes(n)) r[n].dispose();
    }, dispatches);
    names.forEach((n, i) => {
      grads[n === 'dbias' ? biasIndex : ['dq', 'dk', 'dv'].indexOf(n)] = outs[i];
    });
    return grads;
  };
}

export function permute(g: Graph, x: Value, dims: readonly number[]): Value {
  const r = x.shape.length;
  const norm = dims.map((d) => (d < 0 ? d + r : d));
  if (norm.length !== r || [...norm].sort((a, b) => a - b).some((d, i) => d !== i)) {
    throw new Error(`permute: dims [${dims.join(', ')}] are not a permutation of the axes of ${shapeString(x.shape)}`);
  }
  const inverse: number[] = [];
  norm.forEach((d, i) => (inverse[d] = i));
  return g.apply('permute', [x], norm.map((d) => x.shape[d]), x.dtype, (gpu, [t], out) => {
    permuteKernel(gpu, t, norm, out);
  }, 1, (gr, { dOutputs: [dY] }) => [permute(gr, dY!, inverse)]);
}

/** Python-style slice on each axis (steps >= 1). */
export function slice(g: Graph, x: Value, starts: readonly number[], ends: readonly number[], steps?: readonly number[]): Value {
  const r = x.shape.length;
  if (starts.length !== r || ends.length !== r || (steps && steps.length !== r)) {
    throw new Error(`slice: starts/ends/steps need ${r} entries for ${shapeString(x.shape)}, got ${starts.length}/${ends.length}/${steps?.length ?? r}`);
  }
  const begin: number[] = [];
  const shape = x.shape.map((n, i) => {
    const step = steps?.[i] ?? 1;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    begin.push(clamp(starts[i]));
    const len = Math.ceil((clamp(ends[i]) - clamp(starts[i])) / step);
    return Math.max(0, len);
  });
  return g.apply('slice', [x], shape, x.dtype, (gpu, [t], out) => {
    sliceKernel(gpu, t, starts, ends, steps, out);
  }, 1, (gr, { inputs: [xv], dOutputs: [dY] }) => {
    if (steps?.some((s) => s !== 1)) throw new Error(`slice: backward supports step 1 only, got steps [${steps.join(', ')}]`);
    return [pad(gr, dY!, xv.shape.map((n, i) => [begin[i], n - begin[i] - shape[i]] as const))];
  });
}

/** Zero padding: pads[d] = [before, after] on axis d. */
export function pad(g: Graph, x: Value, pads: ReadonlyArray<readonly [number, number]>): Value {
  if (pads.length !== x.shape.length || pads.some((p) => p.length !== 2 || p.some((v) => !Number.isInteger(v) || v < 0))) {
    throw new Error(`pad: pads ${JSON.stringify(pads)} needs [before, after] >= 0 for each axis of ${shapeString(x.shape)}`);
  }
  const shape = x.shape.map((n, d) => pads[d][0] + n + pads[d][1]);
  return g.apply('pad', [x], shape, x.dtype, (gpu, [t], out) => {
    padKernel(gpu, t, pads, { out });
  }, 1, (gr, { dOutputs: [dY] }) => [slice(gr, dY!, pads.map((p) => p[0]), x.shape.map((n, d) => pads[d][0] + n))]);
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
  }, xs.length, (gr, { inputs, dOutputs: [dY], needs }) => {
    let offset = 0;
    return inputs.map((x, i) => {
      const start = offset;
      offset += x.shape[ax];
      if (!needs[i]) return undefined;
      return slice(gr, dY!, x.shape.map((_, d) => (d === ax ? start : 0)), x.shape.map((n, d) => (d === ax ? start + n : n)));
    });
  });
}

/** Embedding lookup: table [V, ...rest] at i32 indices → [...indices, ...rest]; the table's gradient is a deterministic scatter-add. */
export function gather(g: Graph, table: Value, indices: Value): Value {
  if (indices.dtype !== 'i32') throw new Error(`gather: indices must be i32, got ${indices.dtype}`);
  return g.apply('gather', [table, indices], [...indices.shape, ...table.shape.slice(1)], table.dtype, (gpu, [t, i], out) => {
    gatherKernel(gpu, t, i, { out });
  }, 1, (gr, { inputs: [, idx], dOutputs: [dY], needs }) => [needs[0] ? gatherGrad(gr, dY!, idx, table.shape[0]) : undefined]);
}

/** Σ of dy rows into a [vocab, ...rest] table at their indices (gather's adjoint, first-order only). */
function gatherGrad(g: Graph, dy: Value, indices: Value, vocab: number): Value {
  return g.apply('gatherBackward', [dy, indices], [vocab, ...dy.shape.slice(indices.shape.length)], 'f32', (gpu, [tdy, ti], out) => {
    gatherBackward(gpu, tdy, ti, vocab, { out });
  });
}

export interface GraphConv2dOptions extends Omit<Conv2dOptions, 'bias' | 'out' | 'variant'> {
  bias?: Value;
}

type Pair = number | readonly [number, number] | undefined;
const pair = (p: Pair, d: number): [number, number] => (p === undefined ? [d, d] : typeof p === 'number' ? [p, p] : [p[0], p[1]]);

/** The output size of a convolution / pooling window sweep along one axis (PyTorch's formula, floor mode). */
function windowOutput(len: number, kernel: number, stride: number, padding: number, dilation: number): number {
  return Math.floor((len + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

export function conv2d(g: Graph, x: Value, w: Value, opts: GraphConv2dOptions = {}): Value {
  if (x.shape.length !== 4 || w.shape.length !== 4) throw new Error(`conv2d: x and w must be rank 4, got ${shapeString(x.shape)} and ${shapeString(w.shape)}`);
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const [n, , h, wd] = x.shape;
  const [o, , kh, kw] = w.shape;
  const ho = windowOutput(h, kh, sh, ph, dh);
  const wo = windowOutput(wd, kw, sw, pw, dw);
  if (ho <= 0 || wo <= 0) throw new Error(`conv2d: output size ${ho}×${wo} is empty for input ${shapeString(x.shape)} and weight ${shapeString(w.shape)}`);
  const { bias, ...rest } = opts;
  const inputs = bias ? [x, w, bias] : [x, w];
  const geometry = { stride: [sh, sw] as [number, number], padding: [ph, pw] as [number, number], dilation: [dh, dw] as [number, number], groups: opts.groups };
  return g.apply('conv2d', inputs, [n, o, ho, wo], 'f32', (gpu, [tx, tw, tb], out) => {
    conv2dKernel(gpu, tx, tw, { ...rest, bias: tb, out });
  }, 1, (gr, { inputs: [xv, wv], dOutputs: [dY], needs }) => {
    // A fused activation's derivative needs the pre-activation, which is not kept.
    if (opts.activation && opts.activation !== 'none') {
      throw new Error(`conv2d: no backward through the fused ${opts.activation} (x ${shapeString(x.shape)}, w ${shapeString(w.shape)}); build conv2d then activation to train through it`);
    }
    // dx: the transposed convolution with the same weights; output padding restores rows the forward's floor dropped.
    const dx = needs[0]
      ? convTranspose2d(gr, dY!, wv, { ...geometry, outputPadding: [h - ((ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1), wd - ((wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1)] })
      : undefined;
    const dW = needs[1] ? conv2dWeightGradOp(gr, xv, dY!, wv.shape, geometry) : undefined;
    const dB = bias && needs[2] ? reduceSum(gr, dY!, [0, 2, 3]) : undefined;
    return [dx, dW, dB];
  });
}

type Conv2dGeometry = Pick<Conv2dOptions, 'stride' | 'padding' | 'dilation' | 'groups'>;

/** dW [O, C/groups, kH, kW] of y = conv2d(x, w) for dy (first-order only: it has no backward itself). */
function conv2dWeightGradOp(g: Graph, x: Value, dy: Value, weightShape: Shape, geometry: Conv2dGeometry): Value {
  return g.apply('conv2dWeightGrad', [x, dy], weightShape, 'f32', (gpu, [tx, tdy], out) => {
    conv2dWeightGrad(gpu, tx, tdy, weightShape, geometry, { out });
  });
}

export interface GraphConvTranspose2dOptions extends Omit<ConvTranspose2dOptions, 'bias' | 'out'> {
  bias?: Value;
}

/**
 * Transposed convolution: x [N, C, H, W], w [C, O/groups, kH, kW]. It is the
 * adjoint of conv2d(·, w) with the same geometry, so its backward is built
 * from conv2d's kernels: dx = conv2d(dy, w), dW = conv2d's weight gradient
 * with x and dy in swapped roles, dbias = Σ dy over N, H, W.
 */
export function convTranspose2d(g: Graph, x: Value, w: Value, opts: GraphConvTranspose2dOptions = {}): Value {
  if (x.shape.length !== 4 || w.shape.length !== 4) throw new Error(`convTranspose2d: x and w must be rank 4, got ${shapeString(x.shape)} and ${shapeString(w.shape)}`);
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [oph, opw] = pair(opts.outputPadding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const [n, , h, wd] = x.shape;
  const [, og, kh, kw] = w.shape;
  const ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1;
  const wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1;
  if (ho <= 0 || wo <= 0) throw new Error(`convTranspose2d: output size ${ho}×${wo} is empty for input ${shapeString(x.shape)} and weight ${shapeString(w.shape)}`);
  const { bias, ...rest } = opts;
  const inputs = bias ? [x, w, bias] : [x, w];
  const geometry = { stride: [sh, sw] as [number, number], padding: [ph, pw] as [number, number], dilation: [dh, dw] as [number, number], groups: opts.groups };
  return g.apply('convTranspose2d', inputs, [n, og * (opts.groups ?? 1), ho, wo], 'f32', (gpu, [tx, tw, tb], out) => {
    convTranspose2dKernel(gpu, tx, tw, { ...rest, bias: tb, out });
  }, 1, (gr, { inputs: [xv, wv], dOutputs: [dY], needs }) => {
    // conv2d over dy gives windowOutput(ho) ≥ h rows; more only when outputPadding ≥ stride (allowed
    // when dilation > stride): those rows of dx do not exist, and dW sees x zero-padded to match.
    const hc = windowOutput(ho, kh, sh, ph, dh);
    const wc = windowOutput(wo, kw, sw, pw, dw);
    const cropped = hc !== h || wc !== wd;
    let dx: Value | undefined;
    if (needs[0]) {
      dx = conv2d(gr, dY!, wv, geometry);
      if (cropped) dx = slice(gr, dx, [0, 0, 0, 0], [n, x.shape[1], h, wd]);
    }
    const xFull = cropped ? pad(gr, xv, [[0, 0], [0, 0], [0, hc - h], [0, wc - wd]]) : xv;
    const dW = needs[1] ? conv2dWeightGradOp(gr, dY!, xFull, wv.shape, geometry) : undefined;
    const dB = bias && needs[2] ? reduceSum(gr, dY!, [0, 2, 3]) : undefined;
    return [dx, dW, dB];
  });
}

/** Max pooling (forward only), floor mode: x [N, C, H, W]. */
export function maxPool2d(g: Graph, x: Value, opts: Omit<MaxPool2dOptions, 'ceilMode' | 'out'>): Value {
  if (x.shape.length !== 4) throw new Error(`maxPool2d: x must be [N, C, H, W], got ${shapeString(x.shape)}`);
  const [kh, kw] = pair(opts.kernel, 1);
  const [sh, sw] = pair(opts.stride ?? opts.kernel, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const [n, c, h, wd] = x.shape;
  const ho = windowOutput(h, kh, sh, ph, dh);
  const wo = windowOutput(wd, kw, sw, pw, dw);
  if (ho <= 0 || wo <= 0) throw new Error(`maxPool2d: output size ${ho}×${wo} is empty for input ${shapeString(x.shape)} and kernel ${kh}×${kw}`);
  return g.apply('maxPool2d', [x], [n, c, ho, wo], 'f32', (gpu, [tx], out) => {
    maxPool2dKernel(gpu, tx, { ...opts, out });
  });
}

/**
 * F.interpolate to a fixed size: x [N, C, H, W] → [N, C, Ho, Wo]. Resize is
 * linear and separable, y = Rh · x · Rwᵀ per plane, so the backward is
 * dx = Rhᵀ · dy · Rw: two matmuls with the axis matrices (kernels/resize.ts
 * resizeAxisMatrix, from the shader's own f32 index math) as constants.
 */
export function resize(g: Graph, x: Value, size: readonly [number, number], opts: Pick<ResizeOptions, 'mode' | 'alignCorners'>): Value {
  if (x.shape.length !== 4) throw new Error(`resize: x must be [N, C, H, W], got ${shapeString(x.shape)}`);
  if (!(size[0] > 0 && size[1] > 0)) throw new Error(`resize: size must be positive, got ${size.join('×')}`);
  const [, , h, w] = x.shape;
  return g.apply(`resize.${opts.mode}`, [x], [x.shape[0], x.shape[1], size[0], size[1]], 'f32', (gpu, [tx], out) => {
    resizeKernel(gpu, tx, { ...opts, size, out });
  }, 1, (gr, { dOutputs: [dY] }) => {
    const tag = `${opts.mode}${opts.alignCorners ? ',alignCorners' : ''}`;
    const rh = gr.constant(`resize.rows(${h}→${size[0]},${tag})`, resizeAxisMatrix(h, size[0], opts.mode, opts.alignCorners), [size[0], h]);
    const rw = gr.constant(`resize.cols(${w}→${size[1]},${tag})`, resizeAxisMatrix(w, size[1], opts.mode, opts.alignCorners), [size[1], w]);
    return [matmul(gr, rh, matmul(gr, dY!, rw), { transA: true })];
  });
}

/**
 * SAM's LayerNorm2d: normalizes [N, C, H, W] over C at every pixel. Its
 * backward is layerNorm's on the channels-last permutation; the forward
 * keeps no row statistics, so the rule recomputes them with one layerNorm
 * pass (only when a gradient flows through this node).
 */
export function layerNorm2d(g: Graph, x: Value, gamma: Value, beta: Value, eps = 1e-6): Value {
  if (x.shape.length !== 4) throw new Error(`layerNorm2d: x must be [N, C, H, W], got ${shapeString(x.shape)}`);
  return g.apply('layerNorm2d', [x, gamma, beta], x.shape, 'f32', (gpu, [tx, tg, tb], out) => {
    layerNorm2dKernel(gpu, tx, tg, tb, { eps, out });
  }, 1, (gr, { inputs: [xv, gv, bv], dOutputs: [dY], needs }) => {
    const channelsLast = [0, 2, 3, 1];
    const xl = permute(gr, xv, channelsLast);
    const stats = gr.producerOf(layerNorm(gr, xl, gv, bv, eps))!.outputs;
    const [dxl, dgamma, dbeta] = layerNormBackwardRule(true, true)(gr, { inputs: [xl, gv, bv], outputs: stats, dOutputs: [permute(gr, dY!, channelsLast)], needs });
    return [dxl && permute(gr, dxl, [0, 3, 1, 2]), dgamma, dbeta];
  });
}

/** Elementwise a / b with broadcasting; backward da = dy / b, db = −(dy / b) · y. */
export function div(g: Graph, a: Value, b: Value): Value {
  return g.apply('div', [a, b], broadcast('div', a.shape, b.shape), 'f32', (gpu, [ta, tb], out) => {
    divKernel(gpu, ta, tb, out);
  }, 1, (gr, { inputs: [av, bv], outputs: [y], dOutputs: [dY], needs }) => {
    const q = div(gr, dY!, bv);
    return [needs[0] ? sumToShape(gr, q, av.shape) : undefined, needs[1] ? sumToShape(gr, mul(gr, mul(gr, q, y), scalar(gr, -1)), bv.shape) : undefined];
  });
}

export interface GraphCrossEntropyOptions {
  /** ε in [0, 1] (torch's label_smoothing). */
  labelSmoothing?: number;
}

/**
 * Mean softmax cross-entropy of logits [N, K] against i32 labels [N]: a [1]
 * loss. The kernel writes d loss / d logits in the same pass; the backward
 * only scales that saved gradient by the incoming one.
 */
export function crossEntropy(g: Graph, logits: Value, labels: Value, opts: GraphCrossEntropyOptions = {}): Value {
  if (logits.shape.length !== 2) throw new Error(`crossEntropy: logits must be [N, K], got ${shapeString(logits.shape)}`);
  if (labels.dtype !== 'i32' || labels.shape.length !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: labels must be i32 [${logits.shape[0]}] for logits ${shapeString(logits.shape)}, got ${labels.dtype} ${shapeString(labels.shape)}`);
  }
  const [loss] = g.applyMulti('crossEntropy', [logits, labels], [{ shape: [1], dtype: 'f32' }, { shape: logits.shape, dtype: 'f32' }], (gpu, [tl, ty], [outLoss, outGrad]) => {
    softmaxCrossEntropy(gpu, tl, ty, { labelSmoothing: opts.labelSmoothing, out: { loss: outLoss, dlogits: outGrad } });
  }, 2, (gr, { outputs: [, dLogits], dOutputs: [dLoss], needs }) => {
    if (needs[1]) throw new Error('crossEntropy: labels have no gradient');
    return [mul(gr, dLogits, dLoss!)];
  });
  return loss;
}

export interface GraphDepthwiseConv2dNhwcOptions extends Omit<DepthwiseConv2dNhwcOptions, 'bias' | 'out'> {
  /** [C] */
  bias?: Value;
}

/**
 * Depthwise conv on channels-last x [N, H, W, C] with w [KH, KW, C] (kernels/conv.ts
 * depthwiseConv2dNhwc): → [N, Ho, Wo, C]. Forward only.
 */
export function depthwiseConv2dNhwc(g: Graph, x: Value, w: Value, opts: GraphDepthwiseConv2dNhwcOptions = {}): Value {
  if (x.shape.length !== 4 || w.shape.length !== 3 || w.shape[2] !== x.shape[3]) {
    throw new Error(`depthwiseConv2dNhwc: expected x [N, H, W, C] and w [KH, KW, C], got ${shapeString(x.shape)} and ${shapeString(w.shape)}`);
  }
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [n, h, wd, c] = x.shape;
  const ho = windowOutput(h, w.shape[0], sh, ph, 1);
  const wo = windowOutput(wd, w.shape[1], sw, pw, 1);
  if (ho <= 0 || wo <= 0) throw new Error(`depthwiseConv2dNhwc: output size ${ho}×${wo} is empty for input ${shapeString(x.shape)} and weight ${shapeString(w.shape)}`);
  const { bias, ...rest } = opts;
  return g.apply('depthwiseConv2dNhwc', bias ? [x, w, bias] : [x, w], [n, ho, wo, c], 'f32', (gpu, [tx, tw, tb], out) => {
    depthwiseConv2dNhwcKernel(gpu, tx, tw, { ...rest, bias: tb, out });
  }, 1, () => {
    throw new Error(`depthwiseConv2dNhwc: no backward (forward-only op; x ${shapeString(x.shape)}, w ${shapeString(w.shape)})`);
  });
}
