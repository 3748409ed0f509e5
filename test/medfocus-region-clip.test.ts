// The learned focus on the CLIP backbone (backbones.ts ClipPromptClassifier
// with `regions`): the gated scorer weighs each image's region tokens, the
// weights spread over the tower's tokens through each region's coverage, and
// strength·(w − 1) enters every block as the attention key bias [B, 1, 1, T].
// - Forward: the region weights against a float64 reference of the scorer,
//   and the class probabilities against the tiny CLIP tower (checked against
//   the official code by test/clip.test.ts) run with that float64 key bias,
//   head and softmax in float64.
// - Backward: the scorer's gradients (which reach it only through the
//   attention kernel's bias gradient) and the prompts' against central
//   finite differences of the f32 loss.

import * as assert from 'uvu/assert';
import { Tensor } from '../src/tensor.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { ClipModel } from '../src/models/clip/model.js';
import { ClipPromptClassifier } from '../src/medfocus/backbones.js';
import type { Batch } from '../src/medfocus/classifier.js';
import { PADDED_TOKEN_BIAS } from '../src/medfocus/region-focus.js';
import { assertClose, assertThrows, tensorCentralDifference, gpuSuite, NO_SHARED, randn, rng, sharedPath, skip } from './util.js';

const clipFixture = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');

const test = gpuSuite('medfocus learned focus on CLIP');

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Float64 gated attention weights over one image's Rt tokens [Rt, D]: LayerNorm (γ, β [D], eps 1e-5), then V, U [D, A], w [A]. */
function gatedWeights(tokens: Float32Array, pad: Float32Array, gamma: Float32Array, beta: Float32Array, V: Float32Array, U: Float32Array, w: Float32Array, D: number, A: number): number[] {
  const Rt = pad.length;
  const x = new Float64Array(Rt * D);
  for (let k = 0; k < Rt; k++) {
    const row = Array.from(tokens.subarray(k * D, (k + 1) * D));
    const mean = row.reduce((a, v) => a + v, 0) / D;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
    row.forEach((v, d) => (x[k * D + d] = ((v - mean) / Math.sqrt(variance + 1e-5)) * gamma[d] + beta[d]));
  }
  const scores = Array.from({ length: Rt }, (_, k) => {
    let s = pad[k];
    for (let a = 0; a < A; a++) {
      let v = 0;
      let u = 0;
      for (let d = 0; d < D; d++) {
        v += x[k * D + d] * V[d * A + a];
        u += x[k * D + d] * U[d * A + a];
      }
      s += w[a] * Math.tanh(v) * sigmoid(u);
    }
    return s;
  });
  const top = Math.max(...scores);
  const e = scores.map((x) => Math.exp(x - top));
  const sum = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / sum);
}

