// Run folders and web heads under bad input (issue 16): config.json and the
// checkpoint's metadata are checked field by field, a non-finite parameter is
// refused at save (the last good checkpoint stays) and at load, and head.json
// may only name plain files beside it, with bounded sizes and distinct classes.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { writeSafetensors } from '../src/io/safetensors.js';
import { parseCheckpoint, readCheckpoint, readRunConfig, validateRunConfig, writeCheckpoint, type Checkpoint, type RunConfig } from '../src/medfocus/checkpoint.js';
import { checkHeadSpec, parseHeadSpec } from '../src/medfocus/head-spec.js';
import { clipHeadSpec } from '../src/medfocus/head-export.js';
import { SAMPLE_RUN_CONFIG } from './ref/sample-run-config.js';
import { assertThrows, suite } from './util.js';

const test = suite('run-folder');
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'medfocus-run-'));
});
test.after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const CONFIG: RunConfig = SAMPLE_RUN_CONFIG;

function checkpoint(value: number): Checkpoint {
  return {
    params: new Map([['head.w', { shape: [2, 2], data: Float32Array.from([value, 1, 2, 3]) }]]),
    optimizer: { optimizer: 'AdamW', step: 3, slots: { 'head.w': { m: new Float32Array(4), v: new Float32Array(4) } } },
    progress: { epoch: 1, step: 3, losses: [0.7] },
  };
}

