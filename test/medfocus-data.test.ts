// MedFocusCLIP data layer (no GPU): ImageFolder listing and its errors, seeded
// stratified few-shot subsets, decoding with per-file failures, the busi3
// split counts, the ultrasound phantom generator, the content-addressed disk
// cache and atomic writes, metrics and their pictures, and the progress bar.

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { build } from 'esbuild';
import * as assert from 'uvu/assert';
import { decodeImage, encodePng } from '../src/io/image.js';
import { checkSplits, loadImageFolder, loadImages, stratifiedSample, type DatasetItem } from '../src/medfocus/dataset.js';
import { generatePhantomDataset, PHANTOM_SHAPES } from '../src/medfocus/phantom.js';
import { contentHash, DiskCache } from '../src/medfocus/cache.js';
import { evaluatePredictions } from '../src/medfocus/metrics.js';
import { renderConfusionPng, renderCurvePng, renderGroupedBarsPng } from '../src/render/charts.js';
import { meanStd } from '../src/util/stats.js';
import { formatDuration, ProgressBar } from '../src/util/progress.js';
import { writeFileAtomic } from '../src/util/atomic-write.js';
import { assertThrows, NO_SHARED, repoRoot, rng, sharedPath, skip, suite } from './util.js';

const test = suite('medfocus-data');
const busi3 = sharedPath('datasets', 'busi3');
let tmp = '';

test.before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'medfocus-data-'));
});

test.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Every file under dir, relative to `base`, sorted. */
async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path, base)));
    else out.push(relative(base, path));
  }
  return out.sort();
}

function solidPng(value: number, w = 6, h = 5): Uint8Array {
  const rgba = new Uint8Array(w * h * 4).fill(value);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return encodePng(rgba, w, h);
}

/** A small ImageFolder: train/{cat: 3, dog: 2 + a corrupt .jpg}, test/{cat: 1, dog: 1}, plus a non-image file and an upper-case extension. */
async function makeFolder(name: string): Promise<string> {
  const root = join(tmp, name);
  const files: Record<string, Uint8Array | string> = {
    'train/cat/a.png': solidPng(10),
    'train/cat/b.PNG': solidPng(20),
    'train/cat/c.png': solidPng(30),
    'train/cat/notes.txt': 'not an image',
    'train/dog/a.png': solidPng(40),
    'train/dog/b.png': solidPng(50),
    'train/dog/broken.jpg': new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 1, 2, 3]),
    'test/cat/x.png': solidPng(60),
    'test/dog/y.jpeg': new Uint8Array([0xff, 0xd8, 0xff]),
  };
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), bytes);
  }
  return root;
}

// ---------------------------------------------------------------- ImageFolder

test('loadImageFolder: sorted classes, image files by extension (any case), others ignored and listed', async () => {
  const root = await makeFolder('folder');
  const train = await loadImageFolder(root, 'train');
  assert.equal(train.classes, ['cat', 'dog']);
  assert.equal(
    train.items.map((it) => [relative(root, it.path), it.label]),
    [['train/cat/a.png', 0], ['train/cat/b.PNG', 0], ['train/cat/c.png', 0], ['train/dog/a.png', 1], ['train/dog/b.png', 1], ['train/dog/broken.jpg', 1]],
  );
  assert.equal(train.ignored.map((p) => relative(root, p)), ['train/cat/notes.txt']);
  const testSplit = await loadImageFolder(root, 'test');
  assert.equal(testSplit.items.length, 2);
  checkSplits(train, testSplit);
});

test('loadImages: decodes, reports each corrupt file by name and lists it in failures', async () => {
  const root = await makeFolder('decode');
  const train = await loadImageFolder(root, 'train');
  const progress: number[] = [];
  const reported: string[] = [];
  const { images, failures } = await loadImages(train.items, {
    onProgress: (done, total) => progress.push(done / total),
    onError: (path, error) => reported.push(`${relative(root, path)}: ${error.message}`),
  });
  assert.is(images.length, 5);
  assert.equal(images.map((im) => im.image.data[0]), [10, 20, 30, 40, 50]);
  assert.equal(images.map((im) => im.label), [0, 0, 0, 1, 1]);
  assert.is(failures.length, 1);
  assert.is(relative(root, failures[0].path), 'train/dog/broken.jpg');
  assert.match(failures[0].error, /broken\.jpg.*JPEG/);
  assert.is(reported.length, 1);
  assert.match(reported[0], /^train\/dog\/broken\.jpg: /);
  assert.is(progress.length, 6);
  assert.is(progress[5], 1);
});

