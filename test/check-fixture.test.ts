// scripts/check-fixture.js end to end, as a child process, on copies of real
// golden fixtures (../shared/fixtures; a temp folder, deleted after): the
// unmodified clip-tiny-p16 passes (grad_wrt_image included); an extra result
// tensor, a stored result the engine cannot reach (its input removed), a
// shape mismatch, a SAM2 prompt case without prompt tensors and a folder
// without weights each exit 1 naming what failed. Needs dist/ (npm run build).

import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { SAFETENSORS_FLOAT_DTYPES, writeSafetensors, type SafetensorsEntry, type WritableDType } from '../src/io/safetensors.js';
import { NO_SHARED, repoRoot, sharedPath, skip, suite } from './util.js';

const P16 = sharedPath('fixtures', 'clip', 'clip-tiny-p16');
const SAM2_MINI = sharedPath('fixtures', 'sam2', 'sam2-mini');
const SCRIPT = join(repoRoot, 'scripts', 'check-fixture.js');

const test = suite<{ tmp: string }>('check-fixture', { tmp: '' });

test.before((ctx) => {
  if (!existsSync(join(repoRoot, 'dist', 'node.js'))) throw new Error(`${join(repoRoot, 'dist')} is missing: check-fixture.js runs the built library (npm run build)`);
  ctx.tmp = mkdtempSync(join(tmpdir(), 'check-fixture-test-'));
});

test.after((ctx) => {
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

/** Runs the script on `dir`; its exit status and stdout + stderr. */
function check(dir: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, dir], { cwd: repoRoot, encoding: 'utf8', timeout: 600_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The tensor names on the script's FAIL lines. */
const failed = (out: string) => out.split('\n').filter((l) => /\bFAIL\b/.test(l) && !/^\d+ FAIL of/.test(l)).map((l) => l.split(/\s+/)[0]);

/**
 * Copies fixture folder `src` to `tmp/name`; `edit` rewrites the io tensors
 * (every tensor read and written back with its dtype, metadata kept).
 */
async function copyFixture(src: string, tmp: string, name: string, edit?: (entries: SafetensorsEntry[]) => SafetensorsEntry[]): Promise<string> {
  const dst = join(tmp, name);
  cpSync(src, dst, { recursive: true });
  if (edit) {
    const io = await openSafetensorsFile(join(src, 'io.safetensors'));
    const entries: SafetensorsEntry[] = [];
    try {
      for (const [key, info] of io.tensors) {
        const data = SAFETENSORS_FLOAT_DTYPES.includes(info.dtype) ? await io.read(key) : await io.readInt32(key);
        entries.push({ name: key, dtype: info.dtype as WritableDType, shape: info.shape, data });
      }
    } finally {
      await io.close();
    }
    rmSync(join(dst, 'io.safetensors'), { force: true });
    writeFileSync(join(dst, 'io.safetensors'), writeSafetensors(edit(entries), { ...io.metadata }));
  }
  return dst;
}

test('the unmodified clip-tiny-p16 passes, grad_wrt_image produced and compared', async ({ tmp }) => {
  if (!P16) return skip(NO_SHARED);
  const { status, out } = check(await copyFixture(P16, tmp, 'p16'));
  assert.is(status, 0, out);
  assert.equal(failed(out), [], out);
  assert.match(out, /^grad_wrt_image\s+\[2,3,64,64\]\s+clip-gradient\s.*PASS$/m);
  assert.match(out, /^all 16 stored results produced and PASS$/m);
});

test('an extra result tensor fails, named', async ({ tmp }) => {
  if (!P16) return skip(NO_SHARED);
  const dir = await copyFixture(P16, tmp, 'p16-extra', (e) => [...e, { name: 'mystery_output', dtype: 'F32', shape: [2, 32], data: new Float32Array(64) }]);
  const { status, out } = check(dir);
  assert.is(status, 1, out);
  assert.equal(failed(out), ['mystery_output'], out);
  assert.match(out, /FAIL: unknown tensor "mystery_output"/);
});

test('stored results the engine cannot reach (grad_r removed) fail, named', async ({ tmp }) => {
  if (!P16) return skip(NO_SHARED);
  const dir = await copyFixture(P16, tmp, 'p16-no-grad-r', (e) => e.filter((t) => t.name !== 'grad_r'));
  const { status, out } = check(dir);
  assert.is(status, 1, out);
  assert.equal(failed(out).sort(), ['grad_wrt_image', 'grad_wrt_proj', 'grad_wrt_vision_tokens', 'loss'], out);
  assert.match(out, /FAIL: stored result "grad_wrt_image" not produced by the engine/);
});

test('a stored shape that differs from the produced one fails', async ({ tmp }) => {
  if (!P16) return skip(NO_SHARED);
  const dir = await copyFixture(P16, tmp, 'p16-shape', (e) => e.map((t) => (t.name === 'image_features' ? { ...t, shape: [1, 64] } : t)));
  const { status, out } = check(dir);
  assert.is(status, 1, out);
  assert.equal(failed(out), ['image_features'], out);
  assert.match(out, /FAIL: shape: ours \[2,32\], stored \[1,64\]/);
});

test('a folder without weights.safetensors fails, naming the folder', async ({ tmp }) => {
  if (!P16) return skip(NO_SHARED);
  const dir = join(tmp, 'no-weights');
  mkdirSync(dir);
  copyFileSync(join(P16, 'io.safetensors'), join(dir, 'io.safetensors'));
  const { status, out } = check(dir);
  assert.is(status, 1, out);
  assert.ok(out.includes(`${dir} has no weights.safetensors`), out);
});

test('SAM2: a prompt case is recognised by its prompt tensors; without them its results fail, the rest pass', async ({ tmp }) => {
  if (!SAM2_MINI) return skip(NO_SHARED);
  const prompt = ['boxpts_point_coords', 'boxpts_point_labels', 'boxpts_box'];
  let expected: string[] = [];
  const dir = await copyFixture(SAM2_MINI, tmp, 'sam2-no-boxpts-prompt', (e) => {
    expected = e.filter((t) => t.name.startsWith('boxpts_') && !prompt.includes(t.name)).map((t) => t.name).sort();
    return e.filter((t) => !prompt.includes(t.name));
  });
  const { status, out } = check(dir);
  assert.is(status, 1, out);
  assert.ok(expected.length >= 10, `boxpts_ results: ${expected.join(', ')}`);
  assert.equal(failed(out).sort(), expected, out);
  assert.match(out, /FAIL: stored result "boxpts_iou_pred_all" not produced by the engine \(prompt case "boxpts_" has no prompt tensors/);
  assert.match(out, /^ptsmask_masks_final_single\s.*PASS$/m);
});

test.run();
