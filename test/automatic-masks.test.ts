import * as assert from 'uvu/assert';
import { Tensor } from '../src/node.js';
import type { Gpu } from '../src/device.js';
import { maskBinarize, maskStabilityCounts, maskWordsPerRow, type MaskUpsampleGeometry } from '../src/kernels/mask-postprocess.js';
import { generateMasks, removeSmallRegions, type BatchedMaskDecoder, type GenerateMasksOptions } from '../src/models/sam/automatic.js';
import * as ref from './ref/automatic-masks.js';
import { assertThrows, gpuSuite, randn, rng } from './util.js';

const test = gpuSuite('automatic-masks');

// A 128×64 image in a 256² frame (scale 2) with 64² low-res logits: the
// resize ratios (64/256 and 128/64) are powers of two, and with logits on a
// 1/16 grid of magnitude ≤ 32 every f32 product and sum in the kernel is
// exact, so GPU and float64 reference agree bit for bit.
const EXACT: ref.RefGeometry = { frameSize: 256, resizedSize: [128, 256], imageSize: [64, 128] };
const EXACT_LOW = 64;
// SAM's own geometry on an image whose scale 1024/200 is not a power of two:
// f32 and float64 may then disagree on pixels whose logit is within rounding
// of a threshold.
const SAM: ref.RefGeometry = { frameSize: 1024, resizedSize: [768, 1024], imageSize: [150, 200] };
const SAM_LOW = 256;
/** Upsampled f32 logits differ from float64 by ~1e-6 here (16-term convex blends of |values| ≤ 32); 1e-4 is ample. */
const NEAR = 1e-4;

const quantize = (v: number) => Math.round(Math.min(32, Math.max(-32, v)) * 16) / 16;

function toKernelGeometry(g: ref.RefGeometry): MaskUpsampleGeometry {
  return { frameSize: g.frameSize, resizedSize: g.resizedSize, imageSize: g.imageSize };
}

function unpack(bits: Uint32Array, k: number, width: number, height: number): Uint8Array {
  const wpr = maskWordsPerRow(width);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = (bits[(k * height + y) * wpr + Math.floor(x / 32)] >>> x % 32) & 1;
  return out;
}

// ------------------------------------------------------------ a synthetic scene

/** A region by its signed distance in image pixels (> 0 inside). */
type Region = (x: number, y: number) => number;
const disc = (cx: number, cy: number, r: number): Region => (x, y) => r - Math.hypot(x - cx, y - cy);
const rect = (x0: number, y0: number, x1: number, y1: number): Region => (x, y) => Math.min(x - x0, x1 - x, y - y0, y1 - y);

/**
 * For each point: the region under it (else the background, outside every
 * region), as three masks: sharp (IoU 0.90 + 0.0009·point index, stable),
 * blurry (IoU 0.95, unstable: a wide band of logits near 0) and dilated by 5
 * pixels (IoU 0.80), each with seeded noise of ±0.25.
 */
function sceneDecoder(regions: Region[], g: ref.RefGeometry, low: number) {
  const [h, w] = g.imageSize;
  const background: Region = (x, y) => -Math.max(...regions.map((r) => r(x, y)));
  // Points are numbered in the order first seen (grid order), for the GPU run and the reference alike.
  const pointIndex = new Map<string, number>();
  return (point: [number, number]): ref.RefDecoded => {
    const region = regions.find((r) => r(point[0], point[1]) > 0) ?? background;
    const key = `${point[0]},${point[1]}`;
    if (!pointIndex.has(key)) pointIndex.set(key, pointIndex.size);
    const index = pointIndex.get(key) as number;
    const noise = rng(1000 + index);
    const planes = [new Float32Array(low * low), new Float32Array(low * low), new Float32Array(low * low)];
    for (let i = 0; i < low; i++) {
      // Low-res pixel centre → frame → image coordinates.
      const y = ((((i + 0.5) * g.frameSize) / low) * h) / g.resizedSize[0];
      for (let j = 0; j < low; j++) {
        const x = ((((j + 0.5) * g.frameSize) / low) * w) / g.resizedSize[1];
        const sd = region(x, y);
        planes[0][i * low + j] = quantize(24 * sd + 0.5 * (noise() - 0.5));
        planes[1][i * low + j] = quantize(0.15 * sd + 0.5 * (noise() - 0.5));
        planes[2][i * low + j] = quantize(24 * (sd + 5) + 0.5 * (noise() - 0.5));
      }
    }
    return { planes, ious: [Math.fround(0.9 + 0.0009 * (index % 64)), Math.fround(0.95), Math.fround(0.8)] };
  };
}

