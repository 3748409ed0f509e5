// Region focus (src/medfocus/region-focus.ts): the region tokens against a
// direct host computation, the gated-attention MIL classifier's forward and
// the gradient of every parameter against a float64 reference written here,
// padding, and a toy MIL problem where training must move the attention onto
// the one region that carries the label.

import * as assert from 'uvu/assert';
import { Tensor } from '../src/node.js';
import { AdamW } from '../src/train/optimizer.js';
import { PADDED_TOKEN_BIAS, REGION_META, RegionAttentionClassifier, packRegionTokens, regionTokens, type RegionMeta, type RegionTokens } from '../src/medfocus/region-focus.js';
import { assertClose, assertThrows, gpuSuite, randn, rng } from './util.js';

const test = gpuSuite('region-focus');

interface RefParams {
  V: Float64Array; // [D, A]
  U: Float64Array; // [D, A]
  w: Float64Array; // [A]
  W: Float64Array; // [D, K]
  b: Float64Array; // [K]
}

/** Float64 reference: gated attention (Ilse et al.), softmax with the key bias, pooling, head, mean cross-entropy. */
function reference(P: RefParams, tokens: ArrayLike<number>, keyBias: ArrayLike<number>, labels: ArrayLike<number>, B: number, T: number, D: number, A: number, K: number) {
  const logits = new Float64Array(B * K);
  const weights = new Float64Array(B * T);
  let loss = 0;
  for (let bi = 0; bi < B; bi++) {
    const s = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      const h = (d: number) => tokens[(bi * T + t) * D + d];
      let score = 0;
      for (let a = 0; a < A; a++) {
        let v = 0;
        let u = 0;
        for (let d = 0; d < D; d++) {
          v += h(d) * P.V[d * A + a];
          u += h(d) * P.U[d * A + a];
        }
        score += P.w[a] * Math.tanh(v) * (1 / (1 + Math.exp(-u)));
      }
      s[t] = score + keyBias[bi * T + t];
    }
    const m = Math.max(...s);
    let z = 0;
    for (let t = 0; t < T; t++) z += Math.exp(s[t] - m);
    const pooled = new Float64Array(D);
    for (let t = 0; t < T; t++) {
      const a = Math.exp(s[t] - m) / z;
      weights[bi * T + t] = a;
      for (let d = 0; d < D; d++) pooled[d] += a * tokens[(bi * T + t) * D + d];
    }
    for (let k = 0; k < K; k++) {
      let l = P.b[k];
      for (let d = 0; d < D; d++) l += pooled[d] * P.W[d * K + k];
      logits[bi * K + k] = l;
    }
    const row = logits.subarray(bi * K, bi * K + K);
    const lm = Math.max(...row);
    let lz = 0;
    for (const l of row) lz += Math.exp(l - lm);
    loss += lm + Math.log(lz) - row[labels[bi]];
  }
  return { logits, weights, loss: loss / B };
}

async function refParams(model: RegionAttentionClassifier): Promise<RefParams> {
  const get = async (n: string) => Float64Array.from((await model.params.get(n)!.read()) as Float32Array);
  return { V: await get('attn.V'), U: await get('attn.U'), w: await get('attn.w'), W: await get('head.w'), b: await get('head.b') };
}

const PARAM_KEYS: Array<[string, keyof RefParams]> = [['attn.V', 'V'], ['attn.U', 'U'], ['attn.w', 'w'], ['head.w', 'W'], ['head.b', 'b']];

function softmaxRows(x: Float64Array, K: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / K; r++) {
    const row = x.subarray(r * K, r * K + K);
    const m = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - m);
    for (let k = 0; k < K; k++) out[r * K + k] = Math.exp(row[k] - m) / z;
  }
  return out;
}

