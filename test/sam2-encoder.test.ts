// SAM2 image path (preprocessing, Hiera trunk, FPN neck, high-res features)
// against the golden fixture ../shared/fixtures/sam2/sam2-mini (official
// sam2 code), the antialiased resize kernel against a float64 reference,
// config inference for the four published variants from shape-only key
// lists, and checkpoint key/shape errors.

import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Tensor } from '../src/tensor.js';
import { bytesSource, openSafetensors, writeSafetensors, type SafetensorsEntry, type SafetensorsFile } from '../src/io/safetensors.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { antialiasResize, antialiasResizeRgba8 } from '../src/kernels/antialias-resize.js';
import { hieraBlocks, inferSam2Config, parseSam2ConfigJson } from '../src/models/sam2/config.js';
import { Sam2ImageEncoder, SAM2_MEAN, SAM2_STD } from '../src/models/sam2/image-encoder.js';
import { antialiasResizeRef, rgbaToPlanes } from './ref/sam2.js';
import { NO_SHARED, assertClose, assertThrows, gpuSuite, randomArray, rng, sharedPath, skip } from './util.js';

/** null when ../shared is absent (the fixture tests skip); missing there, it throws. */
const fixtureDir = sharedPath('fixtures', 'sam2', 'sam2-mini');

/**
 * The fixture's rule for f32 features: |ours − ref| ≤ 1e-4·(1 + |ref|). The f32
 * reference is within 1.2e-6 of float64 on image_embed; a wrong window,
 * padding, pooling or PE gives errors ≥ 1e-2.
 */
const FEATURE_TOL = { atol: 1e-4, rtol: 1e-4 };
/**
 * f32 kernel vs float64: a handful of taps (≤ 2·scale + 2) of values in [−1, 1]
 * accumulate ~1e-7 error; Normalize divides by std ≥ 0.22.
 */
const RESIZE_TOL = { atol: 1e-5, rtol: 1e-5 };

const test = gpuSuite('sam2-encoder');

// ---------------------------------------------------------------- antialiased resize

const RESIZE_CASES: Array<{ shape: [number, number, number, number]; size: [number, number]; normalize?: boolean }> = [
  { shape: [1, 3, 160, 300], size: [256, 256] }, // the fixture: H up, W down
  { shape: [2, 2, 7, 13], size: [3, 5] }, // primes, batch
  { shape: [1, 1, 1, 1], size: [5, 3] }, // upscale from a single pixel
  { shape: [1, 1, 9, 11], size: [1, 1] }, // collapse to one pixel
  { shape: [1, 2, 17, 17], size: [17, 17] }, // same size: identity
  { shape: [1, 1, 97, 61], size: [13, 29] }, // large factors
  { shape: [1, 3, 33, 40], size: [64, 20], normalize: true },
  { shape: [1, 3, 300, 400], size: [128, 96], normalize: true }, // larger
];

test('antialiasResize matches the float64 reference (down, up, identity, 1, primes, normalized)', async ({ gpu }) => {
  for (const [k, { shape, size, normalize }] of RESIZE_CASES.entries()) {
    const data = randomArray(shape.reduce((a, b) => a * b, 1), 100 + k);
    const x = Tensor.fromArray(gpu, data, shape);
    const norm = normalize ? { mean: SAM2_MEAN.slice(0, shape[1]), std: SAM2_STD.slice(0, shape[1]) } : undefined;
    const y = antialiasResize(gpu, x, { size, ...norm });
    assert.equal(y.shape, [shape[0], shape[1], ...size]);
    assertClose(await y.read(), antialiasResizeRef(data, shape, size, norm), RESIZE_TOL, `antialiasResize ${shape.join('×')} → ${size.join('×')}`);
    x.dispose();
    y.dispose();
  }
});

test('antialiasResizeRgba8 = ToTensor → AA resize → Normalize on random pixels', async ({ gpu }) => {
  for (const [width, height, size] of [[53, 37, [64, 31]], [1, 1, [2, 3]], [301, 7, [256, 256]]] as const) {
    const r = rng(width * height);
    const data = new Uint8Array(width * height * 4).map(() => Math.floor(r() * 256));
    const y = antialiasResizeRgba8(gpu, { width, height, data }, { size, mean: SAM2_MEAN, std: SAM2_STD });
    const expected = antialiasResizeRef(rgbaToPlanes(data, width, height), [1, 3, height, width], size, { mean: SAM2_MEAN, std: SAM2_STD });
    assertClose(await y.read(), expected, RESIZE_TOL, `antialiasResizeRgba8 ${width}×${height} → ${size.join('×')}`);
    y.dispose();
  }
});

