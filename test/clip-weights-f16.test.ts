// CLIP checkpoints stored in F16 (issue 19 §1): with dtype 'f16' the
// blocks' linear weights and the patch-embedding conv weight are uploaded as
// the file's halves (no f32 copy on the host), with dtype 'f32' (or without
// shader-f16) everything is widened.
// A tiny openai-layout CLIP is written here with every float tensor F16, and
// each load is checked against the values the file holds: by hand for the
// fused q/k/v split, the copies and logit_scale, and for every tensor
// against loading the F32 file of the same values (the path the golden
// fixtures check). Halves widen to f32 exactly, so every comparison is exact.
// Corrupt or truncated F16 data is an Error naming the tensor.
import * as assert from 'uvu/assert';
import { getDevice } from '../src/device.js';
import { Tensor, bytesSource, loadClipWeights, openSafetensors, writeSafetensors, type ByteSource, type ClipWeights, type Gpu, type SafetensorsEntry } from '../src/node.js';
import { roundArrayToF16 } from './ref/half.js';
import { assertThrows, gpuSuite, randomArray } from './util.js';

const test = gpuSuite('clip weights from F16 safetensors');

// Vision 64 wide (one head by the width/64 rule), 8×8 patches on a 2×2 grid; text 64 wide, 50 tokens; one block each.
const [V, T, E, F, PATCH, VOCAB] = [64, 64, 32, 256, 8, 50];
const block = (p: string, D: number): Array<[string, number[]]> => [
  [`${p}attn.in_proj_weight`, [3 * D, D]], [`${p}attn.in_proj_bias`, [3 * D]], [`${p}attn.out_proj.weight`, [D, D]], [`${p}attn.out_proj.bias`, [D]],
  [`${p}ln_1.weight`, [D]], [`${p}ln_1.bias`, [D]], [`${p}mlp.c_fc.weight`, [F, D]], [`${p}mlp.c_fc.bias`, [F]],
  [`${p}mlp.c_proj.weight`, [D, F]], [`${p}mlp.c_proj.bias`, [D]], [`${p}ln_2.weight`, [D]], [`${p}ln_2.bias`, [D]],
];
/** openai/CLIP's state_dict keys for this size. */
const KEYS: Array<[string, number[]]> = [
  ['positional_embedding', [77, T]], ['text_projection', [T, E]], ['logit_scale', []],
  ['visual.class_embedding', [V]], ['visual.positional_embedding', [5, V]], ['visual.proj', [V, E]],
  ['visual.conv1.weight', [V, 3, PATCH, PATCH]], ['visual.ln_pre.weight', [V]], ['visual.ln_pre.bias', [V]],
  ...block('visual.transformer.resblocks.0.', V),
  ['visual.ln_post.weight', [V]], ['visual.ln_post.bias', [V]],
  ['token_embedding.weight', [VOCAB, T]],
  ...block('transformer.resblocks.0.', T),
  ['ln_final.weight', [T]], ['ln_final.bias', [T]],
];

/**
 * Every tensor's values, all exact halves (test/ref/half.ts rounds them):
 * seeded in [-1, 1), logit_scale 4.6055; the visual in_proj_weight starts
 * with a subnormal, the largest half, −0 and the smallest normal.
 */
function tensorValues(): Map<string, Float64Array> {
  const values = new Map<string, Float64Array>();
  for (const [i, [key, shape]] of KEYS.entries()) {
    const n = shape.reduce((p, d) => p * d, 1);
    values.set(key, key === 'logit_scale' ? roundArrayToF16([4.6055]) : roundArrayToF16(randomArray(n, 700 + i)));
  }
  values.get('visual.transformer.resblocks.0.attn.in_proj_weight')!.set([3 * 2 ** -24, 65504, -0, 2 ** -14]);
  return values;
}

function checkpoint(values: Map<string, ArrayLike<number>>, dtype: 'F16' | 'F32'): Uint8Array {
  const entries: SafetensorsEntry[] = KEYS.map(([name, shape]) => ({ name, dtype, shape, data: values.get(name)! }));
  return writeSafetensors(entries);
}

const VALUES = tensorValues();
/** What dtype 'f16' holds as halves: the blocks' linear weights and the patch-embedding conv weight. */
const HALF_WEIGHT = /\.blocks\.\d+\.(q|k|v|out|fc|proj)\.w$|^visual\.conv$/;

async function load(gpu: Gpu, bytes: Uint8Array, name: string, dtype: 'f16' | 'f32' | undefined): Promise<ClipWeights> {
  const file = await openSafetensors(bytesSource(bytes, name));
  try {
    return await loadClipWeights(gpu, file, { dtype });
  } finally {
    await file.close();
  }
}

