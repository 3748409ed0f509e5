// CLIP with its transformer blocks' linear weights and its patch-embedding conv
// weight stored as f16
// (loadClipWeights dtype 'f16', issue 19) against the golden fixtures
// (../shared/fixtures/clip/*, the official openai/CLIP code in f32), and the
// f32 fallback on a device without shader-f16.
//
// Tolerance. Rounding a weight to f16 changes it by at most 2^-11 of its
// size (u = 2^-11 ≈ 4.9e-4 relative, ~u/√3 rms for random rounding), so each
// linear layer's output moves by ~u/√3 · |output| ≈ 2.8e-4 relative. Errors of
// the 8–12 linear layers of these 2–3-block towers add about like a random
// walk and layer norms rescale them, so the features should move by a few
// 1e-4 of max|ref| (CLIP's f32 rule is 1e-4 · max(1, max|ref|)). The bound
// here, per tensor, is F16_RELATIVE_TOLERANCE · max(1, max|ref|), ~10× the
// largest error measured over both fixtures (in the comment). The f32 fixture
// test (test/clip.test.ts) measures ≤ 4.3e-6; 'f16 weights are in use' checks
// that this path differs from the f32 model by far more than that.
import * as assert from 'uvu/assert';
import { getDevice, type Gpu } from '../src/device.js';
import { Tensor } from '../src/tensor.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { ClipModel } from '../src/models/clip/model.js';
import { CLIP_FIXTURE_FILES, ClipFixtures, type ClipFixture } from './clip-fixtures.js';
import { uploadFixture } from './shared-fixture.js';
import { assertThrows, gpuSuite, maxErrors } from './util.js';

/** max|ours − official| / max(1, max|official|), per tensor; measured values (p16 / p32, Dawn on lavapipe) beside each. */
const F16_RELATIVE_TOLERANCE: Record<string, number> = {
  image_features: 1.5e-3, // measured 1.6e-4 / 1.1e-4
  text_features: 6e-3, // measured 4.9e-4 / 6.3e-4
  logits_per_image: 8e-3, // measured 7.4e-4 / 6.5e-4
  logits_per_text: 8e-3, // measured 7.4e-4 / 6.5e-4
  loss: 5e-3, // measured 4.1e-4 / 6.5e-5
  grad_wrt_vision_tokens: 1e-3, // measured 9.4e-5 / 7.6e-5
  grad_wrt_proj: 1.5e-3, // measured 1.5e-4 / 9.1e-5
};

interface Fixture extends ClipFixture {
  f16: ClipModel;
  f32: ClipModel;
}

const test = gpuSuite('clip f16 weights');
const clipFixtures = new ClipFixtures<Fixture>();

async function loadModel(gpu: Gpu, path: string, dtype: 'f16' | 'f32'): Promise<ClipModel> {
  const file = await openSafetensorsFile(path);
  try {
    return await ClipModel.fromSafetensors(gpu, file, { dtype });
  } finally {
    await file.close();
  }
}

test.before(async ({ gpu }) => {
  assert.ok(gpu.hasF16, 'the adapter lacks shader-f16, which these tests need');
  if (CLIP_FIXTURE_FILES.some((f) => !f.weights || !f.io)) return;
  const fixtures: Fixture[] = (clipFixtures.list = []);
  for (const f of CLIP_FIXTURE_FILES) {
    fixtures.push({ name: f.name, f16: await loadModel(gpu, f.weights!, 'f16'), f32: await loadModel(gpu, f.weights!, 'f32'), io: await openSafetensorsFile(f.io!) });
  }
});

test.after(async () => {
  for (const f of clipFixtures.list ?? []) {
    f.f16.dispose();
    f.f32.dispose();
    await f.io.close();
  }
});

/** Relative error max|got − want| / max(1, max|want|). */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  const { maxAbsErr, maxAbsRef } = maxErrors(got, want);
  return maxAbsErr / Math.max(1, maxAbsRef);
}

/** Reads and disposes `t`, checks it against the official tensor `name` within its f16 tolerance; returns the relative error. */
async function expectOfficial(f: Fixture, name: string, t: Tensor): Promise<number> {
  assert.equal([...t.shape], [...f.io.info(name).shape], `${f.name} ${name}: shape`);
  const got = await t.read();
  t.dispose();
  const err = relativeError(got, await f.io.read(name));
  console.log(`  ${f.name} ${name}: relative error ${err.toExponential(2)}`);
  const tol = F16_RELATIVE_TOLERANCE[name];
  assert.ok(err <= tol, `${f.name} ${name}: relative error ${err.toExponential(3)} over the f16 tolerance ${tol}`);
  return err;
}

