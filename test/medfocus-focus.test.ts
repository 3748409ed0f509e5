// MedFocus focus math (salient coverage, patch coverage, the attention bias)
// against plain references, the mask cache codec, and that the bias really
// changes what CLIP's class token attends to: the tiny CLIP fixture tower is
// run with and without the bias and the class token's attention in its last
// block (recomputed from that block's q and k, backbones.classTokenAttention)
// is compared: probability mass on off-focus patches must drop by the factor
// the bias implies. Also: both classifiers' training graphs lower the loss.

import * as assert from 'uvu/assert';
import { Tensor } from '../src/tensor.js';
import { Graph } from '../src/graph/graph.js';
import * as ops from '../src/graph/ops.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { ClipModel } from '../src/models/clip/model.js';
import { AUTO_MASK_DEFAULTS } from '../src/models/sam/automatic.js';
import type { AutoMask } from '../src/models/sam/segmenter.js';
import { ClipPromptClassifier, SamPoolClassifier } from '../src/medfocus/backbones.js';
import type { Classifier, Batch } from '../src/medfocus/classifier.js';
import { FOCUS_MASK_FILTERS_1024, decodeMasks, encodeMasks, focusMaskFilters, focusStrength, salientCandidates, patchCoverage, patchKeyBias, resizeRgba, salientCoverage } from '../src/medfocus/focus.js';
import { LEARNED_MAX_REGIONS, learnedRegions } from '../src/medfocus/pipeline.js';
import { AdamW } from '../src/train/optimizer.js';
import { assertClose, assertThrows, tensorCentralDifference, gpuSuite, NO_SHARED, randn, rng, sharedPath, skip } from './util.js';

const clipFixture = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');

const test = gpuSuite('medfocus focus');

function rectMask(w: number, h: number, x0: number, y0: number, x1: number, y1: number, predictedIou: number, stabilityScore: number): AutoMask {
  const mask = new Uint8Array(w * h);
  let area = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) (mask[y * w + x] = 1), area++;
  return { mask, width: w, height: h, area, box: [x0, y0, x1 - 1, y1 - 1], predictedIou, stabilityScore, point: [x0, y0] };
}

test('salientCoverage: union of the best masks, background and specks left out; no mask left → all ones', () => {
  const w = 20;
  const h = 10;
  const background = rectMask(w, h, 0, 0, 20, 10, 0.99, 0.99); // 100%: background
  const speck = rectMask(w, h, 0, 0, 1, 1, 0.99, 0.99); // 0.5%: below 1% minimum
  const a = rectMask(w, h, 2, 2, 6, 6, 0.9, 0.9); // score 0.81
  const b = rectMask(w, h, 10, 1, 14, 5, 0.95, 0.95); // score 0.9025
  const c = rectMask(w, h, 15, 5, 19, 9, 0.5, 0.5); // score 0.25: fourth best → dropped with maxMasks 2
  const cov = salientCoverage([background, speck, a, b, c], w, h, { maxAreaFraction: 0.6, minAreaFraction: 0.01, maxMasks: 2 });
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = (x >= 2 && x < 6 && y >= 2 && y < 6) || (x >= 10 && x < 14 && y >= 1 && y < 5);
      assert.is(cov[y * w + x], inside ? 1 : 0, `pixel ${x},${y}`);
    }
  }
  assert.ok(salientCoverage([background], w, h).every((v) => v === 1), 'only background: no focus evidence');
  assert.ok(salientCoverage([], w, h).every((v) => v === 1), 'no masks: all ones');
});

test('salientCoverage: masks touching the frame edge are left out unless dropBorder is false', () => {
  const w = 20;
  const h = 10;
  const corner = rectMask(w, h, 14, 0, 20, 4, 0.99, 0.99); // touches the top and right edges; the best score
  const inner = rectMask(w, h, 3, 3, 7, 7, 0.8, 0.8);
  const count = (cov: Float32Array) => cov.reduce((s, v) => s + v, 0);
  assert.is(count(salientCoverage([corner, inner], w, h, { maxMasks: 1 })), 16, 'default: the corner mask is dropped, the inner one (4×4) chosen');
  assert.is(count(salientCoverage([corner, inner], w, h, { maxMasks: 1, dropBorder: false })), 24, 'dropBorder false: the best-scored corner mask (6×4) wins');
  for (const [x0, y0, x1, y1] of [[0, 3, 4, 7], [3, 6, 7, 10], [0, 0, 20, 1]]) {
    assert.ok(salientCoverage([rectMask(w, h, x0, y0, x1, y1, 0.9, 0.9)], w, h).every((v) => v === 1), `edge mask ${[x0, y0, x1, y1]} alone: no focus`);
  }
});