/** Every parameter's dtype and values: f16 exactly for the blocks' linear weights and the patch conv when `dtype` is f16, all equal to the F32 file's load. */
async function checkAgainstF32File(weights: ClipWeights, fromF32: ClipWeights, dtype: 'f16' | 'f32', label: string): Promise<void> {
  assert.is(weights.weightDtype, dtype, `${label}: weightDtype`);
  assert.is(weights.logitScale, fromF32.logitScale, `${label}: logitScale`);
  assert.equal([...weights.params.keys()].sort(), [...fromF32.params.keys()].sort(), `${label}: parameter names`);
  let halves = 0;
  for (const [name, t] of weights.params) {
    const want = dtype === 'f16' && HALF_WEIGHT.test(name) ? 'f16' : 'f32';
    assert.is(t.dtype, want, `${label}: ${name} dtype`);
    if (want === 'f16') halves++;
    const other = fromF32.params.get(name)!;
    assert.is(other.dtype, t.dtype, `${label}: ${name} dtype as from the F32 file`);
    assert.equal(Array.from(await t.read()), Array.from(await other.read()), `${label}: ${name} as from the F32 file`);
  }
  // q, k, v, out, fc, proj in one block per tower, and the patch-embedding conv.
  assert.is(halves, dtype === 'f16' ? 13 : 0, `${label}: tensors held as halves`);
}

/** The fused q/k/v split, two copies, the conv, logit_scale: against the stored values, by hand. */
async function checkByHand(weights: ClipWeights, label: string): Promise<void> {
  const inProj = VALUES.get('visual.transformer.resblocks.0.attn.in_proj_weight')!;
  const expect = async (name: string, want: ArrayLike<number>) => assert.equal(Array.from(await weights.params.get(name)!.read()), Array.from(want), `${label}: ${name}`);
  await expect('visual.blocks.0.q.w', inProj.subarray(0, V * V));
  await expect('visual.blocks.0.k.w', inProj.subarray(V * V, 2 * V * V));
  await expect('visual.blocks.0.v.w', inProj.subarray(2 * V * V));
  await expect('text.blocks.0.fc.w', VALUES.get('transformer.resblocks.0.mlp.c_fc.weight')!);
  await expect('text.blocks.0.proj.w', VALUES.get('transformer.resblocks.0.mlp.c_proj.weight')!);
  await expect('visual.conv', VALUES.get('visual.conv1.weight')!);
  await expect('text.proj', VALUES.get('text_projection')!);
  assert.is(weights.logitScale, VALUES.get('logit_scale')![0], `${label}: logitScale`);
  assert.equal(Array.from((await weights.params.get('visual.blocks.0.q.w')!.read()).subarray(0, 4)), [3 * 2 ** -24, 65504, -0, 2 ** -14], `${label}: subnormal, max, -0, min normal`);
}

test.before(({ gpu }) => {
  assert.ok(gpu.hasF16, `the adapter (${gpu.adapter.description || gpu.adapter.name}) lacks shader-f16, which these tests need`);
});

test("F16 file, dtype 'f16' (halves uploaded as stored) and 'f32' (widened): the stored values", async ({ gpu }) => {
  const f16File = checkpoint(VALUES, 'F16');
  const f32File = checkpoint(VALUES, 'F32');
  for (const dtype of ['f16', 'f32'] as const) {
    const weights = await load(gpu, f16File, 'tiny-f16.safetensors', dtype);
    const fromF32 = await load(gpu, f32File, 'tiny-f32.safetensors', dtype);
    try {
      await checkAgainstF32File(weights, fromF32, dtype, `F16 file, dtype ${dtype}`);
      await checkByHand(weights, `F16 file, dtype ${dtype}`);
    } finally {
      weights.dispose();
      fromF32.dispose();
    }
  }
});

test("F16 file, dtype 'f16' without shader-f16: widened to f32, with the note", async () => {
  const plain = await getDevice({ disableF16: true });
  try {
    const weights = await load(plain, checkpoint(VALUES, 'F16'), 'tiny-f16.safetensors', 'f16');
    assert.is(weights.weightDtype, 'f32');
    assert.match(weights.weightDtypeNote ?? '', /loadClipWeights\(tiny-f16\.safetensors\): dtype 'f16' asked for, but the adapter .* lacks shader-f16: weights stay f32/);
    for (const [name, t] of weights.params) assert.is(t.dtype, 'f32', name);
    await checkByHand(weights, 'F16 file on an adapter without shader-f16');
    weights.dispose();
  } finally {
    plain.destroy();
  }
});

test('no dtype asked: the halves where the adapter has shader-f16, f32 without, and no note either way', async ({ gpu }) => {
  const bytes = checkpoint(VALUES, 'F32');
  const withF16 = await load(gpu, bytes, 'tiny-f32.safetensors', undefined);
  const fromF32 = await load(gpu, bytes, 'tiny-f32.safetensors', 'f16');
  try {
    assert.is(withF16.weightDtypeNote, undefined);
    await checkAgainstF32File(withF16, fromF32, 'f16', 'default dtype with shader-f16');
  } finally {
    withF16.dispose();
    fromF32.dispose();
  }
  const plain = await getDevice({ disableF16: true });
  try {
    const weights = await load(plain, bytes, 'tiny-f32.safetensors', undefined);
    assert.is(weights.weightDtype, 'f32');
    assert.is(weights.weightDtypeNote, undefined);
    for (const [name, t] of weights.params) assert.is(t.dtype, 'f32', name);
    weights.dispose();
  } finally {
    plain.destroy();
  }
});