/** Random images with 1..Rmax regions each, their tokens from regionTokens, packed. */
function randomBatch(B: number, C: number, G: number, Rmax: number, seed: number, regionsOf?: (b: number) => number) {
  const r = rng(seed);
  const images: RegionTokens[] = [];
  for (let b = 0; b < B; b++) {
    const R = regionsOf ? regionsOf(b) : 1 + Math.floor(r() * Rmax);
    const masks = Array.from({ length: R }, (_, k) => {
      const m = Float32Array.from({ length: G * G }, () => (r() < 0.4 ? 1 : r() < 0.3 ? 0.5 : 0));
      m[(k * 7 + b) % (G * G)] = 1; // never empty
      return m;
    });
    const meta: RegionMeta[] = masks.map(() => ({ area: r(), box: [r() * 0.5, r() * 0.5, 0.5 + r() * 0.5, 0.5 + r() * 0.5], predIou: r(), stability: r() }));
    images.push(regionTokens(randn(C * G * G, seed * 31 + b), C, G, masks, meta));
  }
  return packRegionTokens(images, Rmax);
}

test('regionTokens: image mean, coverage-weighted mask means, meta; both layouts; errors', async () => {
  const C = 3;
  const G = 2;
  const feats = Float32Array.from({ length: C * G * G }, (_, i) => i); // [C, G, G]: channel c, cell p = 4c + p
  const masks = [Float32Array.of(1, 0, 0, 1), Float32Array.of(0, 0.5, 1, 0)];
  const meta: RegionMeta[] = [
    { area: 0.5, box: [0, 0, 1, 1], predIou: 0.9, stability: 0.95 },
    { area: 0.25, box: [0, 0.5, 0.5, 1], predIou: 0.8, stability: 0.7 },
  ];
  const D = C + REGION_META;
  const expected = new Float32Array(3 * D);
  for (let c = 0; c < C; c++) {
    expected[c] = 4 * c + 1.5;
    expected[D + c] = (4 * c + 4 * c + 3) / 2;
    expected[2 * D + c] = (0.5 * (4 * c + 1) + (4 * c + 2)) / 1.5;
  }
  expected.set([0.5, 0, 0, 1, 1, 0.9, 0.95], D + C);
  expected.set([0.25, 0, 0.5, 0.5, 1, 0.8, 0.7], 2 * D + C);
  const out = regionTokens(feats, C, G, masks, meta);
  assert.is(out.regions, 2);
  assert.is(out.dim, D);
  // Means of at most 4 small integers: only f32 rounding of the result.
  assertClose(out.tokens, expected, { atol: 1e-6, rtol: 1e-6 }, 'tokens (cgg)');
  const lc = new Float32Array(C * G * G);
  for (let c = 0; c < C; c++) for (let p = 0; p < G * G; p++) lc[p * C + c] = feats[c * G * G + p];
  assertClose(regionTokens(lc, C, G, masks, meta, 'lc').tokens, expected, { atol: 1e-6, rtol: 1e-6 }, 'tokens (lc)');

  await assertThrows(() => regionTokens(feats.subarray(1), C, G, masks, meta), /regionTokens/, /features must hold/);
  await assertThrows(() => regionTokens(feats, C, G, [new Float32Array(4)], [meta[0]]), /regionTokens/, /covers no grid cell/);
  await assertThrows(() => regionTokens(feats, C, G, [new Float32Array(3)], [meta[0]]), /regionTokens/, /mask 0 must hold G·G = 4/);
  await assertThrows(() => regionTokens(feats, C, G, masks, [meta[0]]), /regionTokens/, /one meta per mask/);

  const packed = packRegionTokens([out, regionTokens(feats, C, G, [masks[0]], [meta[0]])], 3);
  assert.equal(packed.shape, [2, 4, D]);
  assert.equal([...packed.keyBias], [0, 0, 0, PADDED_TOKEN_BIAS, 0, 0, PADDED_TOKEN_BIAS, PADDED_TOKEN_BIAS]);
  await assertThrows(() => packRegionTokens([out], 1), /packRegionTokens/, /2 regions, more than maxRegions = 1/);
});

// Sizes of the reference checks: small enough for lavapipe, every axis distinct.
const B = 4;
const C = 6;
const G = 3;
const RMAX = 3;
const T = RMAX + 1;
const D = C + REGION_META;
const A = 5;
const K = 3;