test('salientCandidates: the window and edge rule salientCoverage chooses from, best first', () => {
  const w = 20;
  const h = 10;
  const corner = rectMask(w, h, 14, 0, 20, 4, 0.99, 0.99);
  const small = rectMask(w, h, 3, 3, 5, 5, 0.7, 0.7);
  const inner = rectMask(w, h, 8, 3, 12, 7, 0.9, 0.9);
  const speck = rectMask(w, h, 9, 8, 10, 9, 1, 1); // 1 pixel: below the area window
  const big = rectMask(w, h, 1, 1, 19, 9, 1, 1); // 144/200 pixels: above it
  assert.equal(salientCandidates([corner, small, inner], w, h), [inner, small], 'edge mask dropped, ranked by IoU × stability');
  assert.equal(salientCandidates([corner, small, inner], w, h, { dropBorder: false }), [corner, inner, small]);
  assert.equal(salientCandidates([corner, small, inner], w, h, { dropBorder: undefined, maxMasks: undefined }), [inner, small], 'undefined options take the defaults');
  assert.equal(salientCandidates([speck, big, inner], w, h, { minAreaFraction: 0.01 }), [inner]);
  assert.throws(() => salientCandidates([inner], 21, h), /salientCoverage: mask 0 is 20×10/);
});

test('learnedRegions: the salient candidates become region tokens, most confident first, at most LEARNED_MAX_REGIONS; focusStrength by mode', () => {
  const w = 32;
  const h = 32;
  const corner = rectMask(w, h, 20, 0, 32, 8, 0.99, 0.99); // touches the frame: not a candidate
  const background = rectMask(w, h, 1, 1, 31, 31, 0.98, 0.98); // 88 % of the image: not a candidate
  const a = rectMask(w, h, 4, 4, 12, 12, 0.8, 0.95);
  const b = rectMask(w, h, 16, 16, 24, 24, 0.9, 0.85); // higher IoU than a: first although IoU × stability is lower
  const regions = learnedRegions([corner, background, a, b], 4);
  assert.equal(regions.map((r) => r.mask), [b, a], 'candidates only, by predicted IoU');
  assert.equal([...regions[1].cover], [...patchCoverage(Float32Array.from(a.mask), w, h, 4)], 'each region with its grid coverage');
  assert.equal(learnedRegions([corner, background, a, b], 4, { dropBorder: false }).map((r) => r.mask), [corner, b, a], 'the salient options reach the candidates');
  assert.equal(learnedRegions([], 4), []);
  const many = Array.from({ length: LEARNED_MAX_REGIONS + 3 }, (_, i) => rectMask(w, h, 2 + i, 2, 6 + i, 6, 0.5 + i / 100, 0.9));
  const kept = learnedRegions(many, 4);
  assert.is(kept.length, LEARNED_MAX_REGIONS);
  assert.equal(kept.map((r) => r.mask), many.slice().reverse().slice(0, LEARNED_MAX_REGIONS), 'the most confident ones');
  assert.is(focusStrength('attention'), 4);
  assert.is(focusStrength('both'), 4);
  assert.is(focusStrength('learned'), 2);
  assert.is(focusStrength('learned', 0.5), 0.5, 'a given strength wins');
});

test('focusMaskFilters: looser than SAM\'s defaults, stability offset scaled to the input side', () => {
  // Reference, written out here rather than read back from focus.ts: the README's thresholds (predicted IoU 0.7,
  // stability 0.8) at every side, and SAM's stability offset of 1 logit at its native 1024² scaled linearly with the side.
  const reference = (side: number) => ({ predIouThresh: 0.7, stabilityScoreThresh: 0.8, stabilityScoreOffset: (1 * side) / 1024 });
  for (const side of [64, 256, 512, 768, 1024]) assert.equal(focusMaskFilters(side), reference(side), `filters at ${side}²`);
  assert.is(focusMaskFilters(512).stabilityScoreOffset, 0.5);
  assert.is(AUTO_MASK_DEFAULTS.stabilityScoreOffset, reference(1024).stabilityScoreOffset, 'at 1024² the offset is SAM\'s own');
  assert.ok(reference(1024).predIouThresh < AUTO_MASK_DEFAULTS.predIouThresh && reference(1024).stabilityScoreThresh < AUTO_MASK_DEFAULTS.stabilityScoreThresh, 'looser than SAM\'s');
  // Mask cache keys name FOCUS_MASK_FILTERS_1024 while the masks are made with focusMaskFilters(side): both must be the reference's.
  assert.equal({ ...FOCUS_MASK_FILTERS_1024 }, reference(1024), 'the values cache keys name are the filters at 1024²');
});