test('Tensor.fromF16Bits uploads halves as they are (odd counts too); readF16Bits reads F16 only', async ({ gpu }) => {
  // 1, -2, 0.5, the smallest subnormal, 65504.
  const bits = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x0001, 0x7bff]);
  const t = Tensor.fromF16Bits(gpu, bits, [5]);
  assert.is(t.dtype, 'f16');
  assert.equal(Array.from(await t.read()), [1, -2, 0.5, 2 ** -24, 65504]);
  t.dispose();
  await assertThrows(() => Tensor.fromF16Bits(gpu, bits, [2, 2]), /Tensor\.fromF16Bits: shape \[2, 2\] needs 4 halves, got 5/);
  const file = await openSafetensors(bytesSource(writeSafetensors([
    { name: 'h', dtype: 'F16', shape: [3], data: [1, -2, 0.5] },
    { name: 'f', dtype: 'F32', shape: [1], data: [1] },
  ]), 'two.safetensors'));
  assert.equal(Array.from(await file.readF16Bits('h')), [0x3c00, 0xc000, 0x3800]);
  await assertThrows(() => file.readF16Bits('f'), /two\.safetensors: tensor "f" is F32, but readF16Bits\(\) reads F16 only/);
});

test('an Inf or NaN half is an Error naming the file, the tensor and the element, with either dtype', async ({ gpu }) => {
  for (const [key, at, value, what] of [
    ['transformer.resblocks.0.mlp.c_fc.weight', 5, Infinity, 'Inf \\(bits 0x7c00\\)'],
    ['visual.ln_pre.bias', 0, -Infinity, '-Inf \\(bits 0xfc00\\)'],
    ['visual.transformer.resblocks.0.attn.in_proj_weight', 2 * V * V + 3, NaN, 'NaN'],
  ] as const) {
    const values = new Map<string, ArrayLike<number>>(VALUES);
    const bad = Float64Array.from(VALUES.get(key)!);
    bad[at] = value;
    values.set(key, bad);
    const bytes = checkpoint(values, 'F16');
    for (const dtype of ['f16', 'f32'] as const) {
      await assertThrows(() => load(gpu, bytes, 'overflowed.safetensors', dtype), new RegExp(`overflowed\\.safetensors: tensor "${key.replace(/\./g, '\\.')}" \\(F16\\) element ${at} is ${what}`), /expected a finite weight/, /±65504/);
    }
  }
});

test('truncated or corrupt F16 data is an Error naming the tensor', async ({ gpu }) => {
  const bytes = checkpoint(VALUES, 'F16');
  const dataStart = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
  // Cut short: the header names bytes the file no longer has (the last tensor is ln_final.bias).
  await assertThrows(() => load(gpu, bytes.subarray(0, bytes.length - 6), 'cut.safetensors', 'f16'), /cut\.safetensors: truncated: tensor "ln_final\.bias" needs bytes/);
  // Cut after the header was read (a file that shrank, a source that misbehaves): the read names the tensor.
  const whole = bytesSource(bytes, 'shrinking.safetensors');
  const shrinking: ByteSource = {
    size: whole.size,
    name: 'shrinking.safetensors',
    read: async (offset, length) => (await whole.read(offset, length)).subarray(0, offset >= dataStart ? length - 2 : length),
  };
  const file = await openSafetensors(shrinking);
  await assertThrows(() => loadClipWeights(gpu, file, { dtype: 'f16' }), /shrinking\.safetensors: reading tensor "[^"]+" \(F16 \[[\d, ]+\], \d+ bytes at \d+\)/, /got \d+ bytes/);
  // A tensor whose bytes are those of F32 values but whose header says F16: the spans disagree.
  const f32 = checkpoint(VALUES, 'F32');
  const text = new TextDecoder().decode(f32.subarray(8, 8 + Number(new DataView(f32.buffer).getBigUint64(0, true))));
  // The same length either way, so the header keeps its size.
  const relabelled = text.replace('"visual.ln_pre.weight":{"dtype":"F32"', '"visual.ln_pre.weight":{"dtype":"F16"');
  assert.is.not(relabelled, text);
  const corrupt = Uint8Array.from(f32);
  corrupt.set(new TextEncoder().encode(relabelled), 8);
  await assertThrows(() => load(gpu, corrupt, 'relabelled.safetensors', 'f16'), /relabelled\.safetensors: tensor "visual\.ln_pre\.weight": byte length mismatch: dtype F16 \(2 bytes\) × shape \[64\] needs 128 bytes, but data_offsets \[\d+, \d+\] span 256/);
});

test.run();