/** A BatchedMaskDecoder over a per-point decode function; it owns (and frees) its last output. */
class FakeDecoder implements BatchedMaskDecoder {
  readonly inputSize: number;
  readonly resizedSize: [number, number];
  batches: number[] = [];
  private last?: Tensor;
  constructor(
    private readonly gpu: Gpu,
    private readonly decode: (p: [number, number]) => ref.RefDecoded,
    g: ref.RefGeometry,
    private readonly low: number,
  ) {
    this.inputSize = g.frameSize;
    this.resizedSize = g.resizedSize;
  }
  async predictBatch(points: ReadonlyArray<readonly [number, number]>, labels: readonly number[]) {
    assert.equal([...labels], points.map(() => 1), 'all prompts are foreground points');
    this.last?.dispose();
    this.batches.push(points.length);
    const plane = this.low * this.low;
    const data = new Float32Array(points.length * 3 * plane);
    const ious = new Float32Array(points.length * 3);
    points.forEach((p, b) => {
      const d = this.decode([p[0], p[1]]);
      d.planes.forEach((pl, m) => data.set(pl, (b * 3 + m) * plane));
      ious.set(d.ious, b * 3);
    });
    this.last = Tensor.fromArray(this.gpu, data, [points.length, 3, this.low, this.low]);
    return { lowResMasks: this.last, iouPredictions: ious };
  }
  dispose() {
    this.last?.dispose();
  }
}

const DEFAULTS: ref.RefOptions = { pointsPerSide: 32, predIouThresh: 0.88, stabilityScoreThresh: 0.95, stabilityScoreOffset: 1, boxNmsThresh: 0.7, minMaskRegionArea: 0 };

async function runBoth(gpu: Gpu, regions: Region[], g: ref.RefGeometry, low: number, options: GenerateMasksOptions) {
  const decode = sceneDecoder(regions, g, low);
  const decoder = new FakeDecoder(gpu, decode, g, low);
  const progress: [number, number][] = [];
  const got = await generateMasks(decoder, g.imageSize[1], g.imageSize[0], { ...options, onProgress: (d, t) => progress.push([d, t]) });
  decoder.dispose();
  const expected = ref.automaticMasks(decode, low, low, g, { ...DEFAULTS, ...options } as ref.RefOptions);
  return { got, expected, progress, batches: decoder.batches };
}

function assertSameMasks(got: Awaited<ReturnType<typeof generateMasks>>, expected: ref.RefMask[], label: string): void {
  assert.is(got.length, expected.length, `${label}: mask count`);
  got.forEach((m, k) => {
    const e = expected[k];
    assert.is(m.predictedIou, e.predictedIou, `${label}: mask ${k} predicted IoU`);
    assert.is(m.stabilityScore, e.stabilityScore, `${label}: mask ${k} stability score`);
    assert.equal(m.point, e.point, `${label}: mask ${k} point`);
    assert.equal(m.box, e.box, `${label}: mask ${k} box`);
    assert.is(m.area, e.area, `${label}: mask ${k} area`);
    assert.ok(
      m.mask.every((v, i) => v === e.mask[i]),
      `${label}: mask ${k} pixels`,
    );
  });
}

const SCENE: Region[] = [disc(30, 24, 12), rect(70, 8, 118, 40), disc(100, 54, 6)];

// ------------------------------------------------------------ kernels