test('antialiasResize input checks', async ({ gpu }) => {
  const x = Tensor.fromArray(gpu, new Float32Array(24), [1, 2, 3, 4]);
  await assertThrows(() => antialiasResize(gpu, Tensor.fromArray(gpu, [1, 2, 3], [3]), { size: [2, 2] }), /antialiasResize/, /rank 4/, /\[3\]/);
  await assertThrows(() => antialiasResize(gpu, Tensor.fromArray(gpu, new Int32Array(4), [1, 1, 2, 2], 'i32'), { size: [2, 2] }), /antialiasResize/, /f32/, /i32/);
  await assertThrows(() => antialiasResize(gpu, x, { size: [0, 2] }), /antialiasResize/, /size \[0,2\]/);
  await assertThrows(() => antialiasResize(gpu, x, { size: [2, 2], mean: [0, 0] }), /antialiasResize/, /mean only/);
  await assertThrows(() => antialiasResize(gpu, x, { size: [2, 2], mean: [0, 0, 0], std: [1, 1, 1] }), /antialiasResize/, /2 entries/, /got 3 and 3/);
  await assertThrows(() => antialiasResize(gpu, x, { size: [2, 2], mean: [0, 0], std: [1, 0] }), /antialiasResize/, /nonzero/, /std \[1, 0\]/);
  await assertThrows(() => antialiasResize(gpu, x, { size: [2, 2], out: Tensor.empty(gpu, [5]) }), /antialiasResize/, /out must be f32 with 8 elements/, /\[5\]/);
  await assertThrows(() => antialiasResizeRgba8(gpu, { width: 2, height: 2, data: new Uint8Array(15) }, { size: [2, 2] }), /antialiasResizeRgba8/, /16 bytes/, /got 15/);
  await assertThrows(() => antialiasResizeRgba8(gpu, { width: 0, height: 2, data: new Uint8Array(0) }, { size: [2, 2] }), /antialiasResizeRgba8/, /0×2/);
  x.dispose();
});

// ---------------------------------------------------------------- config inference

interface Published {
  embedDim: number;
  stages: number[];
  dModel: number;
  bkg: number;
  window0: number;
}

/** The image-path key shapes of an official checkpoint, written from the published sam2.1 yaml facts (shape only). */
function officialShapes(v: Published): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const t = 'image_encoder.trunk.';
  const E = v.embedDim;
  shapes.set(`${t}pos_embed`, [1, E, v.bkg, v.bkg]);
  shapes.set(`${t}pos_embed_window`, [1, E, v.window0, v.window0]);
  shapes.set(`${t}patch_embed.proj.weight`, [E, 3, 7, 7]);
  shapes.set(`${t}patch_embed.proj.bias`, [E]);
  let block = 0;
  let dim = E;
  const channels: number[] = [];
  v.stages.forEach((count, s) => {
    for (let k = 0; k < count; k++, block++) {
      const n = `${t}blocks.${block}.`;
      const out = s > 0 && k === 0 ? dim * 2 : dim;
      shapes.set(`${n}norm1.weight`, [dim]).set(`${n}norm1.bias`, [dim]);
      shapes.set(`${n}attn.qkv.weight`, [3 * out, dim]).set(`${n}attn.qkv.bias`, [3 * out]);
      shapes.set(`${n}attn.proj.weight`, [out, out]).set(`${n}attn.proj.bias`, [out]);
      shapes.set(`${n}norm2.weight`, [out]).set(`${n}norm2.bias`, [out]);
      shapes.set(`${n}mlp.layers.0.weight`, [4 * out, out]).set(`${n}mlp.layers.0.bias`, [4 * out]);
      shapes.set(`${n}mlp.layers.1.weight`, [out, 4 * out]).set(`${n}mlp.layers.1.bias`, [out]);
      if (out !== dim) shapes.set(`${n}proj.weight`, [out, dim]).set(`${n}proj.bias`, [out]);
      dim = out;
    }
    channels.unshift(dim);
  });
  channels.forEach((c, k) => shapes.set(`image_encoder.neck.convs.${k}.conv.weight`, [v.dModel, c, 1, 1]).set(`image_encoder.neck.convs.${k}.conv.bias`, [v.dModel]));
  shapes.set('sam_mask_decoder.conv_s0.weight', [v.dModel / 8, v.dModel, 1, 1]).set('sam_mask_decoder.conv_s0.bias', [v.dModel / 8]);
  shapes.set('sam_mask_decoder.conv_s1.weight', [v.dModel / 4, v.dModel, 1, 1]).set('sam_mask_decoder.conv_s1.bias', [v.dModel / 4]);
  shapes.set('no_mem_embed', [1, 1, v.dModel]);
  // Keys outside the image path are ignored.
  shapes.set('sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix', [2, v.dModel / 2]);
  shapes.set('memory_encoder.out_proj.weight', [64, 256, 1, 1]);
  return shapes;
}