test('loadImageFolder / checkSplits: missing split, empty class, mismatched classes name the folder or class', async () => {
  const root = await makeFolder('errors');
  await assertThrows(() => loadImageFolder(join(tmp, 'nowhere'), 'train'), /nowhere/, /does not exist/);
  await rm(join(root, 'test'), { recursive: true });
  await assertThrows(() => loadImageFolder(root, 'test'), /errors\/test is missing/);
  await assertThrows(() => loadImageFolder(root, 'valid' as 'test'), /split must be 'train' or 'test'/, /valid/);
  await mkdir(join(root, 'train', 'empty'));
  await writeFile(join(root, 'train', 'empty', 'readme.md'), 'no images here');
  await assertThrows(() => loadImageFolder(root, 'train'), /train\/empty/, /'empty'/, /no \.png\/\.jpg\/\.jpeg images/);
  await rm(join(root, 'train', 'empty'), { recursive: true });
  await mkdir(join(root, 'test', 'cat'), { recursive: true });
  await writeFile(join(root, 'test', 'cat', 'x.png'), solidPng(1));
  await mkdir(join(root, 'test', 'bird'), { recursive: true });
  await writeFile(join(root, 'test', 'bird', 'x.png'), solidPng(1));
  const train = await loadImageFolder(root, 'train');
  const testSplit = await loadImageFolder(root, 'test');
  assert.throws(() => checkSplits(train, testSplit), /'dog' in train but not in test.*'bird' in test but not in train/);
});

// ---------------------------------------------------------------- stratified sampling

/** The class names of syntheticItems' labels 0, 1, 2. */
const SYNTHETIC_CLASSES = ['c0', 'c1', 'c2'];

/** Class sizes 100, 37, 5 with labels interleaved. */
function syntheticItems(): DatasetItem[] {
  const sizes = [100, 37, 5];
  const items: DatasetItem[] = [];
  sizes.forEach((n, label) => {
    for (let i = 0; i < n; i++) items.push({ path: `c${label}/${String(i).padStart(3, '0')}.png`, label });
  });
  return items;
}

function perClass(items: DatasetItem[]): number[] {
  const counts = [0, 0, 0];
  for (const it of items) counts[it.label]++;
  return counts;
}

test('stratifiedSample: per-class max(1, f·n rounded half up), deterministic, nested, independent of input order', () => {
  const items = syntheticItems();
  assert.equal(perClass(stratifiedSample(items, 0.1, 0, SYNTHETIC_CLASSES)), [10, 4, 1]);
  assert.equal(perClass(stratifiedSample(items, 0.01, 0, SYNTHETIC_CLASSES)), [1, 1, 1]);
  assert.equal(perClass(stratifiedSample(items, 0.5, 3, SYNTHETIC_CLASSES)), [50, 19, 3]); // 18.5 and 2.5 round up
  assert.equal(stratifiedSample(items, 1, 7, SYNTHETIC_CLASSES), items);
  const a = stratifiedSample(items, 0.2, 42, SYNTHETIC_CLASSES);
  assert.equal(stratifiedSample(items, 0.2, 42, SYNTHETIC_CLASSES), a, 'same seed, same subset');
  assert.not.equal(stratifiedSample(items, 0.2, 43, SYNTHETIC_CLASSES).map((it) => it.path), a.map((it) => it.path), 'another seed, another subset');
  // Input order does not matter, and the output keeps the input order.
  const shuffled = [...items];
  const r = rng(5);
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const fromShuffled = stratifiedSample(shuffled, 0.2, 42, SYNTHETIC_CLASSES);
  assert.equal(new Set(fromShuffled.map((it) => it.path)), new Set(a.map((it) => it.path)));
  assert.equal(fromShuffled, shuffled.filter((it) => fromShuffled.includes(it)));
  // Nested: each smaller fraction is a subset of every larger one with the same seed.
  const fractions = [0.02, 0.05, 0.1, 0.25, 0.5, 0.8, 1];
  const subsets = fractions.map((f) => new Set(stratifiedSample(items, f, 11, SYNTHETIC_CLASSES).map((it) => it.path)));
  for (let i = 1; i < subsets.length; i++) {
    for (const p of subsets[i - 1]) assert.ok(subsets[i].has(p), `${p} is in the ${fractions[i - 1]} subset but not in the ${fractions[i]} one`);
  }
});