test('forward (probabilities, attention weights with padding) and every parameter gradient against float64', async ({ gpu }) => {
  const model = new RegionAttentionClassifier(gpu, T, D, K, { hidden: A, seed: 3 });
  // Images with 3, 1, 2 and 3 regions: images 1 and 2 carry padded tokens.
  const counts = [3, 1, 2, 3];
  const packed = randomBatch(B, C, G, RMAX, 11, (b) => counts[b]);
  const labels = Int32Array.of(0, 2, 1, 2);
  const inputs = Tensor.fromArray(gpu, packed.tokens, packed.shape);
  const batch = { size: B, inputs, keyBias: packed.keyBias, labels };
  const P = await refParams(model);
  const ref = reference(P, packed.tokens, packed.keyBias, labels, B, T, D, A, K);

  const { probs, weights } = model.predict(batch);
  const gotProbs = (await probs.read()) as Float32Array;
  const gotWeights = (await weights.read()) as Float32Array;
  // Measured max abs error 3.9e-8 (probs) and 5.1e-8 (weights) on values up to ~0.5: tolerance 5e-7.
  assertClose(gotProbs, softmaxRows(ref.logits, K), { atol: 5e-7, rtol: 0 }, 'probs');
  assertClose(gotWeights, ref.weights, { atol: 5e-7, rtol: 0 }, 'attention weights');
  for (let b = 0; b < B; b++) for (let t = counts[b] + 1; t < T; t++) assert.is(gotWeights[b * T + t], 0, `padded token ${t} of image ${b} has weight 0`);

  const { loss, grads } = model.lossAndGradients(batch);
  const gotLoss = ((await loss.read()) as Float32Array)[0];
  // Measured |Δloss| 4.1e-8 on a loss of 1.22: tolerance 5e-7.
  assertClose([gotLoss], [ref.loss], { atol: 5e-7, rtol: 0 }, 'loss');
  // Gradients against central differences of the float64 loss (h = 1e-5: truncation ~1e-10, rounding ~1e-11).
  // Measured max abs error of the f32 backward, per parameter (largest |gradient| in brackets):
  // attn.V 2.1e-9 (9.1e-3), attn.U 4.1e-10 (9.7e-4), attn.w 3.2e-9 (8.3e-3), head.w 2.4e-8 (0.16),
  // head.b 2.3e-8 (0.14). Tolerances are ~10× those, so each is well below its gradient's scale.
  const GRAD_TOL: Record<string, number> = { 'attn.V': 2e-8, 'attn.U': 5e-9, 'attn.w': 3e-8, 'head.w': 3e-7, 'head.b': 3e-7 };
  const h = 1e-5;
  for (const [name, key] of PARAM_KEYS) {
    const values = P[key];
    const fd = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      values[i] = v + h;
      const up = reference(P, packed.tokens, packed.keyBias, labels, B, T, D, A, K).loss;
      values[i] = v - h;
      const down = reference(P, packed.tokens, packed.keyBias, labels, B, T, D, A, K).loss;
      values[i] = v;
      fd[i] = (up - down) / (2 * h);
    }
    const got = (await grads.get(name)!.read()) as Float32Array;
    assertClose(got, fd, { atol: GRAD_TOL[name], rtol: 0 }, `grad ${name}`);
  }
  // Padded tokens hold garbage: nothing changes (their weight is exactly 0).
  const garbage = packed.tokens.slice();
  for (let b = 0; b < B; b++) for (let t = counts[b] + 1; t < T; t++) garbage.set(randn(D, 100 + b * T + t, 50), (b * T + t) * D);
  const inputs2 = Tensor.fromArray(gpu, garbage, packed.shape);
  const again = model.lossAndGradients({ ...batch, inputs: inputs2 });
  assert.equal([...((await again.loss.read()) as Float32Array)], [gotLoss], 'loss unchanged by padded garbage');
  for (const [name] of PARAM_KEYS) {
    assert.equal([...((await again.grads.get(name)!.read()) as Float32Array)], [...((await grads.get(name)!.read()) as Float32Array)], `grad ${name} unchanged by padded garbage`);
  }
  for (const t of [probs, weights, loss, ...grads.values(), again.loss, ...again.grads.values(), inputs, inputs2]) t.dispose();

  await assertThrows(() => model.predict({ size: B, inputs: Tensor.fromArray(gpu, new Float32Array(B * T * (D - 1)), [B, T, D - 1]) }), /RegionAttentionClassifier\.predict/, /tokens \[4, 4, 13\]/);
  await assertThrows(() => model.predict({ size: B, inputs: Tensor.fromArray(gpu, packed.tokens, packed.shape), keyBias: new Float32Array(3) }), /RegionAttentionClassifier\.predict/, /keyBias must hold/);
  await assertThrows(() => model.lossAndGradients({ size: B, inputs: Tensor.fromArray(gpu, packed.tokens, packed.shape) }), /lossAndGradients/, /no labels/);
  model.dispose();
});