test('patchCoverage and the key/attention bias against a per-pixel reference', async () => {
  const r = rng(5);
  for (const [w, h, G] of [[8, 8, 4], [10, 7, 3], [13, 13, 13], [5, 9, 1]] as const) {
    const cov = Float32Array.from({ length: w * h }, () => (r() < 0.4 ? 1 : 0));
    // Reference: supersample each pixel 8×8 and average the subsamples that fall in each cell.
    const ref = new Float64Array(G * G);
    const cnt = new Float64Array(G * G);
    const S = 8 * G;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let sy = 0; sy < S; sy++) {
          for (let sx = 0; sx < S; sx++) {
            const gy = Math.floor(((y + (sy + 0.5) / S) * G) / h);
            const gx = Math.floor(((x + (sx + 0.5) / S) * G) / w);
            ref[gy * G + gx] += cov[y * w + x];
            cnt[gy * G + gx] += 1;
          }
        }
      }
    }
    const expected = Array.from(ref, (v, i) => v / cnt[i]);
    assertClose(patchCoverage(cov, w, h, G), expected, { atol: 1e-5, rtol: 0 }, `patchCoverage ${w}×${h} G=${G}`);
    const strength = 3;
    const keys = patchKeyBias(cov, w, h, G, strength);
    assertClose(keys, expected.map((c) => -strength * (1 - c)), { atol: 1e-5, rtol: 0 }, 'patchKeyBias');
  }
  await assertThrows(() => patchCoverage(new Float32Array(3), 2, 2, 1), /patchCoverage/, /3 values/, /2×2/);
  await assertThrows(() => patchKeyBias(new Float32Array(4), 2, 2, 1, -1), /strength/, /-1/);
});

test('mask cache codec round-trips; resizeRgba box-averages when shrinking', () => {
  const masks = [rectMask(9, 7, 1, 1, 5, 4, 0.9, 0.97), rectMask(9, 7, 0, 0, 9, 7, 0.8, 0.9)];
  const back = decodeMasks(encodeMasks(masks, 9, 7));
  assert.is(back.masks.length, 2);
  masks.forEach((m, k) => {
    assert.equal([...back.masks[k].mask], [...m.mask]);
    assert.is(back.masks[k].predictedIou, m.predictedIou);
    assert.equal(back.masks[k].box, m.box);
  });
  const img = { width: 4, height: 2, data: new Uint8Array([0, 0, 0, 255, 100, 0, 0, 255, 200, 0, 0, 255, 40, 0, 0, 255, 20, 0, 0, 255, 60, 0, 0, 255, 0, 0, 0, 255, 80, 0, 0, 255]) };
  const small = resizeRgba(img, 2, 1);
  assert.equal([small.data[0], small.data[4]], [Math.round((0 + 100 + 20 + 60) / 4), Math.round((200 + 40 + 0 + 80) / 4)]);
});