test('stratifiedSample: fraction outside (0, 1] or a non-integer seed throws', async () => {
  const items = syntheticItems();
  for (const f of [0, -0.1, 1.5, NaN, Infinity]) await assertThrows(() => stratifiedSample(items, f, 0, SYNTHETIC_CLASSES), /stratifiedSample/, /fraction must be a number in \(0, 1\]/, new RegExp(String(f)));
  await assertThrows(() => stratifiedSample(items, 0.5, 1.5, SYNTHETIC_CLASSES), /seed must be an integer, got 1\.5/);
});

// ---------------------------------------------------------------- busi3

test('busi3: the README counts, matching splits, 5% → 13/6/4, a subset decodes', async () => {
  if (!busi3) return skip(NO_SHARED);
  const train = await loadImageFolder(busi3, 'train');
  const testSplit = await loadImageFolder(busi3, 'test');
  checkSplits(train, testSplit);
  assert.equal(train.classes, ['benign', 'malignant', 'normal']);
  assert.equal(perClass(train.items), [262, 126, 80]);
  assert.equal(perClass(testSplit.items), [175, 84, 53]);
  const few = stratifiedSample(train.items, 0.05, 0, train.classes);
  assert.equal(perClass(few), [13, 6, 4]);
  const { images, failures } = await loadImages(few);
  assert.equal(failures, []);
  assert.is(images.length, 23);
  for (const im of images) assert.is(Math.min(im.image.width, im.image.height), 256, `${im.path}: the README says the shorter side is 256`);
});

// ---------------------------------------------------------------- phantoms

async function hashTree(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await listFiles(dir)) hash.update(`${file}\0`).update(await readFile(join(dir, file)));
  return hash.digest('hex');
}

test('phantoms: deterministic per seed, an ImageFolder with masks and a manifest, default size fast', async () => {
  const small = { size: 96, perClassTrain: 3, perClassTest: 2 };
  const a = await generatePhantomDataset(join(tmp, 'ph-a'), { seed: 7, ...small });
  await generatePhantomDataset(join(tmp, 'ph-b'), { seed: 7, ...small });
  await generatePhantomDataset(join(tmp, 'ph-c'), { seed: 8, ...small });
  assert.is(await hashTree(join(tmp, 'ph-a')), await hashTree(join(tmp, 'ph-b')), 'same seed, same bytes');
  assert.is.not(await hashTree(join(tmp, 'ph-a')), await hashTree(join(tmp, 'ph-c')), 'another seed, other images');
  assert.equal(a.classes, [...PHANTOM_SHAPES]);
  const train = await loadImageFolder(join(tmp, 'ph-a'), 'train');
  const testSplit = await loadImageFolder(join(tmp, 'ph-a'), 'test');
  checkSplits(train, testSplit);
  assert.equal(train.classes, ['lobulated', 'round', 'spiculated']);
  assert.equal(perClass(train.items), [3, 3, 3]);
  assert.equal(perClass(testSplit.items), [2, 2, 2]);
  const files = await listFiles(join(tmp, 'ph-a'));
  for (const it of [...train.items, ...testSplit.items]) assert.ok(files.includes(`masks/${relative(join(tmp, 'ph-a'), it.path)}`), `mask of ${it.path}`);
  const manifest = JSON.parse(await readFile(join(tmp, 'ph-a', 'manifest.json'), 'utf8'));
  assert.is(manifest.items.length, 15);
  assert.is(manifest.seed, 7);

  // An existing dataset is replaced only when asked; a foreign folder never.
  await assertThrows(() => generatePhantomDataset(join(tmp, 'ph-a'), { seed: 7, ...small }), /already holds a phantom dataset/, /overwrite: true/);
  await generatePhantomDataset(join(tmp, 'ph-a'), { seed: 7, ...small, perClassTrain: 1, overwrite: true });
  assert.equal(perClass((await loadImageFolder(join(tmp, 'ph-a'), 'train')).items), [1, 1, 1]);
  const foreign = await makeFolder('foreign');
  await assertThrows(() => generatePhantomDataset(foreign, { overwrite: true }), /not empty and holds no phantom dataset/);
  assert.ok((await listFiles(foreign)).includes('train/cat/a.png'), 'the foreign folder is left alone');
  await assertThrows(() => generatePhantomDataset(join(tmp, 'ph-x'), { classes: ['oval' as 'round'] }), /unknown class "oval"/, /lobulated, round, spiculated/);

  const t0 = performance.now();
  await generatePhantomDataset(join(tmp, 'ph-default'));
  const seconds = (performance.now() - t0) / 1000;
  console.log(`phantoms: default dataset (3 × (40 + 20) images of 128²) in ${seconds.toFixed(1)} s`);
  // Under 5 s on an idle core (~1.5 s here); the bound leaves room for a busy machine.
  assert.ok(seconds < 20, `default phantom dataset took ${seconds.toFixed(1)} s`);
});

