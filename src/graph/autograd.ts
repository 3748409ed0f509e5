// Reverse-mode autograd on the graph runtime. Backward is more graph: each
// op's backward rule (registered by its builder in ops.ts) adds ops that
// compute its inputs' gradients, so the backward is planned, recorded into
// the same encoder and submitted once with the forward. Forward values a
// backward op reads stay alive exactly as long as the planner sees them read.
//
// Only what leads to a requested gradient is differentiated: a node gets
// backward ops only if some input depends on a `wrt` value and some output
// leads to the loss, and each rule only computes the inputs that need it —
// a frozen weight gets no gradient op at all.

import { numel, shapeString } from '../tensor.js';
import type { Graph, Value } from './graph.js';
import { add, zeros } from './ops.js';

export interface BackwardOptions {
  /**
   * The gradient of the final objective w.r.t. `loss` (a vector–Jacobian
   * product). Default: ones of loss's shape, i.e. the gradient of the sum of
   * all of loss's elements (for a scalar [1] loss: d loss / d x).
   */
  seed?: Value;
}

/**
 * Adds to `g` the ops that compute d loss / d w for every w in `wrt` (any
 * values of g: inputs, weights or intermediates) and returns them by value;
 * mark the ones you need with `g.output`. A w that the loss does not depend
 * on gets zeros. Throws if a node on the path has no backward rule for an
 * input that needs a gradient (gather's table, conv2d).
 */
export function backward(g: Graph, loss: Value, wrt: readonly Value[], opts: BackwardOptions = {}): Map<Value, Value> {
  const seed = opts.seed ?? g.constant(`backward.seed(${loss.name})`, new Float32Array(numel(loss.shape)).fill(1), loss.shape);
  if (seed.shape.length !== loss.shape.length || seed.shape.some((d, i) => d !== loss.shape[i])) {
    throw new Error(`backward: seed ${shapeString(seed.shape)} must have the shape of loss ${shapeString(loss.shape)}`);
  }
  g.producerOf(loss); // checks that loss belongs to g
  const nodes = g.nodeList;
  const end = nodes.length; // rules append nodes; only the forward ones are walked

  // Forward: which values depend on a wrt value.
  const requires = new Set(wrt.map((w) => w.id));
  for (let i = 0; i < end; i++) {
    const node = nodes[i];
    if (node.inputs.some((x) => requires.has(x.id))) for (const o of node.outputs) requires.add(o.id);
  }

  // Reverse: accumulate output gradients into input gradients.
  const grads = new Map<number, Value>();
  if (requires.has(loss.id)) grads.set(loss.id, seed);
  for (let i = end - 1; i >= 0; i--) {
    const node = nodes[i];
    const dOutputs = node.outputs.map((o) => grads.get(o.id));
    if (dOutputs.every((d) => d === undefined)) continue;
    const needs = node.inputs.map((x) => requires.has(x.id));
    if (!needs.some(Boolean)) continue;
    if (!node.backward) throw new Error(`backward: op ${node.op} (${node.outputs[0].name}) has no backward rule`);
    const result = node.backward(g, { inputs: node.inputs, outputs: node.outputs, dOutputs, needs });
    node.inputs.forEach((x, k) => {
      const dx = result[k];
      if (!needs[k] || dx === undefined) return;
      if (dx.shape.length !== x.shape.length || dx.shape.some((d, j) => d !== x.shape[j])) {
        throw new Error(`backward: the rule of ${node.op} gave input ${k} a gradient ${shapeString(dx.shape)}, the input is ${shapeString(x.shape)}`);
      }
      const prev = grads.get(x.id);
      grads.set(x.id, prev ? add(g, prev, dx) : dx);
    });
  }

  const out = new Map<Value, Value>();
  for (const w of wrt) out.set(w, grads.get(w.id) ?? zeros(g, w.shape));
  return out;
}