test('the attention bias lowers the class token\'s attention on off-focus patches (tiny CLIP tower)', async ({ gpu }) => {
  if (!clipFixture) return skip(NO_SHARED);
  const file = await openSafetensorsFile(clipFixture);
  const model = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f32' });
  await file.close();
  const v = model.config.vision;
  const G = v.grid;
  const R = v.imageResolution;
  const N = 2;
  const T = 1 + G * G;
  // Focus: the left half of the image.
  const w = 32;
  const cov = new Float32Array(w * w);
  for (let y = 0; y < w; y++) for (let x = 0; x < w / 2; x++) cov[y * w + x] = 1;
  const strength = 2;
  // The key bias [1, 1, 1, T]: 0 for the class token, then the patches'.
  const bias = new Float32Array(T);
  bias.set(patchKeyBias(cov, w, w, G, strength), 1);
  const run = (withBias: boolean) => {
    const g = new Graph(gpu, 'probe');
    const images = g.input('images', [N, 3, R, R]);
    const attnBias = withBias ? g.input('attnBias', [1, 1, 1, T]) : undefined;
    const { classAttention } = model.imageTower(g, images, { attnBias, classAttention: true });
    g.output('attn', ops.slice(g, classAttention!, [0, 1], [N, T]));
    const feeds: Record<string, ArrayLike<number>> = { images: randn(N * 3 * R * R, 9) };
    if (withBias) feeds.attnBias = bias;
    const out = g.run(feeds).attn;
    g.dispose();
    return out;
  };
  const plain = (await run(false).read()) as Float32Array;
  const biased = (await run(true).read()) as Float32Array;
  const L = G * G;
  const offFocus = (p: Float32Array, n: number) => {
    let s = 0;
    for (let k = 0; k < L; k++) if (k % G >= G / 2) s += p[n * L + k];
    return s;
  };
  for (let n = 0; n < N; n++) {
    const before = offFocus(plain, n);
    const after = offFocus(biased, n);
    assert.ok(after < before * 0.6, `image ${n}: off-focus attention ${after.toFixed(4)} should drop well below ${before.toFixed(4)}`);
    // Each off-focus patch's probability relative to the class token's own (unbiased key) drops by e^-strength if the rest is unchanged:
    // the last block's input differs too (the bias acts in block 0 as well), so only check the ratio is in the right range.
    const ratioBefore = before / plain[n * L]; // ≈ compare with an on-focus patch
    const ratioAfter = after / biased[n * L];
    assert.ok(ratioAfter < ratioBefore * Math.exp(-strength) * 3, `image ${n}: off/on ratio ${ratioAfter.toFixed(4)} vs ${ratioBefore.toFixed(4)}`);
  }
  model.dispose();
});