test('kernels: stability counts and binary masks equal the float64 reference exactly (power-of-two scales)', async ({ gpu }) => {
  const decode = sceneDecoder(SCENE, EXACT, EXACT_LOW);
  const planes = [...decode([30, 24]).planes, ...decode([5, 5]).planes];
  const logits = Tensor.fromArray(gpu, planes.flatMap((p) => [...p]), [2, 3, EXACT_LOW, EXACT_LOW]);
  const selected = [4, 0, 2, 5];
  const counts = (await maskStabilityCounts(gpu, logits, selected, toKernelGeometry(EXACT), 1).read()) as Uint32Array;
  const bits = (await maskBinarize(gpu, logits, selected, toKernelGeometry(EXACT)).read()) as Uint32Array;
  const [h, w] = EXACT.imageSize;
  selected.forEach((p, k) => {
    const up = ref.upsampleLogits(planes[p], EXACT_LOW, EXACT_LOW, EXACT);
    assert.is(counts[2 * k], up.filter((v) => v > 1).length, `plane ${p}: #(logit > 1)`);
    assert.is(counts[2 * k + 1], up.filter((v) => v > -1).length, `plane ${p}: #(logit > -1)`);
    const mask = unpack(bits, k, w, h);
    assert.ok(mask.every((v, i) => v === (up[i] > 0 ? 1 : 0)), `plane ${p}: binary mask`);
  });
  logits.dispose();
});

test("kernels: SAM's 1024/256 geometry on a 200×150 image, random smooth logits; differences only within rounding of a threshold", async ({ gpu }) => {
  const planes = 5;
  const [h, w] = SAM.imageSize;
  // Smooth fields: random 16×16 logits, bilinearly enlarged to 256².
  const data = new Float32Array(planes * SAM_LOW * SAM_LOW);
  for (let p = 0; p < planes; p++) data.set(ref.bilinear(randn(256, 70 + p, 4), 16, 16, SAM_LOW, SAM_LOW), p * SAM_LOW * SAM_LOW);
  const logits = Tensor.fromArray(gpu, data, [planes, SAM_LOW, SAM_LOW]);
  const selected = [3, 1, 4];
  const offset = 0.75;
  const counts = (await maskStabilityCounts(gpu, logits, selected, toKernelGeometry(SAM), offset).read()) as Uint32Array;
  const bits = (await maskBinarize(gpu, logits, selected, toKernelGeometry(SAM)).read()) as Uint32Array;
  selected.forEach((p, k) => {
    const up = ref.upsampleLogits(data.subarray(p * SAM_LOW * SAM_LOW, (p + 1) * SAM_LOW * SAM_LOW), SAM_LOW, SAM_LOW, SAM);
    for (const [slot, t] of [[0, offset], [1, -offset]] as const) {
      const expected = up.filter((v) => v > t).length;
      const near = up.filter((v) => Math.abs(v - t) < NEAR).length;
      assert.ok(Math.abs(counts[2 * k + slot] - expected) <= near, `plane ${p}: #(logit > ${t}) ${counts[2 * k + slot]} vs ${expected} (${near} near)`);
    }
    const mask = unpack(bits, k, w, h);
    let inside = 0;
    mask.forEach((v, i) => {
      inside += v;
      if (v !== (up[i] > 0 ? 1 : 0)) assert.ok(Math.abs(up[i]) < NEAR, `plane ${p}: pixel ${i} is ${v} with reference logit ${up[i]}`);
    });
    assert.ok(inside > 0.1 * w * h && inside < 0.9 * w * h, `plane ${p}: the test field should cross 0 (${inside} pixels inside)`);
  });
  logits.dispose();
});

