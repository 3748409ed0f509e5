// The contract every MedFocus classifier keeps with the trainer and the
// pipeline (Classifier, Batch), and what the classifiers share: their
// parameters and graphs (ParamClassifier), seeded initialisation, and the
// graph tail that adds the loss and the
// gradient of every trainable parameter (one graph per batch size: forward, loss and
// backward in one submit; AdamW then updates the parameters in place).
// The classifiers: backbones.ts (CLIP prompts + head, MobileSAM-feature
// pooling), region-focus.ts (learned focus over region tokens).

import { Tensor } from '../tensor.js';
import type { BoundWeights, Graph, Value } from '../graph/graph.js';
import { GraphCache } from '../graph/graph-cache.js';
import * as ops from '../graph/ops.js';
import { backward } from '../graph/autograd.js';
import { seededRandom } from '../util/random.js';

/** What every classifier offers the trainer. */
export interface Classifier {
  readonly kind: 'clip' | 'sam-encoder';
  readonly classes: number;
  /** Trainable parameters by name (owned by the classifier). */
  readonly params: ReadonlyMap<string, Tensor>;
  /** One training step's forward + backward; returns the loss and the gradients (owned by the caller). */
  lossAndGradients(batch: Batch): { loss: Tensor; grads: Map<string, Tensor> };
  /** Class probabilities [B, K] and each image's focus weights over its patches/positions [B, L], or with the learned focus over its region tokens [B, Rmax+1] (owned by the caller). */
  predict(batch: Batch): { probs: Tensor; weights: Tensor };
  dispose(): void;
}

/** A batch as the classifiers read it. */
export interface Batch {
  size: number;
  /** clip: preprocessed images [B, 3, R, R]; sam-encoder: features [B, L, C]. */
  inputs: Tensor;
  /** Additive key bias per image over its patches/positions [B, L] (host), or undefined when the focus is not attention. */
  keyBias?: Float32Array;
  /** i32 labels [B] (training only). */
  labels?: Int32Array;
  /** CLIP with the learned focus: each image's region tokens and what each covers. */
  regions?: RegionBatch;
}

/**
 * The region tokens of a batch (focus learned on CLIP): Rt = Rmax + 1 tokens
 * per image, token 0 the whole image, padded tokens zero.
 */
export interface RegionBatch {
  /** [B, Rt, D] (region-focus.ts packRegionTokens). */
  tokens: Tensor;
  /** [B·Rt]: 0 for a real token, PADDED_TOKEN_BIAS for padding. */
  padBias: Float32Array;
  /** [B·Rt·G²]: each token's coverage of the tower's G² patches (token 0: all ones; padding: zeros). */
  cover: Float32Array;
}

/** Deterministic small-normal initialisation (Box–Muller on mulberry32). */
export function initNormal(n: number, seed: number, scale: number): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next()) * scale;
  return out;
}

/**
 * The training outputs of a classifier graph: `loss` (mean cross-entropy of
 * logits [B, K] against the i32 input `labels`, plus `extra(labels)` when
 * given) and `grad.<name>` for each trainable parameter, which the forward
 * bound (graph.ts weightBinder).
 */
export function addCrossEntropyTraining(g: Graph, logits: Value, B: number, names: string[], params: BoundWeights, extra?: (labels: Value) => Value): void {
  const labels = g.input('labels', [B], 'i32');
  const crossEntropy = ops.crossEntropy(g, logits, labels);
  const loss = extra ? ops.add(g, crossEntropy, extra(labels)) : crossEntropy;
  g.output('loss', loss);
  const bound = names.map((n) => params.bound.get(n) ?? fail(`medfocus: parameter '${n}' is not used by graph ${g.name}`));
  const grads = backward(g, loss, bound);
  names.forEach((n, i) => g.output(`grad.${n}`, grads.get(bound[i])!));
}

function fail(message: string): never {
  throw new Error(message);
}

/**
 * What both classifiers hold: trainable parameters by name and their graphs
 * (one per task and batch size, compiled on first use); dispose frees both.
 */
export abstract class ParamClassifier {
  readonly params = new Map<string, Tensor>();
  protected readonly graphs = new GraphCache();

  /** A predict graph's outputs on `feeds`: probabilities and focus weights (owned by the caller). */
  protected runPredict(g: Graph, feeds: Record<string, Tensor | ArrayLike<number>>): { probs: Tensor; weights: Tensor } {
    const out = g.run(feeds);
    return { probs: out.probs, weights: out.weights };
  }

  dispose(): void {
    this.graphs.dispose();
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
  }
}

/** A training graph's run outputs as the loss and the gradients by parameter name. */
export function splitOutputs(out: Record<string, Tensor>): { loss: Tensor; grads: Map<string, Tensor> } {
  const grads = new Map<string, Tensor>();
  for (const [name, t] of Object.entries(out)) if (name.startsWith('grad.')) grads.set(name.slice(5), t);
  return { loss: out.loss, grads };
}