const PUBLISHED = {
  tiny: { shapes: { embedDim: 96, stages: [1, 2, 7, 2], dModel: 256, bkg: 7, window0: 8 }, heads: 1, global: [5, 7, 9], windows: [8, 4, 14, 7], channels: [768, 384, 192, 96] },
  small: { shapes: { embedDim: 96, stages: [1, 2, 11, 2], dModel: 256, bkg: 7, window0: 8 }, heads: 1, global: [7, 10, 13], windows: [8, 4, 14, 7], channels: [768, 384, 192, 96] },
  base_plus: { shapes: { embedDim: 112, stages: [2, 3, 16, 3], dModel: 256, bkg: 14, window0: 8 }, heads: 2, global: [12, 16, 20], windows: [8, 4, 14, 7], channels: [896, 448, 224, 112] },
  large: { shapes: { embedDim: 144, stages: [2, 6, 36, 4], dModel: 256, bkg: 7, window0: 8 }, heads: 2, global: [23, 33, 43], windows: [8, 4, 16, 8], channels: [1152, 576, 288, 144] },
} as const;

test('config inference: tiny / small / base+ / large from shape-only key lists', () => {
  for (const [variant, v] of Object.entries(PUBLISHED)) {
    const c = inferSam2Config(officialShapes({ ...v.shapes, stages: [...v.shapes.stages] }), variant);
    assert.is(c.variant, variant);
    assert.is(c.imageSize, 1024);
    assert.is(c.from, 'variant table');
    assert.equal(c.trunk.stages, v.shapes.stages);
    assert.is(c.trunk.numHeads, v.heads);
    assert.equal(c.trunk.globalAttBlocks, v.global);
    assert.equal(c.trunk.windowSpec, v.windows);
    assert.equal(c.trunk.bkgSize, [v.shapes.bkg, v.shapes.bkg]);
    assert.equal(c.neck.backboneChannelList, v.channels);
    assert.is(c.neck.dModel, 256);
  }
  // The tiny schedule: the window lags one block at stage starts; global blocks use 0.
  const tiny = hieraBlocks(inferSam2Config(officialShapes({ ...PUBLISHED.tiny.shapes, stages: [1, 2, 7, 2] }), 'tiny').trunk);
  assert.equal(tiny.map((b) => b.window), [8, 8, 4, 4, 14, 0, 14, 0, 14, 0, 14, 7]);
  assert.equal(tiny.filter((b) => b.qPool).map((b) => b.index), [1, 3, 10]);
  assert.equal(tiny.map((b) => b.heads), [1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 8, 8]);
  const large = hieraBlocks(inferSam2Config(officialShapes({ ...PUBLISHED.large.shapes, stages: [2, 6, 36, 4] }), 'large').trunk);
  assert.equal([large[44].window, large[44].qPool, large[44].dimIn, large[44].dimOut, large[45].window], [16, true, 576, 1152, 8]);
});