test('phantoms: masks line up with hypoechoic lesions; the outline complexity orders round < lobulated < spiculated', async () => {
  const root = join(tmp, 'ph-masks');
  await generatePhantomDataset(root, { seed: 1, perClassTrain: 8, perClassTest: 1 });
  const train = await loadImageFolder(root, 'train');
  const complexity: number[][] = train.classes.map(() => []);
  for (const it of train.items) {
    const image = decodeImage(await readFile(it.path), it.path);
    const maskPath = join(root, 'masks', relative(root, it.path));
    const mask = decodeImage(await readFile(maskPath), maskPath);
    assert.is(image.channels, 1);
    assert.is(mask.width, image.width);
    const { width: w, height: h } = image;
    const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < w && y < h && mask.data[(y * w + x) * 4] === 255;
    let lesionSum = 0;
    let lesion = 0;
    let ringSum = 0;
    let ring = 0;
    let boundary = 0;
    const RING = 4;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = image.data[(y * w + x) * 4];
        if (inside(x, y)) {
          lesionSum += v;
          lesion++;
          if (!inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1)) boundary++;
          continue;
        }
        let near = false;
        for (let dy = -RING; dy <= RING && !near; dy++) for (let dx = -RING; dx <= RING && !near; dx++) near = inside(x + dx, y + dy);
        if (near) {
          ringSum += v;
          ring++;
        }
      }
    }
    assert.ok(lesion > 20, `${it.path}: lesion mask has ${lesion} pixels`);
    const lesionMean = lesionSum / lesion;
    const ringMean = ringSum / ring;
    assert.ok(lesionMean < 0.75 * ringMean, `${it.path}: lesion mean ${lesionMean.toFixed(1)} vs surrounding ring ${ringMean.toFixed(1)}; the mask must cover the dark lesion`);
    complexity[it.label].push((boundary * boundary) / lesion);
  }
  const mean = complexity.map((c) => meanStd(c).mean);
  const [lobulated, round, spiculated] = mean;
  assert.ok(round < lobulated && lobulated < spiculated, `boundary²/area per class ${train.classes.map((c, i) => `${c} ${mean[i].toFixed(1)}`).join(', ')}`);
});

// ---------------------------------------------------------------- cache and atomic writes