test('kernels: reject bad inputs naming the op and the values', async ({ gpu }) => {
  const g = toKernelGeometry(EXACT);
  const logits = Tensor.fromArray(gpu, new Float32Array(2 * 16), [2, 4, 4]);
  await assertThrows(() => maskStabilityCounts(gpu, logits, [2], g, 1), /maskStabilityCounts/, /planes\[0\] = 2/, /0 to 1/);
  await assertThrows(() => maskBinarize(gpu, logits, [0.5], g), /maskBinarize/, /planes\[0\] = 0\.5/);
  await assertThrows(() => maskBinarize(gpu, logits, [0], { ...g, resizedSize: [300, 10] }), /maskBinarize/, /resizedSize \[300, 10\] exceeds the 256² frame/);
  await assertThrows(() => maskBinarize(gpu, logits, [0], { ...g, imageSize: [0, 10] }), /maskBinarize/, /imageSize/, /\[0,10\]/);
  await assertThrows(() => maskStabilityCounts(gpu, logits, [0], g, NaN), /maskStabilityCounts/, /offset/, /NaN/);
  const ints = Tensor.fromArray(gpu, new Int32Array(16), [1, 4, 4], 'i32');
  await assertThrows(() => maskBinarize(gpu, ints, [0], g), /maskBinarize/, /f32/, /i32/);
  await assertThrows(() => maskBinarize(gpu, logits.reshape([32]), [0], g), /maskBinarize/, /rank ≥ 3/, /\[32\]/);
  const none = await maskBinarize(gpu, logits, [], g).read();
  assert.is(none.length, 0, 'no planes selected: empty result');
  logits.dispose();
  ints.dispose();
});

// ------------------------------------------------------------ the generator

test('generator equals the reference exactly: masks, scores, boxes, order; duplicates removed; progress per batch', async ({ gpu }) => {
  const { got, expected, progress, batches } = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { pointsPerSide: 6, pointsPerBatch: 10 });
  assertSameMasks(got, expected, 'defaults, 6² points');
  assert.equal(batches, [10, 10, 10, 6], 'batches of pointsPerBatch');
  assert.equal(progress, [[10, 36], [20, 36], [30, 36], [36, 36]], 'progress after each batch');
  // Independent of the reference: one sharp mask per region the grid hits (the small disc is missed; + background).
  const hit = new Set(ref.pointGrid(6, 128, 64).map(([x, y]) => SCENE.findIndex((r) => r(x, y) > 0)));
  assert.equal([...hit].sort(), [-1, 0, 1], 'the 6² grid hits two regions and the background');
  assert.is(got.length, hit.size, 'each region once after NMS');
  for (let k = 1; k < got.length; k++) assert.ok(got[k - 1].predictedIou >= got[k].predictedIou, 'sorted by predicted IoU');
  for (const m of got) {
    assert.ok(m.predictedIou >= 0.88 && m.predictedIou < 0.95, `only sharp masks pass (IoU ${m.predictedIou})`);
    assert.ok(m.stabilityScore >= 0.95, `stable (${m.stabilityScore})`);
    assert.is(m.mask.length, 128 * 64);
    assert.is(m.width, 128);
    assert.is(m.height, 64);
  }
  const disc0 = got.find((m) => m.mask[24 * 128 + 30] === 1 && m.area < 1000);
  assert.ok(disc0, 'the disc at (30, 24) is found');
  // Pixel (x, y) has its centre at (x + ½, y + ½): inside for x in 18…41, y in 12…35; upsampling may move an edge by a pixel.
  [18, 12, 41, 35].forEach((v, i) => assert.ok(Math.abs(disc0.box[i] - v) <= 1, `disc box ${disc0.box} vs [18, 12, 41, 35]`));
});