test('config inference: errors name the key, the expected and the actual shape', async () => {
  const tiny = () => officialShapes({ ...PUBLISHED.tiny.shapes, stages: [1, 2, 7, 2] });
  const wrong = tiny().set('image_encoder.trunk.blocks.3.attn.qkv.weight', [1152, 193]);
  await assertThrows(() => inferSam2Config(wrong, 'w.safetensors'), /w\.safetensors/, /"image_encoder\.trunk\.blocks\.3\.attn\.qkv\.weight" has shape \[1152, 193\], expected \[1152, 192\]/);
  const missing = tiny();
  missing.delete('image_encoder.neck.convs.2.conv.bias');
  await assertThrows(() => inferSam2Config(missing, 'm'), /missing tensor "image_encoder\.neck\.convs\.2\.conv\.bias" \(expected shape \[256\]\)/);
  const noEmbed = tiny();
  noEmbed.delete('no_mem_embed');
  await assertThrows(() => inferSam2Config(noEmbed, 'm'), /missing tensor "no_mem_embed" \(expected shape \[1, 1, 256\]\)/);
  await assertThrows(() => inferSam2Config(new Map([['visual.conv1.weight', [8, 3, 16, 16]]]), 'clip'), /clip/, /not a SAM2/, /patch_embed\.proj\.weight/);
  const odd = officialShapes({ embedDim: 32, stages: [1, 1, 2, 1], dModel: 64, bkg: 7, window0: 8 });
  await assertThrows(() => inferSam2Config(odd, 'odd'), /odd/, /embed dim 32 and stages \[1, 1, 2, 1\]/, /num_heads/);
  const withConfig = inferSam2Config(odd, 'odd', { config: { trunk: { num_heads: 2, global_att_blocks: [3] }, image_size: 512 } });
  assert.equal([withConfig.variant, withConfig.trunk.numHeads, withConfig.imageSize, withConfig.from], ['custom', 2, 512, 'config']);
  await assertThrows(() => inferSam2Config(odd, 'odd', { config: { trunk: { num_heads: 2, global_att_blocks: [3], stages: [2, 1, 1, 1] } } }), /config stages \[2, 1, 1, 1\] disagree/, /\[1, 1, 2, 1\]/);
  await assertThrows(() => inferSam2Config(tiny(), 't', { imageSize: 1000 }), /image size 1000/, /multiple of 32/);
});

// ---------------------------------------------------------------- golden fixture

let encoder: Sam2ImageEncoder | undefined;
let io: SafetensorsFile | undefined;

/** The fixture's encoder and io, or undefined when ../shared is absent (the caller skips). */
function loaded(): { encoder: Sam2ImageEncoder; io: SafetensorsFile; dir: string } | undefined {
  if (!fixtureDir) return undefined;
  if (!encoder || !io) throw new Error('sam2-encoder: the before hook did not load the sam2-mini fixture');
  return { encoder, io, dir: fixtureDir };
}

test.before(async ({ gpu }) => {
  if (!fixtureDir) return;
  const weights = await openSafetensorsFile(join(fixtureDir, 'weights.safetensors'));
  try {
    encoder = await Sam2ImageEncoder.fromSafetensors(gpu, weights);
  } finally {
    await weights.close();
  }
  io = await openSafetensorsFile(join(fixtureDir, 'io.safetensors'));
});

test.after(async () => {
  encoder?.dispose();
  await io?.close();
});

test('sam2-mini config from the fixture weights (shapes + metadata)', async () => {
  const f = loaded();
  if (!f) return skip(NO_SHARED);
  const c = f.encoder.config;
  assert.equal([c.variant, c.from, c.imageSize, c.trunk.embedDim, c.trunk.numHeads], ['custom', 'config', 256, 16, 1]);
  assert.equal(c.trunk.stages, [1, 2, 3, 2]);
  assert.equal(c.trunk.globalAttBlocks, [2, 5]);
  assert.equal(c.neck.backboneChannelList, [128, 64, 32, 16]);
  // The fixture README's per-block table.
  const blocks = hieraBlocks(c.trunk);
  assert.equal(blocks.map((b) => b.window), [8, 8, 0, 4, 14, 0, 14, 7]);
  assert.equal(blocks.map((b) => b.qPool), [false, true, false, true, false, false, true, false]);
  assert.equal(blocks.map((b) => `${b.dimIn}>${b.dimOut}/${b.heads}`), ['16>16/1', '16>32/2', '32>32/2', '32>64/4', '64>64/4', '64>64/4', '64>128/8', '128>128/8']);
});

test('sam2-mini: preprocessing of raw_image matches the official (antialiased) transform', async () => {
  const f = loaded();
  if (!f) return skip(NO_SHARED);
  const [height, width] = f.io.info('raw_image').shape;
  const rgb = await f.io.readInt32('raw_image');
  const data = new Uint8Array(width * height * 4).fill(255);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) data[4 * i + c] = rgb[3 * i + c];
  const image = f.encoder.preprocess({ width, height, data, channels: 3 });
  assert.equal(image.shape, [1, 3, 256, 256]);
  assertClose(await image.read(), await f.io.read('image'), FEATURE_TOL, 'image');
  image.dispose();
});