test('DiskCache: content keys, miss then hit, survives a new instance, atomic (no tmp files), input checks', async () => {
  assert.is(contentHash(new TextEncoder().encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const dir = join(tmp, 'cache');
  const cache = new DiskCache(dir);
  const image = new Uint8Array([1, 2, 3]);
  const key = cache.key([contentHash(image), 'mobilesam', 'points=3']);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.is(cache.key([contentHash(image), 'mobilesam', 'points=3']), key);
  assert.is.not(cache.key(['ab', 'c']), cache.key(['a', 'bc']));
  assert.is.not(cache.key(['abc']), cache.key([new TextEncoder().encode('abc')]));
  assert.is(await cache.get(key, 'mask'), null);
  assert.equal(cache.stats, { hits: 0, misses: 1 });
  await cache.put(key, 'mask', new Uint8Array([9, 8, 7]));
  assert.equal(Array.from((await cache.get(key, 'mask'))!), [9, 8, 7]);
  assert.is(await cache.get(key, 'feature'), null, 'kinds are separate');
  assert.equal(cache.stats, { hits: 1, misses: 2 });
  await cache.put(key, 'mask', new Uint8Array([6]));
  const again = new DiskCache(dir);
  assert.equal(Array.from((await again.get(key, 'mask'))!), [6]);
  assert.equal(await listFiles(dir), [`mask/${key.slice(0, 2)}/${key}.bin`]);
  await assertThrows(() => cache.get('abc', 'mask'), /key must be 64 lowercase hex digits/, /"abc"/);
  await assertThrows(() => cache.put(key, '../up', new Uint8Array(1)), /kind must be/, /"\.\.\/up"/);
  assert.throws(() => cache.key([]), /non-empty array/);
  assert.throws(() => cache.key([3 as unknown as string]), /part 0 is \[object Number\]/);
});

test('DiskCache.fileHash: sha256 of the content, memoised by path, size and mtime; a missing file is named', async () => {
  const cache = new DiskCache(join(tmp, 'hash-cache'));
  const path = join(tmp, 'checkpoint.safetensors');
  const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255); // several stream chunks
  // Whole-second mtimes: utimes cannot restore a file system's sub-millisecond stamp.
  const mtime = new Date('2026-01-01T00:00:00Z');
  await writeFile(path, bytes);
  await utimes(path, mtime, mtime);
  const first = await cache.fileHash(path, 'SAM2 checkpoint');
  assert.is(first, createHash('sha256').update(bytes).digest('hex'));
  // Same size and mtime, other bytes: the memo answers (the file is not read again) ...
  await writeFile(path, bytes.map((b) => b ^ 1));
  await utimes(path, mtime, mtime);
  assert.is(await cache.fileHash(path, 'SAM2 checkpoint'), first);
  assert.equal(cache.stats, { hits: 0, misses: 0 }, 'file hashes are not counted as per-image results');
  // ... a new mtime makes it read the file again.
  await utimes(path, new Date(mtime.getTime() + 5000), new Date(mtime.getTime() + 5000));
  assert.is(await cache.fileHash(path, 'SAM2 checkpoint'), createHash('sha256').update(bytes.map((b) => b ^ 1)).digest('hex'));
  await assertThrows(() => cache.fileHash(join(tmp, 'nope.safetensors'), 'SAM2 checkpoint'), /SAM2 checkpoint: cannot read .*nope\.safetensors \(ENOENT\)/);
  await assertThrows(() => cache.fileHash(tmp, 'SAM2 checkpoint'), /SAM2 checkpoint: .* is not a file/);
});

test('writeFileAtomic: replaces whole files; a failed write leaves the old file and no tmp file', async () => {
  const dir = join(tmp, 'atomic');
  await mkdir(dir);
  const path = join(dir, 'checkpoint.bin');
  await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  await writeFileAtomic(path, 'text');
  assert.is(await readFile(path, 'utf8'), 'text');
  await mkdir(join(dir, 'taken'));
  await writeFile(join(dir, 'taken', 'x'), 'x');
  let failed = false;
  try {
    await writeFileAtomic(join(dir, 'taken'), 'cannot replace a non-empty folder');
  } catch {
    failed = true;
  }
  assert.ok(failed, 'renaming over a non-empty folder must fail');
  assert.equal(await listFiles(dir), ['checkpoint.bin', 'taken/x']);
});

// ---------------------------------------------------------------- metrics

test('evaluatePredictions: against a hand-computed confusion matrix; a class without samples', () => {
  // true:      0 0 0 0 | 1 1 1 | 2 2 2 2 2
  // predicted: 0 0 1 2 | 1 1 0 | 2 2 2 1 2
  const labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2];
  const predicted = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2, 1, 2];
  const r = evaluatePredictions(labels, predicted, ['benign', 'malignant', 'normal']);
  assert.equal(r.confusion, [[2, 1, 1], [1, 2, 0], [0, 1, 4]]);
  assert.is(r.count, 12);
  assert.ok(Math.abs(r.accuracy - 8 / 12) < 1e-12);
  assert.equal(r.perClassRecall, { benign: 0.5, malignant: 2 / 3, normal: 0.8 });
  assert.ok(Math.abs(r.balancedAccuracy - (0.5 + 2 / 3 + 0.8) / 3) < 1e-12);
  // Class 2 never occurs as a label: its recall is NaN and balanced accuracy averages the other two.
  const missing = evaluatePredictions([0, 0, 1, 1], [0, 2, 1, 1], ['a', 'b', 'c']);
  assert.ok(Number.isNaN(missing.perClassRecall.c));
  assert.ok(Math.abs(missing.balancedAccuracy - 0.75) < 1e-12);
});

