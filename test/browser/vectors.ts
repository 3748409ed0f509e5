// Parity test vectors: each runs one op (or a small graph) through the engine
// it is handed, so the very same code runs in Node (src/node.ts on Dawn +
// lavapipe) and in Chromium (dist/medfocus.browser.js on SwiftShader), and
// test/browser-parity.test.ts compares the two. This module only imports
// types: the test bundles it with esbuild and hands the page its source.

import type * as Engine from '../../src/index.js';
import type { Gpu, SafetensorsFile, Tensor } from '../../src/index.js';

/** The engine's public API, as src/index.ts (and so dist/medfocus.browser.js) exports it. */
export type Lib = typeof Engine;

export interface InputSpec {
  shape: number[];
  /** Standard deviation of the seeded normal values Node generates (default 1). */
  scale?: number;
}

export interface ParityVector {
  name: string;
  inputs: Record<string, InputSpec>;
  run(lib: Lib, gpu: Gpu, x: Record<string, Tensor>): Record<string, Tensor>;
}

export const VECTORS: ParityVector[] = [
  {
    name: 'matmul + bias + gelu (erf), batched, transB',
    inputs: { a: { shape: [2, 37, 64] }, b: { shape: [48, 64], scale: 0.2 }, bias: { shape: [48] } },
    run: (lib, gpu, x) => ({ y: lib.matmul(gpu, x.a, x.b, { transB: true, bias: x.bias, activation: 'gelu' }) }),
  },
  {
    name: 'attention with additive bias',
    inputs: { q: { shape: [2, 3, 19, 16] }, k: { shape: [2, 3, 23, 16] }, v: { shape: [2, 3, 23, 16] }, bias: { shape: [1, 3, 19, 23] } },
    run: (lib, gpu, x) => ({ y: lib.attention(gpu, x.q, x.k, x.v, { bias: x.bias }) }),
  },
  {
    name: 'layer norm with affine',
    inputs: { x: { shape: [33, 96], scale: 3 }, gamma: { shape: [96] }, beta: { shape: [96] } },
    run: (lib, gpu, x) => ({ y: lib.layerNorm(gpu, x.x, x.gamma, x.beta) }),
  },
  {
    name: 'softmax over the last axis and over axis 1',
    inputs: { x: { shape: [5, 17, 101], scale: 4 } },
    run: (lib, gpu, x) => ({ last: lib.softmax(gpu, x.x), middle: lib.softmax(gpu, x.x, { axis: 1 }) }),
  },
  {
    name: 'conv2d: strided + padded + bias + relu, and depthwise',
    inputs: { x: { shape: [2, 5, 13, 11] }, w: { shape: [7, 5, 3, 3], scale: 0.3 }, bias: { shape: [7] }, dw: { shape: [5, 1, 3, 3] } },
    run: (lib, gpu, x) => ({
      y: lib.conv2d(gpu, x.x, x.w, { bias: x.bias, stride: 2, padding: 1, activation: 'relu' }),
      depthwise: lib.conv2d(gpu, x.x, x.dw, { padding: 1, groups: 5 }),
    }),
  },
  {
    name: 'resize: bilinear up, bilinear align-corners down, nearest',
    inputs: { x: { shape: [1, 3, 9, 7] } },
    run: (lib, gpu, x) => ({
      up: lib.resize(gpu, x.x, { size: [16, 12], mode: 'bilinear' }),
      down: lib.resize(gpu, x.x, { size: [5, 4], mode: 'bilinear', alignCorners: true }),
      nearest: lib.resize(gpu, x.x, { scale: [2, 2], mode: 'nearest' }),
    }),
  },
  {
    name: 'graph: softmax(layerNorm(gelu(x·w + b))) with autograd backward',
    inputs: { x: { shape: [6, 10] }, w: { shape: [10, 8], scale: 0.5 }, b: { shape: [8] }, gamma: { shape: [8] }, seed: { shape: [6, 8] } },
    run: (lib, gpu, x) => {
      const G = lib.graphOps;
      const g = new lib.Graph(gpu, 'parity-autograd');
      const v = { x: g.input('x', [6, 10]), w: g.input('w', [10, 8]), b: g.input('b', [8]), gamma: g.input('gamma', [8]), seed: g.input('seed', [6, 8]) };
      const y = G.softmax(g, G.layerNorm(g, G.matmul(g, v.x, v.w, { bias: v.b, activation: 'gelu' }), v.gamma));
      const wrt = [v.x, v.w, v.b, v.gamma];
      const grads = lib.backward(g, y, wrt, { seed: v.seed });
      g.output('y', y);
      for (const [name, value] of [['dx', v.x], ['dw', v.w], ['db', v.b], ['dgamma', v.gamma]] as const) g.output(name, grads.get(value)!);
      const out = g.run(x); // copies owned by the caller, so the graph can go
      g.dispose();
      return out;
    },
  },
];