test('the blocks linear weights are f16, everything else f32', () => {
  const fs = clipFixtures.loaded();
  if (!fs) return;
  for (const f of fs) {
    assert.is(f.f16.weightDtype, 'f16');
    assert.is(f.f16.weightDtypeNote, undefined);
    assert.is(f.f32.weightDtype, 'f32');
  }
});

test('features and logits match the official forward within the f16 tolerance', async ({ gpu }) => {
  await clipFixtures.withImages(gpu, async (f, image) => {
    const imageFeatures = f.f16.encodeImage(image);
    const textFeatures = f.f16.encodeText(await f.io.readInt32('text_tokens'));
    const { logitsPerImage, logitsPerText } = f.f16.logits(imageFeatures, textFeatures);
    await expectOfficial(f, 'logits_per_image', logitsPerImage);
    await expectOfficial(f, 'logits_per_text', logitsPerText);
    await expectOfficial(f, 'image_features', imageFeatures);
    await expectOfficial(f, 'text_features', textFeatures);
  });
});

test('f16 weights are in use: the f16 model differs from the f32 one by far more than f32 error', async ({ gpu }) => {
  await clipFixtures.withImages(gpu, async (f, image) => {
    const [a, b] = [f.f16, f.f32].map((m) => m.encodeImage(image));
    const diff = relativeError(await a.read(), await b.read());
    // test/clip.test.ts measures the f32 model within 1e-6 relative of the official features.
    assert.ok(diff > 2e-5, `${f.name}: f16 and f32 image features differ by only ${diff} relative`);
    for (const t of [a, b]) t.dispose();
  });
});

test('training through frozen f16 weights: loss and gradients (ln_pre input, f32 visual.proj) match', async ({ gpu }) => {
  await clipFixtures.withImages(gpu, async (f, image) => {
    const r = await uploadFixture(gpu, f.io, 'grad_r');
    const { loss, gradVisionTokens, gradProj } = f.f16.imageGradients(image, r);
    assert.is(gradProj.dtype, 'f32');
    await expectOfficial(f, 'loss', loss);
    await expectOfficial(f, 'grad_wrt_vision_tokens', gradVisionTokens);
    await expectOfficial(f, 'grad_wrt_proj', gradProj);
    r.dispose();
  });
});

test('without shader-f16: dtype f16 falls back to f32 with a note, no error, f32 results', async () => {
  const fs = clipFixtures.loaded();
  if (!fs) return;
  await assertThrows(() => getDevice({ requireF16: true, disableF16: true }), /getDevice: requireF16 and disableF16 contradict/);
  const plain = await getDevice({ disableF16: true });
  try {
    assert.is(plain.hasF16, false);
    assert.ok(!plain.features.has('shader-f16'), 'disableF16: the device has no shader-f16');
    const f = fs[0];
    const model = await loadModel(plain, CLIP_FIXTURE_FILES[0].weights!, 'f16');
    assert.is(model.weightDtype, 'f32');
    assert.match(model.weightDtypeNote ?? '', /dtype 'f16' asked for, but the adapter .* lacks shader-f16: weights stay f32/);
    const image = await uploadFixture(plain, f.io, 'image');
    const features = model.encodeImage(image);
    const err = relativeError(await features.read(), await f.io.read('image_features'));
    assert.ok(err < 1e-5, `${f.name}: the f32 fallback's features are ${err} relative from the official ones`);
    model.dispose();
  } finally {
    plain.destroy();
  }
});

test('a dtype other than f32 / f16 is an Error naming it', async ({ gpu }) => {
  const fs = clipFixtures.loaded();
  if (!fs) return;
  const file = await openSafetensorsFile(CLIP_FIXTURE_FILES[0].weights!);
  await assertThrows(() => ClipModel.fromSafetensors(gpu, file, { dtype: 'bf16' as 'f16' }), /loadClipWeights/, /dtype must be 'f32' or 'f16'/, /"bf16"/);
  await file.close();
});

test.run();