test('evaluatePredictions / meanStd: input checks and values', async () => {
  await assertThrows(() => evaluatePredictions([0, 1], [0], ['a', 'b']), /2 labels but 1 predictions/);
  await assertThrows(() => evaluatePredictions([0, 2], [0, 1], ['a', 'b']), /labels\[1\] is 2/, /\[0, 1\]/);
  await assertThrows(() => evaluatePredictions([0, 1], [0, 0.5], ['a', 'b']), /predicted\[1\] is 0\.5/);
  await assertThrows(() => evaluatePredictions([], [], ['a']), /no labels/);
  await assertThrows(() => evaluatePredictions([0], [0], []), /classes is empty/);
  const { mean, std } = meanStd([1, 2, 3, 4]);
  assert.is(mean, 2.5);
  assert.ok(Math.abs(std - Math.sqrt(5 / 3)) < 1e-12, `sample std ${std}`);
  assert.equal(meanStd([0.7]), { mean: 0.7, std: 0 });
  assert.throws(() => meanStd([]), /no values/);
});

function countColor(img: { rgba: Uint8Array }, [r, g, b]: number[]): number {
  let n = 0;
  for (let i = 0; i < img.rgba.length; i += 4) if (img.rgba[i] === r && img.rgba[i + 1] === g && img.rgba[i + 2] === b) n++;
  return n;
}

test('renderConfusionPng / renderCurvePng: sized RGBA pictures, shading follows recall, curves drawn in their colours', async () => {
  const perfect = renderConfusionPng(evaluatePredictions([0, 1, 2], [0, 1, 2], ['benign', 'malignant', 'normal']), 'perfect');
  assert.is(perfect.rgba.length, perfect.width * perfect.height * 4);
  const darkest = [8, 48, 107]; // a cell with 100% of its row
  const cellArea = countColor(perfect, darkest);
  assert.ok(cellArea > 3 * 40 * 40, `three fully shaded diagonal cells, got ${cellArea} pixels`);
  const wrong = renderConfusionPng(evaluatePredictions([0, 1, 2], [1, 2, 0], ['benign', 'malignant', 'normal']));
  assert.is(countColor(wrong, darkest), cellArea, 'the shading moves off the diagonal, same area');
  const halfAndHalf = renderConfusionPng(evaluatePredictions([0, 0, 1, 1], [0, 1, 0, 1], ['a', 'b']));
  assert.is(countColor(halfAndHalf, darkest), 0);
  // Text is drawn: a black title in the top rows.
  assert.ok(countColor({ rgba: perfect.rgba.subarray(0, perfect.width * 4 * 30) }, [0, 0, 0]) > 50);

  const curve = renderCurvePng([{ name: 'train', values: [1, 0.5, 0.25, NaN, 0.1] }, { name: 'val', values: [1.2, 0.9] }], 'loss');
  assert.is(curve.rgba.length, curve.width * curve.height * 4);
  assert.ok(countColor(curve, [31, 119, 180]) > 300, 'first series in blue');
  assert.ok(countColor(curve, [255, 127, 14]) > 200, 'second series in orange');
  await assertThrows(() => renderCurvePng([], 'x'), /no series/);
  await assertThrows(() => renderCurvePng([{ name: 'loss', values: [NaN] }], 'x'), /\[loss\] have no finite values/);
});