test('config.json: a valid one passes; {}, null, wrong types and unknown fields are named', async () => {
  assert.equal(validateRunConfig(JSON.parse(JSON.stringify(CONFIG)), 'c.json'), CONFIG);
  await assertThrows(() => validateRunConfig({}, 'RUN/config.json'), /RUN\/config\.json: field 'version' must be the number 1, got nothing/);
  await assertThrows(() => validateRunConfig(null, 'RUN/config.json'), /RUN\/config\.json: expected a JSON object \(a run's config\), got null/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, classes: ['a'] }, 'c.json'), /field 'classes' must be a list of at least 2 distinct class names, got \["a"\]/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, classes: ['a', 'a'] }, 'c.json'), /field 'classes'/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, samSize: 100 }, 'c.json'), /field 'samSize' must be a multiple of 16 from 64 to 1024, got 100/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, lr: 'fast' }, 'c.json'), /field 'lr' must be a number in \(0, 1000\), got "fast"/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, colour: 'red' }, 'c.json'), /unknown field 'colour'/);
  await assertThrows(() => validateRunConfig({ ...CONFIG, backbone: 'clip' }, 'c.json'), /a clip run must name its 'weights' and 'tokenizer'/);
});

test("readRunConfig: a 'null' file is an error (not 'no config', which train would overwrite); a missing one is null", async () => {
  const run = join(dir, 'null-config');
  rmSync(run, { recursive: true, force: true });
  assert.is(await readRunConfig(run), null);
  mkdirSync(run, { recursive: true });
  writeFileSync(join(run, 'config.json'), 'null');
  await assertThrows(() => readRunConfig(run), /null-config\/config\.json: expected a JSON object/);
  writeFileSync(join(run, 'config.json'), '{"version": 1,');
  await assertThrows(() => readRunConfig(run), /null-config\/config\.json is not valid JSON/);
});

test('checkpoint: NaN refused at save (the good one stays) and at load; bad progress metadata named', async () => {
  const run = join(dir, 'ckpt');
  mkdirSync(run, { recursive: true });
  await writeCheckpoint(run, checkpoint(0.5));
  const good = readFileSync(join(run, 'checkpoint.safetensors'));
  await assertThrows(() => writeCheckpoint(run, checkpoint(NaN)), /not saving the checkpoint: parameter 'head\.w' holds NaN at element 0 \(training diverged/, /last good checkpoint is kept/);
  assert.ok(readFileSync(join(run, 'checkpoint.safetensors')).equals(good), 'the previous checkpoint is untouched');
  assert.is((await readCheckpoint(run))!.params.get('head.w')!.data[0], 0.5);

  const entries = [{ name: 'param.head.w', dtype: 'F32' as const, shape: [2], data: Float32Array.from([1, Infinity]) }];
  const meta = { progress: JSON.stringify({ epoch: 1, step: 1, losses: [0.5] }), optimizer: 'AdamW', optimizerStep: '1' };
  writeFileSync(join(run, 'checkpoint.safetensors'), writeSafetensors(entries, meta));
  await assertThrows(() => readCheckpoint(run), /checkpoint\.safetensors: tensor 'param\.head\.w' holds Infinity at element 1; a checkpoint must be finite/);

  const finite = [{ ...entries[0], data: Float32Array.from([1, 2]) }];
  writeFileSync(join(run, 'checkpoint.safetensors'), writeSafetensors(finite, { ...meta, progress: '{"epoch": 1,' }));
  await assertThrows(() => readCheckpoint(run), /checkpoint\.safetensors: metadata 'progress' is not valid JSON/);
  writeFileSync(join(run, 'checkpoint.safetensors'), writeSafetensors(finite, { ...meta, progress: '{"epoch": 2, "step": 1, "losses": [0.5]}' }));
  await assertThrows(() => readCheckpoint(run), /the progress metadata must be \{epoch, step, losses\} with one finite loss per epoch/);
  writeFileSync(join(run, 'checkpoint.safetensors'), writeSafetensors(finite, { ...meta, optimizer: 'Lion' }));
  await assertThrows(() => readCheckpoint(run), /metadata 'optimizer' must be AdamW or SgdMomentum, got "Lion"/);
});

test('head.json: only plain file names beside it, bounded sizes, distinct classes', async () => {
  const spec = clipHeadSpec({ classes: ['a', 'b'], focus: 'none', strength: 0, overlayAlpha: 0.5, samSize: 256, pointsPerSide: 4, prompts: 4 }, undefined);
  assert.equal(checkHeadSpec(spec), spec);
  for (const tensors of ['../../../etc/head.safetensors', '/abs/head.safetensors', 'https://elsewhere.example/head.safetensors', '.hidden.safetensors', 'sub/head.safetensors', 'head.bin']) {
    await assertThrows(() => checkHeadSpec({ ...spec, tensors }), /"tensors" must be a \.safetensors file name beside head\.json \(no folder, '\.\.', scheme or host\)/);
  }
  await assertThrows(() => checkHeadSpec({ ...spec, clip: '//host/clip.safetensors' }), /"clip" must be a \.safetensors file name beside head\.json/);
  await assertThrows(() => checkHeadSpec({ ...spec, prompts: 1e9 }), /"prompts" must be an integer from 0 to 1024, got 1000000000/);
  await assertThrows(() => checkHeadSpec({ ...spec, deep: 999 }), /"deep" must be an integer from 0 to 256/);
  await assertThrows(() => checkHeadSpec({ ...spec, workSide: 1e6 }), /"workSide" must be 256 \(the frame the pipeline makes masks and features in\), got 1000000/);
  await assertThrows(() => checkHeadSpec({ ...spec, classes: ['a', 'b', 'a'] }), /"classes" names "a" twice; class names must be distinct/);
  // Found by the fuzzer (test/fuzz.test.ts): an absent field crashed the message itself (JSON.stringify(undefined).slice).
  const { tensors: _tensors, ...noTensors } = spec;
  await assertThrows(() => checkHeadSpec(noTensors), /"tensors" must be a \.safetensors file name .*got nothing/);
  const { classes: _classes, ...noClasses } = spec;
  await assertThrows(() => checkHeadSpec(noClasses), /"classes" must list 2 to 10000 class names .*got nothing/);
  await assertThrows(() => parseHeadSpec('{"format": "medfocus-head",'), /^head\.json: not valid JSON/);
});

test('checkpoint metadata found broken by the fuzzer: an absent optimizerStep is named, the file (not its folder) in the message', async () => {
  const entries = [{ name: 'param.w', dtype: 'F32' as const, shape: [1], data: Float32Array.from([1]) }];
  const progress = JSON.stringify({ epoch: 0, step: 0, losses: [] });
  await assertThrows(() => parseCheckpoint(writeSafetensors(entries, { progress, optimizer: 'AdamW' }), 'R/checkpoint.safetensors'), /^R\/checkpoint\.safetensors: metadata 'optimizerStep' must be an integer ≥ 0, got nothing/);
  await assertThrows(() => parseCheckpoint(writeSafetensors(entries, { optimizer: 'AdamW' }), 'R/checkpoint.safetensors'), /^R\/checkpoint\.safetensors: the progress metadata is missing/);
});

test.run();