/** Runs vector `name` on `data` (one Float32Array per input) and reads every output back. */
export async function runVector(lib: Lib, gpu: Gpu, name: string, data: Record<string, Float32Array>): Promise<Record<string, Float32Array>> {
  const vector = VECTORS.find((v) => v.name === name);
  if (!vector) throw new Error(`runVector: no vector named '${name}'`);
  const inputs: Record<string, Tensor> = {};
  for (const [key, spec] of Object.entries(vector.inputs)) inputs[key] = lib.Tensor.fromArray(gpu, data[key], spec.shape);
  const outputs = vector.run(lib, gpu, inputs);
  const result: Record<string, Float32Array> = {};
  for (const [key, t] of Object.entries(outputs)) {
    result[key] = (await t.read()) as Float32Array;
    t.dispose();
  }
  for (const t of Object.values(inputs)) t.dispose();
  return result;
}

/** A point prompt (multimask) and a box + two points prompt (single mask) on the decoder's image. */
export const SAM_DECODER_CASE = {
  width: 200,
  height: 150,
  prompts: [
    { points: [[120, 60]], labels: [1] },
    { points: [[40, 100], [150, 30]], labels: [1, 0], box: [20, 15, 180, 140], multimask: false },
  ],
} as const;

/**
 * The MobileSAM decoder (sam.onnx) on a fixed embedding [1, 256, 64, 64]:
 * per prompt, the low-res logits, the IoU predictions and the masks at the
 * image size.
 */
export async function runSamDecoder(lib: Lib, gpu: Gpu, samOnnx: Uint8Array, embedding: Float32Array): Promise<Record<string, Float32Array>> {
  const predictor = lib.MobileSamPredictor.fromDecoderOnnx(gpu, undefined, samOnnx);
  const c = predictor.decoder.config;
  predictor.setEmbedding(lib.Tensor.fromArray(gpu, embedding, [1, c.embedDim, c.embeddingSize, c.embeddingSize]), SAM_DECODER_CASE.width, SAM_DECODER_CASE.height);
  const result: Record<string, Float32Array> = {};
  for (const [i, prompt] of SAM_DECODER_CASE.prompts.entries()) {
    const p = await predictor.predict(prompt);
    result[`prompt${i}.lowResMasks`] = p.lowResMasks;
    result[`prompt${i}.iouPredictions`] = p.iouPredictions;
    result[`prompt${i}.masks`] = p.masks;
  }
  predictor.dispose();
  return result;
}

/** The tiny CLIP fixture: image and text features from the fixture's inputs. */
export async function runClip(lib: Lib, gpu: Gpu, weights: SafetensorsFile, io: SafetensorsFile): Promise<Record<string, Float32Array>> {
  return (await runClipWithDtype(lib, gpu, weights, io, 'f32')).outputs;
}

export interface ClipDtypeRun {
  /** What the weights were stored as, and why not as asked (model.weightDtypeNote). */
  weightDtype: 'f16' | 'f32';
  weightDtypeNote?: string;
  outputs: Record<string, Float32Array>;
}

/** runClip with the weight dtype asked for (issue 19: f16, or its f32 fallback without shader-f16). */
export async function runClipWithDtype(lib: Lib, gpu: Gpu, weights: SafetensorsFile, io: SafetensorsFile, dtype: 'f16' | 'f32'): Promise<ClipDtypeRun> {
  const model = await lib.ClipModel.fromSafetensors(gpu, weights, { dtype });
  const image = lib.Tensor.fromArray(gpu, await io.read('image'), io.info('image').shape);
  const imageFeatures = model.encodeImage(image);
  const textFeatures = model.encodeText(await io.readInt32('text_tokens'));
  const outputs = { image_features: (await imageFeatures.read()) as Float32Array, text_features: (await textFeatures.read()) as Float32Array };
  for (const t of [image, imageFeatures, textFeatures]) t.dispose();
  const run: ClipDtypeRun = { weightDtype: model.weightDtype, outputs };
  if (model.weightDtypeNote !== undefined) run.weightDtypeNote = model.weightDtypeNote;
  model.dispose();
  return run;
}