test('ClipPromptClassifier, focus learned: region weights and probabilities vs float64, scorer and prompt gradients vs finite differences (tiny CLIP tower)', async ({ gpu }) => {
  if (!clipFixture) return skip(NO_SHARED);
  const file = await openSafetensorsFile(clipFixture);
  const model = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f32' });
  await file.close();
  const [K, B, P, Rt, D, A, strength] = [3, 2, 2, 4, 6, 5, 3];
  const v = model.config.vision;
  const R = v.imageResolution;
  const E = model.config.embedDim;
  const L = v.grid * v.grid;
  const T = 1 + P + L;
  const c = new ClipPromptClassifier(gpu, model, randn(K * E, 11), K, { prompts: P, attention: false, regions: { dim: D, tokensPerImage: Rt, hidden: A, strength }, seed: 4 });
  // Larger scorer weights than the initialisation, so the region weights differ clearly from uniform; the token
  // LayerNorm away from its identity start.
  c.params.get('region.w')!.write(randn(A, 12, 2));
  c.params.get('region.norm.w')!.write(Float32Array.from(randn(D, 16, 0.3), (x) => 1 + x));
  c.params.get('region.norm.b')!.write(randn(D, 17, 0.3));
  const images = Tensor.fromArray(gpu, randn(B * 3 * R * R, 13), [B, 3, R, R]);
  const tokensHost = randn(B * Rt * D, 14, 1);
  // Image 0: three regions; image 1: one region, two padded tokens (zeros).
  const padBias = new Float32Array(B * Rt);
  padBias.fill(PADDED_TOKEN_BIAS, Rt + 2, 2 * Rt);
  tokensHost.fill(0, (Rt + 2) * D, 2 * Rt * D);
  const next = rng(15);
  const cover = new Float32Array(B * Rt * L).map((_, i) => {
    const [row, j] = [Math.floor(i / L), i % L];
    if (padBias[row] !== 0) return 0;
    if (row % Rt === 0) return 1;
    return j % 3 === row % 3 ? 1 : next() < 0.3 ? next() : 0;
  });
  const tokens = Tensor.fromArray(gpu, tokensHost, [B, Rt, D]);
  const labels = Int32Array.from([2, 0]);
  const batch: Batch = { size: B, inputs: images, labels, regions: { tokens, padBias, cover } };

  // Float64 reference: region weights, then the key bias the tower gets.
  const read = async (name: string) => Float32Array.from((await c.params.get(name)!.read()) as Float32Array);
  const [gamma, beta, V, U, w, head] = await Promise.all(['region.norm.w', 'region.norm.b', 'region.V', 'region.U', 'region.w', 'head'].map(read));
  const weights = Array.from({ length: B }, (_, b) => gatedWeights(tokensHost.subarray(b * Rt * D, (b + 1) * Rt * D), padBias.subarray(b * Rt, (b + 1) * Rt), gamma, beta, V, U, w, D, A));
  const keyBias = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < L; j++) {
      let wj = 0;
      for (let k = 0; k < Rt; k++) wj += weights[b][k] * cover[(b * Rt + k) * L + j];
      keyBias[b * T + 1 + P + j] = strength * (wj - 1);
    }
  }
  assert.ok(keyBias.some((x) => x < -0.5), 'the learned bias is not trivially zero');
  const bias = Tensor.fromArray(gpu, keyBias, [B, 1, 1, T]);
  const features = model.encodeImage(images, { prompts: c.params.get('prompts')!, attnBias: bias });
  const f = (await features.read()) as Float32Array;
  features.dispose();
  bias.dispose();
  const s = model.logitScale;
  const expectedProbs: number[] = [];
  for (let b = 0; b < B; b++) {
    const norm = Math.hypot(...f.subarray(b * E, (b + 1) * E));
    const logits = Array.from({ length: K }, (_, k) => {
      let acc = 0;
      for (let e = 0; e < E; e++) acc += (f[b * E + e] / norm) * head[e * K + k];
      return s * acc;
    });
    const top = Math.max(...logits);
    const ex = logits.map((x) => Math.exp(x - top));
    expectedProbs.push(...ex.map((x) => x / ex.reduce((a, q) => a + q, 0)));
  }
  const out = c.predict(batch);
  const gotProbs = (await out.probs.read()) as Float32Array;
  const gotWeights = (await out.weights.read()) as Float32Array;
  out.probs.dispose();
  out.weights.dispose();
  // Measured on lavapipe: weights 5.8e-8, probabilities 7.4e-8.
  assertClose(gotWeights, weights.flat(), { atol: 5e-7, rtol: 0 }, 'region weights (padded tokens 0)');
  assertClose(gotProbs, expectedProbs, { atol: 6e-7, rtol: 0 }, 'class probabilities under the learned key bias');

  const lossAndGrads = async () => {
    const { loss, grads } = c.lossAndGradients(batch);
    const value = ((await loss.read()) as Float32Array)[0];
    const byName = new Map<string, Float32Array>();
    for (const [name, t] of grads) byName.set(name, Float32Array.from((await t.read()) as Float32Array));
    loss.dispose();
    for (const t of grads.values()) t.dispose();
    return { value, grads: byName };
  };
  const { grads } = await lossAndGrads();
  assert.equal([...grads.keys()].sort(), ['head', 'prompts', 'region.U', 'region.V', 'region.norm.b', 'region.norm.w', 'region.w']);
  // Central differences of the f32 loss (step 1e-2). Measured on lavapipe: every one within 0.3 % of the graph's
  // gradient; bound 3 % + 2e-4.
  // Each parameter's entry with the largest gradient, so the differences stand well above the f32 loss' rounding.
  for (const name of ['region.w', 'region.V', 'region.U', 'region.norm.w', 'region.norm.b', 'prompts']) {
    const g = grads.get(name)!;
    const at = g.reduce((best, x, i) => (Math.abs(x) > Math.abs(g[best]) ? i : best), 0);
    const fd = await tensorCentralDifference(c.params.get(name)!, at, async () => (await lossAndGrads()).value);
    const graph = grads.get(name)![at];
    assert.ok(Math.abs(fd) > 1e-4, `d loss / d ${name}[${at}] is measurably non-zero (finite differences ${fd})`);
    assert.ok(Math.abs(fd - graph) <= 0.03 * Math.abs(fd) + 2e-4, `d loss / d ${name}[${at}]: graph ${graph}, finite differences ${fd}`);
  }

  await assertThrows(() => c.predict({ size: B, inputs: images }), /focus learned/, /no region tokens/);
  await assertThrows(() => c.predict({ ...batch, regions: { tokens, padBias, cover: cover.subarray(1) } }), /regions.cover must hold B·Rt·G²/, new RegExp(`got ${B * Rt * L - 1}`));
  await assertThrows(
    () => new ClipPromptClassifier(gpu, model, randn(K * E, 11), K, { prompts: 0, attention: true, regions: { dim: D, tokensPerImage: Rt, hidden: A, strength }, seed: 0 }),
    /attention \(a fixed focus\) or regions \(a learned one\), not both/,
  );
  for (const t of [images, tokens]) t.dispose();
  c.dispose();
  model.dispose();
});

test.run();