test('renderGroupedBarsPng: bar heights follow the means on the y range, empty cells draw nothing, bad input named', async () => {
  const blue = [31, 119, 180];
  const orange = [255, 127, 14];
  const chart = renderGroupedBarsPng(['5%', '100%'], [{ name: 'none', values: [[50], [100]] }, { name: 'attention', values: [[25, 75], []] }], 'acc');
  assert.is(chart.rgba.length, chart.width * chart.height * 4);
  // Plot 300 px high for 0–100, bars 32 px wide: blue 0.5·300·32 + 300·32, orange 0.5·300·32 (mean of 25, 75),
  // each plus a 14×14 legend swatch, less what the whiskers and seed dots paint over: under 3 %, and for
  // orange (std 35) also the 2-px whisker along the lower 35 % of the bar (2·106 px).
  const expectBlue = 150 * 32 + 300 * 32 + 14 * 14;
  const expectOrange = 150 * 32 + 14 * 14;
  const gotBlue = countColor(chart, blue);
  const gotOrange = countColor(chart, orange);
  assert.ok(gotBlue <= expectBlue && gotBlue > 0.97 * expectBlue, `blue ${gotBlue} px, expected about ${expectBlue}`);
  assert.ok(gotOrange <= expectOrange && gotOrange > 0.97 * expectOrange - 2 * 106, `orange ${gotOrange} px, expected about ${expectOrange}`);
  const scaled = renderGroupedBarsPng(['5%'], [{ name: 'none', values: [[50]] }], 'acc', { min: 40, max: 60 });
  assert.ok(Math.abs(countColor(scaled, blue) - (150 * 32 + 14 * 14)) < 0.03 * 150 * 32, '50 on a 40–60 axis: half height');
  await assertThrows(() => renderGroupedBarsPng(['a', 'b'], [{ name: 'none', values: [[1]] }], 'x'), /renderGroupedBarsPng: series 'none' has 1 groups of values, expected 2/);
  await assertThrows(() => renderGroupedBarsPng(['a'], [{ name: 'none', values: [[NaN]] }], 'x'), /series 'none' has a non-finite value NaN/);
  await assertThrows(() => renderGroupedBarsPng([], [], 'x'), /need at least one group and one series, got 0 and 0/);
});

// ---------------------------------------------------------------- progress bar

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } };
}

test('ProgressBar: TTY line format, throttled \\r redraws, final newline', () => {
  let now = 0;
  const { writes, stream } = fakeStream(true);
  const bar = new ProgressBar('train', 40, { stream, now: () => now });
  now = 3870; // 12 items in 3.87 s: 3.1 it/s, 28 left → 9 s
  bar.tick(12, 'loss 0.52');
  assert.equal(writes, ['\rtrain [######--------------] 12/40 3.1 it/s ETA 9s loss 0.52']);
  now += 50;
  bar.tick(); // within 100 ms of the last redraw: not drawn
  assert.is(writes.length, 1);
  now = 13000;
  bar.tick(20); // 33 in 13 s: 2.5 it/s, 7 left → 3 s
  assert.is(writes[1], '\rtrain [#################---] 33/40 2.5 it/s ETA 3s loss 0.52');
  bar.done();
  assert.is(writes[2], '\rtrain [#################---] 33/40 2.5 it/s ETA 3s loss 0.52\n');
  bar.done();
  assert.is(writes.length, 3);
});

test('ProgressBar: plain lines every tenth when not a TTY; no stream, no output', () => {
  let now = 0;
  const { writes, stream } = fakeStream(false);
  const bar = new ProgressBar('embed', 40, { stream, now: () => now });
  for (let i = 0; i < 40; i++) {
    now += 250;
    bar.tick();
  }
  bar.done();
  assert.is(writes.length, 11); // first tick, then 10%, 20%, …, 100%
  for (const w of writes) assert.ok(w.endsWith('\n') && !w.includes('\r'), JSON.stringify(w));
  assert.is(writes[10], 'embed [####################] 40/40 4.0 it/s ETA 0s\n');
  let clock = 0;
  const slow = new ProgressBar('encode', 3, { stream: fakeStream(true).stream, now: () => clock });
  clock += 5000;
  slow.tick(2); // 2 in 5 s: 2.5 s/it, 1 left → 3 s
  assert.is(slow.line(), 'encode [#############-------] 2/3 2.5 s/it ETA 3s');
  const short = fakeStream(false);
  const stopped = new ProgressBar('eval', 10, { stream: short.stream, now: () => now });
  stopped.tick(3);
  stopped.done();
  assert.equal(short.writes.length, 2, 'done() prints the final count when it fell short');
  new ProgressBar('quiet', 5, { stream: null }).tick();
  assert.equal([formatDuration(9.4), formatDuration(125), formatDuration(3720), formatDuration(NaN)], ['9s', '2m05s', '1h02m', '--']);
});

test('metrics.ts, charts.ts, stats.ts and progress.ts bundle for the browser (no Node built-ins)', async () => {
  const result = await build({
    entryPoints: [join(repoRoot, 'src/medfocus/metrics.ts'), join(repoRoot, 'src/render/charts.ts'), join(repoRoot, 'src/util/stats.ts'), join(repoRoot, 'src/util/progress.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    outdir: join(tmp, 'bundle'),
    logLevel: 'silent',
  });
  assert.is(result.errors.length, 0);
});

test.run();