test('thresholds filter: pred IoU lets the IoU-0.80 dilated masks in only when lowered; stability keeps the blurry ones out', async ({ gpu }) => {
  const base = { pointsPerSide: 4, pointsPerBatch: 64 };
  const strict = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, base);
  assertSameMasks(strict.got, strict.expected, 'defaults');
  assert.not.ok(strict.got.some((m) => m.predictedIou === Math.fround(0.8) || m.predictedIou === Math.fround(0.95)), 'defaults: no dilated or blurry mask');

  const lowIou = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { ...base, predIouThresh: 0.75 });
  assertSameMasks(lowIou.got, lowIou.expected, 'predIouThresh 0.75');
  assert.ok(lowIou.got.some((m) => m.predictedIou === Math.fround(0.8)), 'predIouThresh 0.75 admits the dilated masks');

  const noStability = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { ...base, stabilityScoreThresh: 0 });
  assertSameMasks(noStability.got, noStability.expected, 'stabilityScoreThresh 0');
  const blurry = noStability.got.filter((m) => m.predictedIou === Math.fround(0.95));
  assert.ok(blurry.length > 0 && blurry.every((m) => m.stabilityScore < 0.95), 'without the stability filter the blurry masks (stability < 0.95) appear');

  const offset = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { ...base, stabilityScoreOffset: 4, stabilityScoreThresh: 0.9 });
  assertSameMasks(offset.got, offset.expected, 'stabilityScoreOffset 4');
});

test('NMS: threshold 1 keeps every duplicate, the default keeps one per region', async ({ gpu }) => {
  const all = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { pointsPerSide: 5, boxNmsThresh: 1 });
  assertSameMasks(all.got, all.expected, 'boxNmsThresh 1');
  const deduped = await runBoth(gpu, SCENE, EXACT, EXACT_LOW, { pointsPerSide: 5 });
  assertSameMasks(deduped.got, deduped.expected, 'boxNmsThresh 0.7');
  assert.ok(all.got.length > deduped.got.length + 5, `duplicates removed (${all.got.length} → ${deduped.got.length})`);
  const kept = new Set(deduped.got.map((m) => m.predictedIou));
  // The survivor of each duplicate group is its best-scored member.
  for (const m of all.got) {
    const survivor = deduped.got.find((d) => ref.boxIou(d.box, m.box) > 0.7);
    assert.ok(survivor && survivor.predictedIou >= m.predictedIou, 'a suppressed mask has a better-scored kept twin');
  }
  assert.is(kept.size, deduped.got.length, 'kept masks have distinct scores');
});

test('small-region clean-up fills a hole and removes an island, then re-runs NMS', async ({ gpu }) => {
  // One region for every point: a rectangle with a hole of radius 2 at (60, 30) plus an island of radius 2 at (116, 56).
  const body = rect(20, 10, 100, 50);
  const hole = disc(60, 30, 2.2);
  const island = disc(116, 56, 2.2);
  const shape: Region = (x, y) => Math.max(Math.min(body(x, y), -hole(x, y)), island(x, y));
  const plain = await runBoth(gpu, [shape], EXACT, EXACT_LOW, { pointsPerSide: 3 });
  assertSameMasks(plain.got, plain.expected, 'no clean-up');
  const cleaned = await runBoth(gpu, [shape], EXACT, EXACT_LOW, { pointsPerSide: 3, minMaskRegionArea: 30 });
  assertSameMasks(cleaned.got, cleaned.expected, 'minMaskRegionArea 30');
  const before = plain.got.find((m) => m.mask[30 * 128 + 40] === 1);
  const after = cleaned.got.find((m) => m.mask[30 * 128 + 40] === 1);
  assert.ok(before && after, 'the rectangle mask is found with and without clean-up');
  assert.is(before.mask[30 * 128 + 60], 0, 'hole before');
  assert.is(before.mask[56 * 128 + 116], 1, 'island before');
  assert.is(after.mask[30 * 128 + 60], 1, 'hole filled');
  assert.is(after.mask[56 * 128 + 116], 0, 'island removed');
  assert.ok(before.box[2] >= 114 && after.box[2] <= 100, `box shrinks to the rectangle (${before.box} → ${after.box})`);
  assert.ok(after.area > before.area - 30, 'area recomputed');
});

