import { readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { decodeImage } from '../src/io/image.js';
import { CLIP_MEAN, CLIP_STD, Tensor, clipPreprocess } from '../src/node.js';
import { clipPreprocessRef, pythonRound, resizedSize, type RgbaImage } from './ref/preprocess.js';
import { assertClose, assertThrows, gpuSuite, NO_SHARED, rng, sharedPath, skip } from './util.js';

const test = gpuSuite('preprocess');
const benign1 = sharedPath('datasets', 'busi3', 'train', 'benign', 'benign_1.jpg');

// f32 weights and f32 sums over at most a few hundred taps: ~1e-4 in 0..255
// units, ~2e-6 after ÷255÷std. 1e-4 leaves room and still catches any wrong
// tap or offset (one grey level is 0.015 in normalized units).
const TOL = { atol: 1e-4, rtol: 0 };

function randomImage(width: number, height: number, seed: number): RgbaImage {
  const r = rng(seed);
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
  return { width, height, data };
}

function refBatch(images: RgbaImage[], size: number, mode: 'bicubic' | 'bilinear', mean = CLIP_MEAN, std = CLIP_STD): Float64Array {
  const out = new Float64Array(images.length * 3 * size * size);
  images.forEach((img, i) => out.set(clipPreprocessRef(img, size, mean, std, mode), i * 3 * size * size));
  return out;
}

test('reference: torchvision sizes, Python rounding, constant images stay constant', () => {
  assert.equal(resizedSize(300, 200, 224), [336, 224]);
  assert.equal(resizedSize(97, 413, 224), [224, 953]);
  assert.equal(resizedSize(1000, 50, 224), [4480, 224]);
  assert.equal([0.5, 1.5, 2.5, 38, 38.5, 39.5].map(pythonRound), [0, 2, 2, 38, 38, 40]);
  const data = new Uint8Array(37 * 23 * 4);
  for (let i = 0; i < data.length; i += 4) data.set([200, 100, 7, 255], i);
  const got = clipPreprocessRef({ width: 37, height: 23, data }, 16, CLIP_MEAN, CLIP_STD, 'bicubic');
  const expected = [200, 100, 7].flatMap((v, c) => new Array(256).fill((v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]));
  assertClose(got, expected, { atol: 1e-12, rtol: 0 }, 'constant image');
});

// [width, height]: landscape, square (no resampling), portrait, aspect
// extremes both ways, an upscale, downscales (1900×1750 is scale 7.8: a tile's
// taps span more than one CHUNK of 512 staged pixels), a single pixel.
const SHAPES: [number, number][] = [
  [300, 200],
  [224, 224],
  [97, 413],
  [1000, 50],
  [31, 900],
  [50, 60],
  [1201, 907],
  [1900, 1750],
  [1, 1],
];

for (const mode of ['bicubic', 'bilinear'] as const) {
  test(`${mode}: matches the float64 PIL/torchvision reference, one batch of ${SHAPES.length} sizes`, async ({ gpu }) => {
    const images = SHAPES.map(([w, h], i) => randomImage(w, h, 10 + i));
    const y = clipPreprocess(gpu, images, { resample: mode });
    assert.equal(y.shape, [SHAPES.length, 3, 224, 224]);
    const got = await y.read();
    const expected = refBatch(images, 224, mode);
    for (let i = 0; i < images.length; i++) {
      const n = 3 * 224 * 224;
      assertClose(got.subarray(i * n, (i + 1) * n), expected.subarray(i * n, (i + 1) * n), TOL, `${mode} ${SHAPES[i].join('×')}`);
    }
    y.dispose();
  });
}

test('other size, mean and std; a smooth image', async ({ gpu }) => {
  const width = 123;
  const height = 71;
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set([x * 2, y * 3, (x + y) % 256, 255], (y * width + x) * 4);
  }
  const img = { width, height, data };
  const mean = [0.5, 0.25, 0] as const;
  const std = [0.5, 1, 2] as const;
  const got = await clipPreprocess(gpu, [img], { size: 37, mean, std }).read();
  assertClose(got, clipPreprocessRef(img, 37, mean, std, 'bicubic'), TOL, 'size 37');
});

test('row-chunked upload (maxUploadBytes) gives the same result', async ({ gpu }) => {
  const images = [randomImage(300, 200, 3), randomImage(97, 413, 4)];
  // 300×200 resized to 336×224 needs source columns 17..283 (~1 KB a row): 4 KiB forces chunks of a few rows.
  const got = await clipPreprocess(gpu, images, { maxUploadBytes: 4096 }).read();
  assertClose(got, refBatch(images, 224, 'bicubic'), TOL, 'chunked');
});

