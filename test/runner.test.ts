// The test runner itself (scripts/test.js) on small broken test files written
// to a temporary folder: a `before` hook that throws (uvu alone would print
// "0 / N" and exit 0), one failing test among passing ones, a file that hangs,
// a runtime skip, and a file that imports uvu's suite directly. Each broken
// file must fail the run with the file named; the skip must be counted as one.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as assert from 'uvu/assert';
import { repoRoot, suite } from './util.js';

const test = suite('runner');
const util = pathToFileURL(join(repoRoot, 'test', 'util.ts')).href;
const assertUrl = pathToFileURL(join(repoRoot, 'node_modules', 'uvu', 'assert', 'index.mjs')).href;

const FILES: Record<string, string> = {
  'before-throws.test.ts': `
import { suite } from '${util}';
const test = suite('before-throws');
test.before(() => { throw new Error('fixture failed to load: /nowhere/weights.safetensors'); });
test('never runs', () => {});
test.run();`,
  'one-fails.test.ts': `
import * as assert from '${assertUrl}';
import { suite } from '${util}';
const test = suite('one-fails');
test('passes', () => assert.is(1, 1));
test('fails', () => assert.is(1 + 1, 3, 'arithmetic'));
test('passes too', () => assert.ok(true));
test.run();`,
  'hangs.test.ts': `
import { suite } from '${util}';
const test = suite('hangs');
test('waits forever', () => new Promise(() => setInterval(() => {}, 1000)));
test.run();`,
  'skips.test.ts': `
import { skip, suite } from '${util}';
const test = suite('skips');
test('runs', () => {});
test('skips', () => skip('the data is absent'));
test.run();`,
  // (the module name split so that this file itself is not refused)
  'raw-uvu.test.ts': `
import { suite } from 'u${''}vu';
const test = suite('raw');
test('runs', () => {});
test.run();`,
};

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'medfocus-runner-'));
  for (const [name, source] of Object.entries(FILES)) writeFileSync(join(dir, name), source);
});
test.after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** scripts/test.js on the temporary folder, files matching `pattern`; CI unset so skip() records instead of throwing. */
function runner(pattern: string, timeoutS = 60) {
  const env = { ...process.env };
  delete env.CI;
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'test.js'), pattern, '--dir', dir, '--file-timeout', String(timeoutS)], {
    cwd: repoRoot,
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('a before hook that throws fails the run, names the file and prints the error', () => {
  const r = runner('^before-throws');
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /FAIL before-throws\.test\.ts/);
  assert.match(r.out, /hook\(s\) failed/);
  assert.match(r.out, /fixture failed to load: \/nowhere\/weights\.safetensors/);
  assert.match(r.out, /failed files: before-throws\.test\.ts/);
  assert.match(r.out, /^0 passed, 1 failed, 0 skipped$/m);
});

test('one failing test among passing ones fails the run with the file and the assertion named', () => {
  const r = runner('^one-fails');
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /FAIL one-fails\.test\.ts\s+2\/3/);
  assert.match(r.out, /arithmetic/);
  assert.match(r.out, /^2 passed, 1 failed, 0 skipped$/m);
});

test('a file that hangs is killed at the per-file limit and fails the run, named', () => {
  const t0 = performance.now();
  const r = runner('^hangs', 3);
  assert.ok(performance.now() - t0 < 60_000, 'the limit ended the file');
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /FAIL hangs\.test\.ts/);
  assert.match(r.out, /hangs\.test\.ts: killed after the per-file limit of 3 s/);
});

test('skip(reason) is counted as a skip with its reason, not as a pass', () => {
  const r = runner('^skips');
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /skip: the data is absent/);
  assert.match(r.out, /^1 passed, 0 failed, 1 skipped$/m);
});

test("a file importing uvu's suite directly is refused (its hooks could fail silently)", () => {
  const r = runner('^raw-uvu');
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /FAIL raw-uvu\.test\.ts\s+refused: imports from 'uvu' directly/);
});

test('all of them together: the run fails and lists every broken file', () => {
  const r = runner('.', 3);
  assert.is(r.status, 1, r.out);
  assert.match(r.out, /failed files: before-throws\.test\.ts, hangs\.test\.ts, one-fails\.test\.ts, raw-uvu\.test\.ts/);
});

test.run();
