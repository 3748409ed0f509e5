// Hostile ImageFolder trees (issue 16): links back up (`loop -> .`,
// `up -> ..`), a named pipe and a link to /dev/zero called *.png, an image
// reached twice through a link, a broken link, and a class folder over the
// per-class limit. Each image must be listed once, nothing may hang or read
// without end, and what is skipped is listed with its reason.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import * as assert from 'uvu/assert';
import { encodePng } from '../src/io/image.js';
import { readRegularFile } from '../src/io/node-files.js';
import { loadImageFolder, loadImages } from '../src/medfocus/dataset.js';
import { assertThrows, suite } from './util.js';

const test = suite('dataset-walk');
let root = '';

test.before(() => {
  root = mkdtempSync(join(tmpdir(), 'medfocus-walk-'));
  const png = encodePng(new Uint8Array(4 * 4 * 4).fill(200), 4, 4);
  const a = join(root, 'train', 'a');
  const b = join(root, 'train', 'b');
  mkdirSync(join(a, 'sub'), { recursive: true });
  mkdirSync(b, { recursive: true });
  writeFileSync(join(a, '1.png'), png);
  writeFileSync(join(a, 'sub', '2.png'), png);
  writeFileSync(join(b, 'real.png'), png);
  writeFileSync(join(b, 'notes.txt'), 'not an image');
  symlinkSync('.', join(a, 'loop'));
  symlinkSync('..', join(a, 'sub', 'up'));
  symlinkSync('../..', join(a, 'root')); // the dataset root, whose train/ is being walked
  symlinkSync(join(a, '1.png'), join(b, 'dup.png'));
  symlinkSync('/dev/zero', join(b, 'zero.png'));
  symlinkSync(join(root, 'nowhere.png'), join(b, 'broken.png'));
  execFileSync('mkfifo', [join(b, 'pipe.png')]);
});
test.after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

test('links back up, a pipe, a device and a duplicate: each image once, the rest ignored with a reason', async () => {
  const t0 = performance.now();
  const folder = await loadImageFolder(root, 'train');
  assert.ok(performance.now() - t0 < 5000, 'the walk ends quickly');
  assert.equal(folder.classes, ['a', 'b']);
  assert.equal(
    folder.items.map((it) => [relative(root, it.path), it.label]),
    [
      ['train/a/1.png', 0],
      ['train/a/sub/2.png', 0],
      ['train/b/real.png', 1],
    ],
  );
  const ignored = folder.ignored.map((s) => relative(root, s));
  const has = (pattern: RegExp) => assert.ok(ignored.some((s) => pattern.test(s)), `ignored should list ${pattern}: ${JSON.stringify(ignored)}`);
  has(/^train\/a\/loop \(already listed as /);
  has(/^train\/a\/root\/train \(already listed as /);
  has(/^train\/a\/sub\/up \(already listed as /);
  has(/^train\/b\/dup\.png \(already listed as .*train\/a\/1\.png\)$/);
  has(/^train\/b\/zero\.png \(not a regular file\)$/);
  has(/^train\/b\/pipe\.png \(not a regular file\)$/);
  has(/^train\/b\/broken\.png \(ENOENT: a broken link\?\)$/);
  has(/^train\/b\/notes\.txt$/);
  const loaded = await loadImages(folder.items, { onError: () => {} });
  assert.is(loaded.images.length, 3);
  assert.is(loaded.failures.length, 0);
});

test('a class folder over the per-class limit is a named error', async () => {
  await assertThrows(() => loadImageFolder(root, 'train', { maxImagesPerClass: 1 }), /loadImageFolder: class folder .*train\/a holds more than 1 images \(the limit per class\)/);
});

test('readRegularFile refuses a pipe, a device, a folder and a file over the limit, without blocking', async () => {
  const b = join(root, 'train', 'b');
  await assertThrows(() => readRegularFile(join(b, 'pipe.png')), /pipe\.png: expected a regular file, found a named pipe/);
  await assertThrows(() => readRegularFile(join(b, 'zero.png')), /zero\.png: expected a regular file, found a device/);
  await assertThrows(() => readRegularFile(b), /train\/b: expected a regular file, found a directory/);
  await assertThrows(() => readRegularFile(join(b, 'real.png'), 10), /real\.png: the file has \d+ bytes, more than the limit of 10/);
  await assertThrows(() => readRegularFile(join(b, 'broken.png')), /broken\.png: cannot open \(ENOENT\)/);
  assert.is((await readRegularFile(join(b, 'real.png'))).length > 0, true);
});

test.run();