async function trainSteps(gpu: import('../src/device.js').Gpu, c: Classifier, batch: Batch, steps: number, lr: number): Promise<number[]> {
  const opt = new AdamW(gpu, [...c.params].map(([name, param]) => ({ name, param })), { lr, weightDecay: 0 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const { loss, grads } = c.lossAndGradients(batch);
    opt.step(grads);
    losses.push(((await loss.read()) as Float32Array)[0]);
    loss.dispose();
    for (const t of grads.values()) t.dispose();
  }
  opt.dispose();
  return losses;
}

test('SamPoolClassifier attention pooling: [mean, focus-weighted mean] → LayerNorm → head against a float64 reference', async ({ gpu }) => {
  const L = 9;
  const C = 256;
  const B = 3;
  const K = 4;
  const feats = randn(B * L * C, 31, 1);
  const keyBias = randn(B * L, 32, 2);
  const c = new SamPoolClassifier(gpu, L, C, K, { pooling: 'attention', queries: 2, seed: 5 });
  assert.equal(c.params.get('head.w')!.shape, [2 * C, K], 'the head reads 2C features');
  // Zero queries: every score is 0, so the attention weights are softmax(bias) over the positions.
  c.params.get('queries')!.write(new Float32Array(2 * C));
  const norm = { w: randn(2 * C, 33, 1), b: randn(2 * C, 34, 1) };
  c.params.get('norm.w')!.write(norm.w);
  c.params.get('norm.b')!.write(norm.b);
  const headW = (await c.params.get('head.w')!.read()) as Float32Array;
  const inputs = Tensor.fromArray(gpu, feats, [B, L, C]);
  const { probs, weights } = c.predict({ size: B, inputs, keyBias });
  const got = (await probs.read()) as Float32Array;
  const gotWeights = (await weights.read()) as Float32Array;
  for (let b = 0; b < B; b++) {
    const bias = Array.from(keyBias.subarray(b * L, (b + 1) * L));
    const top = Math.max(...bias);
    const e = bias.map((v) => Math.exp(v - top));
    const w = e.map((v) => v / e.reduce((a, x) => a + x, 0));
    const x = new Float64Array(2 * C);
    for (let l = 0; l < L; l++) {
      for (let ch = 0; ch < C; ch++) {
        const f = feats[(b * L + l) * C + ch];
        x[ch] += f / L;
        x[C + ch] += w[l] * f;
      }
    }
    const mean = x.reduce((a, v) => a + v, 0) / (2 * C);
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / (2 * C);
    const normed = Array.from(x, (v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * norm.w[i] + norm.b[i]);
    const logits = Array.from({ length: K }, (_, k) => normed.reduce((a, v, i) => a + v * headW[i * K + k], 0)); // head.b is zero at init
    const lmax = Math.max(...logits);
    const pe = logits.map((v) => Math.exp(v - lmax));
    const ref = pe.map((v) => v / pe.reduce((a, q) => a + q, 0));
    // f32 sums over 2C = 512 features of unit scale: 1e-4 absolute on probabilities.
    assertClose(got.subarray(b * K, (b + 1) * K), ref, { atol: 1e-4, rtol: 0 }, `image ${b}: probabilities`);
    assertClose(gotWeights.subarray(b * L, (b + 1) * L), w, { atol: 1e-5, rtol: 0 }, `image ${b}: the explanation is the focus pooling's weights`);
  }
  for (const t of [probs, weights, inputs]) t.dispose();
  c.dispose();
});

test('SamPoolClassifier (mean and attention pooling) learns a separable toy set', async ({ gpu }) => {
  const L = 16;
  const C = 256;
  const B = 6;
  const feats = randn(B * L * C, 21, 1);
  const labels = Int32Array.from({ length: B }, (_, i) => i % 3);
  // Class signal in a few channels of the on-focus positions.
  for (let b = 0; b < B; b++) for (let l = 0; l < 4; l++) feats[(b * L + l) * C + labels[b]] += 3;
  const keyBias = new Float32Array(B * L).map((_, i) => (i % L < 4 ? 0 : -4));
  for (const pooling of ['mean', 'attention'] as const) {
    const c = new SamPoolClassifier(gpu, L, C, 3, { pooling, queries: 2, seed: 1 });
    const inputs = Tensor.fromArray(gpu, feats, [B, L, C]);
    const losses = await trainSteps(gpu, c, { size: B, inputs, keyBias, labels }, 15, 1e-2);
    assert.ok(losses.at(-1)! < losses[0] * 0.5, `${pooling}: loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
    const { probs, weights } = c.predict({ size: B, inputs, keyBias });
    const p = (await probs.read()) as Float32Array;
    const wts = (await weights.read()) as Float32Array;
    for (let b = 0; b < B; b++) assert.ok(Math.abs(p.slice(b * 3, b * 3 + 3).reduce((a, x) => a + x, 0) - 1) < 1e-4, 'probabilities sum to 1');
    if (pooling === 'attention') {
      assert.ok(Math.abs(wts.slice(0, L).reduce((a, x) => a + x, 0) - 1) < 1e-4, 'pooling weights sum to 1');
      assert.ok(wts[0] > wts[L - 1] * 10, 'the key bias down-weights off-focus positions');
    } else {
      // Per-position evidence for the prediction: in [0, 1], highest where the class signal is (positions 0–3).
      assert.ok(wts.every((x) => x >= 0 && x <= 1 + 1e-6), 'evidence in [0, 1]');
      let on = 0;
      let off = 0;
      for (let i = 0; i < B * L; i++) (i % L < 4 ? (on += wts[i] / 4) : (off += wts[i] / (L - 4)));
      assert.ok(on > off, `on-signal positions explain the prediction more (mean ${(on / B).toFixed(3)} vs ${(off / B).toFixed(3)})`);
    }
    for (const t of [probs, weights, inputs]) t.dispose();
    c.dispose();
  }
});

test('ClipPromptClassifier learns a toy set (tiny CLIP tower)', async ({ gpu }) => {
  if (!clipFixture) return skip(NO_SHARED);
  const B = 6;
  const labels = Int32Array.from({ length: B }, (_, i) => i % 3);
  const file = await openSafetensorsFile(clipFixture);
  const model = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f32' });
  await file.close();
  const R = model.config.vision.imageResolution;
  const E = model.config.embedDim;
  // attention: false here: the biased tower is covered above, and its backward pipelines cost a minute to compile on lavapipe.
  const c = new ClipPromptClassifier(gpu, model, randn(3 * E, 4), 3, { prompts: 2, attention: false, seed: 0 });
  const images = Tensor.fromArray(gpu, randn(B * 3 * R * R, 8), [B, 3, R, R]);
  const losses = await trainSteps(gpu, c, { size: B, inputs: images, labels }, 15, 1e-2);
  assert.ok(losses.at(-1)! < losses[0] * 0.7, `clip: loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
  images.dispose();
  c.dispose();
  model.dispose();
});

/** Mean cross-entropy of row-major logits [n, k] (float64). */
function meanCrossEntropy(logits: Float64Array, n: number, k: number, target: (i: number) => number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
    sum += lse - row[target(i)];
  }
  return sum / n;
}

test('ClipPromptClassifier with the image–text contrastive term: loss vs a float64 reference, prompt gradient vs finite differences', async ({ gpu }) => {
  if (!clipFixture) return skip(NO_SHARED);
  const file = await openSafetensorsFile(clipFixture);
  const model = await ClipModel.fromSafetensors(gpu, file, { dtype: 'f32' });
  await file.close();
  const [K, B, P, LAMBDA] = [3, 4, 2, 0.5];
  const R = model.config.vision.imageResolution;
  const E = model.config.embedDim;
  const width = model.config.vision.width;
  const text = randn(K * E, 5);
  const c = new ClipPromptClassifier(gpu, model, text, K, { prompts: P, attention: false, contrastive: LAMBDA, seed: 2 });
  const labels = Int32Array.from([0, 2, 2, 1]);
  const images = Tensor.fromArray(gpu, randn(B * 3 * R * R, 9), [B, 3, R, R]);
  const lossOf = async () => {
    const { loss, grads } = c.lossAndGradients({ size: B, inputs: images, labels });
    const value = ((await loss.read()) as Float32Array)[0];
    const promptGrad = Float32Array.from((await grads.get('prompts')!.read()) as Float32Array);
    loss.dispose();
    for (const t of grads.values()) t.dispose();
    return { value, promptGrad };
  };
  // Reference: features from the tower alone, then every term in float64.
  const features = model.encodeImage(images, { prompts: c.params.get('prompts')! });
  const f = (await features.read()) as Float32Array;
  features.dispose();
  const head = (await c.params.get('head')!.read()) as Float32Array;
  const unit = (v: ArrayLike<number>, at: number, n: number) => {
    const norm = Math.hypot(...Array.from({ length: n }, (_, i) => v[at + i]));
    return Array.from({ length: n }, (_, i) => v[at + i] / norm);
  };
  const fh = Array.from({ length: B }, (_, b) => unit(f, b * E, E));
  const th = Array.from({ length: K }, (_, k) => unit(text, k * E, E));
  const s = model.logitScale;
  const dot = (a: number[], b: number[]) => a.reduce((acc, x, i) => acc + x * b[i], 0);
  const headLogits = new Float64Array(B * K).map((_, i) => s * fh[Math.floor(i / K)].reduce((acc, x, e) => acc + x * head[e * K + (i % K)], 0));
  const imageToText = new Float64Array(B * K).map((_, i) => s * dot(fh[Math.floor(i / K)], th[i % K]));
  const textToImage = new Float64Array(B * B).map((_, i) => s * dot(th[labels[Math.floor(i / B)]], fh[i % B]));
  const expected =
    meanCrossEntropy(headLogits, B, K, (i) => labels[i]) +
    (LAMBDA / 2) * (meanCrossEntropy(imageToText, B, K, (i) => labels[i]) + meanCrossEntropy(textToImage, B, B, (i) => i));
  const { value, promptGrad } = await lossOf();
  // f32 towers (2 blocks) and logits scaled by exp(logit_scale): relative 1e-4.
  assertClose([value], [expected], { atol: 1e-4 * Math.abs(expected), rtol: 0 }, 'loss with the contrastive term');
  // Central differences on two prompt entries (f32 loss: step 1e-2, tolerance 3% + 2e-4).
  for (const at of [3, P * width - 5]) {
    const fd = await tensorCentralDifference(c.params.get('prompts')!, at, async () => (await lossOf()).value);
    assert.ok(Math.abs(fd - promptGrad[at]) <= 0.03 * Math.abs(fd) + 2e-4, `d loss / d prompts[${at}]: graph ${promptGrad[at]}, finite differences ${fd}`);
  }
  await assertThrows(() => new ClipPromptClassifier(gpu, model, text, K, { prompts: 0, attention: false, contrastive: -1, seed: 0 }), /ClipPromptClassifier: contrastive must be a number >= 0, got -1/);
  images.dispose();
  c.dispose();
  model.dispose();
});

test.run();