test('geometry: centre-crop offsets with Python rounding (pixels encode their coordinates)', async ({ gpu }) => {
  // Short side 224 means no resampling (bicubic weights are exactly 0, 1, 0, 0),
  // so each output pixel is one source pixel: R, G = x, y low bytes, B = high bits.
  const cases: [number, number, number, number][] = [
    // width, height, expected left, top
    [224, 300, 0, 38],
    [224, 301, 0, 38], // 38.5 rounds to even
    [224, 303, 0, 40], // 39.5 rounds to even
    [227, 224, 2, 0], // 1.5
    [226, 224, 1, 0],
    [480, 224, 128, 0],
  ];
  const images = cases.map(([width, height]) => {
    const data = new Uint8Array(width * height * 4);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) data.set([x & 255, y & 255, (x >> 8) | ((y >> 8) << 4), 255], (y * width + x) * 4);
    }
    return { width, height, data };
  });
  const got = await clipPreprocess(gpu, images).read();
  const S = 224;
  cases.forEach(([width, height, left, top], i) => {
    const byte = (c: number, x: number, y: number) => Math.round((got[((i * 3 + c) * S + y) * S + x] * CLIP_STD[c] + CLIP_MEAN[c]) * 255);
    for (const [x, y] of [[0, 0], [223, 0], [0, 223], [223, 223], [101, 57]]) {
      const sx = byte(0, x, y) + ((byte(2, x, y) & 15) << 8);
      const sy = byte(1, x, y) + ((byte(2, x, y) >> 4) << 8);
      assert.equal([sx, sy], [x + left, y + top], `${width}×${height} output (${x}, ${y})`);
    }
  });
});

test('a decoded busi3 JPEG (gray, 305×256) through the whole transform', async ({ gpu }) => {
  const file = benign1;
  if (!file) return skip(NO_SHARED);
  const img = decodeImage(readFileSync(file), file);
  const got = await clipPreprocess(gpu, [img]).read();
  assertClose(got, clipPreprocessRef(img, 224, CLIP_MEAN, CLIP_STD, 'bicubic'), TOL, 'benign_1.jpg');
});

test('writes into out; empty batch gives [0, 3, S, S]', async ({ gpu }) => {
  const img = randomImage(40, 30, 5);
  const out = Tensor.empty(gpu, [1, 3, 32, 32]);
  const y = clipPreprocess(gpu, [img], { size: 32, out });
  assert.is(y, out);
  assertClose(await out.read(), clipPreprocessRef(img, 32, CLIP_MEAN, CLIP_STD, 'bicubic'), TOL, 'out');
  assert.equal(clipPreprocess(gpu, [], { size: 8 }).shape, [0, 3, 8, 8]);
});

test('rejects bad images and options with useful messages', async ({ gpu }) => {
  const ok = randomImage(4, 3, 1);
  await assertThrows(() => clipPreprocess(gpu, [ok, { width: 4, height: 3, data: new Uint8Array(47) }]), /clipPreprocess/, /image 1/, /48 bytes/, /47/);
  await assertThrows(() => clipPreprocess(gpu, [{ width: 0, height: 3, data: new Uint8Array(0) }]), /clipPreprocess/, /image 0/, /0×3/);
  await assertThrows(() => clipPreprocess(gpu, [ok], { size: 0 }), /clipPreprocess/, /size/, /0/);
  await assertThrows(() => clipPreprocess(gpu, [ok], { mean: [0.5, 0.5] as unknown as [number, number, number] }), /clipPreprocess/, /mean/, /\[0\.5,0\.5\]/);
  await assertThrows(() => clipPreprocess(gpu, [ok], { std: [1, 0, 1] }), /clipPreprocess/, /std/, /positive/, /\[1,0,1\]/);
  await assertThrows(() => clipPreprocess(gpu, [ok], { resample: 'lanczos' as 'bicubic' }), /clipPreprocess/, /resample/, /'lanczos'/);
  await assertThrows(() => clipPreprocess(gpu, [ok], { size: 8, out: Tensor.empty(gpu, [1, 3, 8, 7]) }), /clipPreprocess/, /192 elements/, /\[1, 3, 8, 7\]/);
  await assertThrows(() => clipPreprocess(gpu, [randomImage(300, 300, 2)], { maxUploadBytes: 100 }), /clipPreprocess/, /1200 bytes/, /maxUploadBytes 100/);
});

test.run();