test('removeSmallRegions equals the reference on random masks, both modes', () => {
  for (const [w, h, density, area, seed] of [
    [37, 23, 0.3, 4, 1],
    [37, 23, 0.6, 6, 2],
    [1, 17, 0.5, 3, 3],
    [50, 40, 0.45, 20, 4],
  ] as const) {
    const r = rng(seed);
    const mask = Uint8Array.from({ length: w * h }, () => (r() < density ? 1 : 0));
    for (const mode of ['holes', 'islands'] as const) {
      const got = removeSmallRegions(mask, w, h, area, mode);
      const expected = ref.removeSmallRegions(mask, w, h, area, mode);
      assert.is(got.changed, expected.changed, `${w}×${h} ${mode}: changed`);
      assert.equal([...got.mask], [...expected.mask], `${w}×${h} ${mode}: mask`);
    }
  }
  // Every island small: the largest survives.
  const two = Uint8Array.from([1, 0, 0, 1, 1, 0, 0, 1, 1]);
  assert.equal([...removeSmallRegions(two, 9, 1, 10, 'islands').mask], [0, 0, 0, 1, 1, 0, 0, 0, 0]);
});

test("generator on SAM's 1024/256 geometry (non power-of-two scale) matches the reference up to threshold rounding", async ({ gpu }) => {
  const regions = [disc(60, 60, 30), rect(120, 20, 190, 130)];
  const { got, expected } = await runBoth(gpu, regions, SAM, SAM_LOW, { pointsPerSide: 4, pointsPerBatch: 6 });
  assert.is(got.length, expected.length, 'mask count');
  got.forEach((m, k) => {
    const e = expected[k];
    assert.is(m.predictedIou, e.predictedIou, `mask ${k} predicted IoU`);
    assert.equal(m.point, e.point, `mask ${k} point`);
    assert.ok(Math.abs(m.stabilityScore - e.stabilityScore) < 1e-3, `mask ${k} stability ${m.stabilityScore} vs ${e.stabilityScore}`);
    m.mask.forEach((v, i) => {
      if (v !== e.mask[i]) assert.ok(Math.abs(e.logits[i]) < NEAR, `mask ${k} pixel ${i}: ${v} with reference logit ${e.logits[i]}`);
    });
  });
  assert.is(got.length, 3, 'disc, rectangle, background');
});

test('bad options and decoder outputs throw Errors naming them', async ({ gpu }) => {
  const decoder = new FakeDecoder(gpu, sceneDecoder(SCENE, EXACT, EXACT_LOW), EXACT, EXACT_LOW);
  const cases: [GenerateMasksOptions, RegExp][] = [
    [{ pointsPerSide: 0 }, /pointsPerSide must be a positive integer, got 0/],
    [{ pointsPerSide: 2.5 }, /pointsPerSide .* got 2\.5/],
    [{ pointsPerBatch: -1 }, /pointsPerBatch .* got -1/],
    [{ predIouThresh: 1.5 }, /predIouThresh must be a number in \[0, 1\], got 1\.5/],
    [{ stabilityScoreThresh: NaN }, /stabilityScoreThresh .* got NaN/],
    [{ boxNmsThresh: -0.1 }, /boxNmsThresh .* got -0\.1/],
    [{ stabilityScoreOffset: -1 }, /stabilityScoreOffset .* got -1/],
    [{ minMaskRegionArea: NaN }, /minMaskRegionArea .* got NaN/],
    [{ onProgress: 3 as unknown as () => void }, /onProgress must be a function/],
  ];
  for (const [options, pattern] of cases) await assertThrows(() => generateMasks(decoder, 128, 64, options), /generateMasks/, pattern);
  await assertThrows(() => generateMasks(decoder, 0, 64), /generateMasks/, /width and height/, /0×64/);
  const broken: BatchedMaskDecoder = {
    inputSize: 256,
    resizedSize: [64, 128],
    predictBatch: async (points) => ({ lowResMasks: Tensor.fromArray(gpu, new Float32Array(16), [1, 1, 4, 4]), iouPredictions: new Float32Array(points.length) }),
  };
  await assertThrows(() => generateMasks(broken, 128, 64, { pointsPerSide: 2 }), /generateMasks/, /lowResMasks must be \[4, M, h, w\] for 4 points, got \[1, 1, 4, 4\]/);
  decoder.dispose();
});

test.run();