test('AdamW on a toy MIL problem moves the attention onto the one region that carries the label', async ({ gpu }) => {
  // Each image: 3 regions. One (at a random slot) has predIou 1 and channel 0 = ±1 by the label; the
  // other two have predIou 0.2 and channel 0 = ±1 at random; other channels are noise. The image
  // token's channel 0 is the mean of the three. Only attending to the high-IoU region solves it.
  const N = 32;
  const Cc = 4;
  const Rr = 3;
  const Tt = Rr + 1;
  const Dd = Cc + REGION_META;
  const r = rng(5);
  const images: RegionTokens[] = [];
  const labels = new Int32Array(N);
  const carrier = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    labels[n] = n % 2;
    carrier[n] = Math.floor(r() * Rr);
    const tokens = new Float32Array(Tt * Dd);
    for (let k = 0; k < Rr; k++) {
      const row = (k + 1) * Dd;
      const carries = k === carrier[n];
      tokens[row] = carries ? 2 * labels[n] - 1 : r() < 0.5 ? -1 : 1;
      for (let c = 1; c < Cc; c++) tokens[row + c] = 0.3 * (2 * r() - 1);
      tokens.set([0.2, 0.1, 0.1, 0.6, 0.6, carries ? 1 : 0.2, 0.9], row + Cc);
    }
    for (let c = 0; c < Cc; c++) tokens[c] = (tokens[Dd + c] + tokens[2 * Dd + c] + tokens[3 * Dd + c]) / 3;
    images.push({ tokens, regions: Rr, dim: Dd });
  }
  const packed = packRegionTokens(images, Rr);
  const inputs = Tensor.fromArray(gpu, packed.tokens, packed.shape);
  const batch = { size: N, inputs, keyBias: packed.keyBias, labels };
  const model = new RegionAttentionClassifier(gpu, Tt, Dd, 2, { hidden: 8, seed: 9 });
  const carrierWeight = async () => {
    const { probs, weights } = model.predict(batch);
    const w = (await weights.read()) as Float32Array;
    probs.dispose();
    weights.dispose();
    let onCarrier = 0;
    let onOthers = 0;
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < Rr; k++) {
        if (k === carrier[n]) onCarrier += w[n * Tt + 1 + k];
        else onOthers += w[n * Tt + 1 + k] / (Rr - 1);
      }
    }
    return { onCarrier: onCarrier / N, onOthers: onOthers / N };
  };
  const before = await carrierWeight();
  const opt = new AdamW(gpu, [...model.params].map(([name, param]) => ({ name, param })), { lr: 0.05, weightDecay: 0 });
  let lastLoss = NaN;
  const STEPS = 60;
  for (let s = 0; s < STEPS; s++) {
    const { loss, grads } = model.lossAndGradients(batch);
    opt.step(grads);
    for (const g of grads.values()) g.dispose();
    if (s === STEPS - 1) lastLoss = ((await loss.read()) as Float32Array)[0];
    loss.dispose();
  }
  const after = await carrierWeight();
  // Measured (lavapipe): carrier weight 0.270 -> 0.999, others 0.236 -> 0.000, final loss 0.0135.
  console.log(`  toy MIL: carrier weight ${before.onCarrier.toFixed(3)} -> ${after.onCarrier.toFixed(3)}, others ${before.onOthers.toFixed(3)} -> ${after.onOthers.toFixed(3)}, final loss ${lastLoss.toFixed(4)}`);
  assert.ok(after.onCarrier > 2 * after.onOthers, `carrier region weight ${after.onCarrier} should exceed twice the others' ${after.onOthers}`);
  assert.ok(after.onCarrier > before.onCarrier + 0.2, `carrier weight should rise by > 0.2: ${before.onCarrier} -> ${after.onCarrier}`);
  assert.ok(lastLoss < 0.3, `final loss ${lastLoss} should be < 0.3 (chance is ln 2 = 0.69)`);
  opt.dispose();
  model.dispose();
  inputs.dispose();
});

test.run();