test('sam2-mini: every image-path intermediate within the fixture tolerance', async ({ gpu }) => {
  const f = loaded();
  if (!f) return skip(NO_SHARED);
  const input = Tensor.fromArray(gpu, await f.io.read('image'), f.io.info('image').shape);
  const trace = f.encoder.trace(input);
  const expected = [
    'trunk_patch_embed', 'trunk_pos_embed', 'trunk_block_input',
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => `trunk_block_${i}`),
    ...[1, 2, 3, 4].map((i) => `trunk_stage_${i}`),
    'neck_fpn_1', 'backbone_fpn_0', 'backbone_fpn_1', 'backbone_fpn_2',
    'vision_pos_enc_0', 'vision_pos_enc_1', 'vision_pos_enc_2',
    'image_embed', 'high_res_feats_0', 'high_res_feats_1',
  ];
  for (const name of expected) {
    const ours = trace[name];
    assert.ok(ours, `trace has ${name}`);
    assert.equal(ours.shape, f.io.info(name).shape, `${name} shape`);
    assertClose(await ours.read(), await f.io.read(name), FEATURE_TOL, name);
  }
  for (const t of Object.values(trace)) t.dispose();

  // encode(): the decoder's inputs, same values; warm runs timed.
  let features = f.encoder.encode(input, { posEnc: true });
  await features.imageEmbed.read();
  const runs = 3;
  const start = performance.now();
  for (let i = 0; i < runs; i++) {
    for (const t of [features.imageEmbed, ...features.highResFeats, ...(features.visionPosEnc ?? [])]) t.dispose();
    features = f.encoder.encode(input, { posEnc: i === runs - 1 });
    await features.imageEmbed.read();
  }
  console.log(`sam2-mini encoder at 256: ${((performance.now() - start) / runs).toFixed(0)} ms per image (warm, trunk + neck, read back)`);
  assertClose(await features.imageEmbed.read(), await f.io.read('image_embed'), FEATURE_TOL, 'encode image_embed');
  assertClose(await features.highResFeats[0].read(), await f.io.read('high_res_feats_0'), FEATURE_TOL, 'encode high_res_feats_0');
  assertClose(await features.highResFeats[1].read(), await f.io.read('high_res_feats_1'), FEATURE_TOL, 'encode high_res_feats_1');
  assert.is(features.visionPosEnc?.length, 3);
  assertClose(await features.visionPosEnc![2].read(), await f.io.read('vision_pos_enc_2'), FEATURE_TOL, 'encode vision_pos_enc_2');
  for (const t of [features.imageEmbed, ...features.highResFeats, ...(features.visionPosEnc ?? [])]) t.dispose();

  await assertThrows(() => f.encoder.encode(Tensor.empty(gpu, [1, 3, 128, 128])), /Sam2ImageEncoder\.encode/, /\[N, 3, 256, 256\]/, /\[1, 3, 128, 128\]/);
  input.dispose();
});

test('sam2-mini: a mis-shaped or missing checkpoint tensor is an Error before any upload', async ({ gpu }) => {
  const f = loaded();
  if (!f) return skip(NO_SHARED);
  const weights = await openSafetensorsFile(join(f.dir, 'weights.safetensors'));
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of weights.tensors) {
    // Shapes are what is checked: the data of an altered tensor is zeros of its new size.
    if (name === 'sam_mask_decoder.conv_s1.weight') entries.push({ name, dtype: 'F32', shape: [16, 32, 1, 1], data: new Float32Array(512) });
    else if (name !== 'image_encoder.trunk.blocks.6.proj.bias') entries.push({ name, dtype: 'F32', shape: info.shape, data: await weights.read(name) });
  }
  const metadata = { ...weights.metadata };
  await weights.close();
  const file = await openSafetensors(bytesSource(writeSafetensors(entries, metadata)), 'altered.safetensors');
  await assertThrows(
    () => Sam2ImageEncoder.fromSafetensors(gpu, file),
    /altered\.safetensors/,
    /tensor "sam_mask_decoder\.conv_s1\.weight" has shape \[16, 32, 1, 1\], expected \[16, 64, 1, 1\]/,
    /missing tensor "image_encoder\.trunk\.blocks\.6\.proj\.bias" \(expected shape \[128\]\)/,
  );
  assert.ok(parseSam2ConfigJson(metadata.config));
  await file.close();
});

test.run();
