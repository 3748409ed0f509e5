// ImageFolder datasets on disk (DIR/{train,test}/<class>/*.{png,jpg,jpeg}, the
// torchvision layout; loadSplits: both splits, same classes), seeded
// stratified few-shot subsets and per-class caps, and decoding with per-file
// failure reports. Class order is torchvision's: sorted folder names.

import { readdir, realpath, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { decodeImage, type DecodedImage } from '../io/image.js';
import { readRegularFile } from '../io/node-files.js';
import { PythonRandom } from '../util/python-random.js';

export type Split = 'train' | 'test';

export interface DatasetItem {
  path: string;
  /** Index into `classes`. */
  label: number;
}

export interface ImageFolder {
  root: string;
  split: Split;
  /** Sorted folder names; a label indexes this list. */
  classes: string[];
  /** Sorted by class, then by path within the class. */
  items: DatasetItem[];
  /**
   * What under the split is skipped: files that are not images by extension
   * (README, .DS_Store, masks in the wrong place…), entries that are not
   * regular files (pipes, devices, broken links), and a folder or file reached
   * a second time through a link (with the reason).
   */
  ignored: string[];
}

/** Most images one class folder may hold (a link to a huge tree must not be listed forever). */
export const MAX_IMAGES_PER_CLASS = 200_000;

const IMAGE_EXTENSION = /\.(png|jpe?g)$/i;

/** Code-unit order, like Python's sorted() on ASCII names (localeCompare would depend on the locale). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Files under `dir`, recursively (torchvision walks class folders too), in
 * name order. Links are followed, but every folder and file is visited once
 * by its real path (`seen`), so a link back up (`loop -> .`, `up -> ..`)
 * cannot list an image twice or recurse without end; entries that are not
 * regular files (pipes, devices, sockets, broken links) go to `ignored`.
 */
async function walkFiles(dir: string, seen: Set<string>, ignored: string[], out: string[], limit: { count: number; max: number; what: string }): Promise<void> {
  for (const name of (await readdir(dir)).sort(byName)) {
    const path = join(dir, name);
    let st;
    let real;
    try {
      st = await stat(path);
      real = await realpath(path);
    } catch (e) {
      ignored.push(`${path} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'}: a broken link?)`);
      continue;
    }
    if (seen.has(real)) {
      ignored.push(`${path} (already listed as ${real})`);
      continue;
    }
    seen.add(real);
    if (st.isDirectory()) await walkFiles(path, seen, ignored, out, limit);
    else if (!st.isFile()) ignored.push(`${path} (not a regular file)`);
    else if (!IMAGE_EXTENSION.test(path)) ignored.push(path);
    else {
      if (++limit.count > limit.max) throw new Error(`loadImageFolder: ${limit.what} holds more than ${limit.max} images (the limit per class); is a link pointing at a larger tree?`);
      out.push(path);
    }
  }
}

/** Lists `<root>/<split>/<class>/…` images. Throws, naming the folder, when the split or a class folder has no images. */
export async function loadImageFolder(root: string, split: Split, options: { maxImagesPerClass?: number } = {}): Promise<ImageFolder> {
  const maxImagesPerClass = options.maxImagesPerClass ?? MAX_IMAGES_PER_CLASS;
  if (split !== 'train' && split !== 'test') throw new Error(`loadImageFolder: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  if (!(await isDirectory(root))) throw new Error(`loadImageFolder: dataset folder ${root} does not exist or is not a folder`);
  const splitDir = join(root, split);
  if (!(await isDirectory(splitDir))) {
    throw new Error(`loadImageFolder: ${splitDir} is missing; expected the layout ${root}/{train,test}/<class>/*.{png,jpg,jpeg}`);
  }
  const classes: string[] = [];
  const ignored: string[] = [];
  for (const name of (await readdir(splitDir)).sort(byName)) {
    const path = join(splitDir, name);
    if (await isDirectory(path)) classes.push(name);
    else ignored.push(path);
  }
  if (classes.length === 0) throw new Error(`loadImageFolder: ${splitDir} has no class folders; expected ${splitDir}/<class>/*.{png,jpg,jpeg}`);
  const items: DatasetItem[] = [];
  // One set for the whole split: an image reached from two class folders is listed once, in the first.
  const seen = new Set<string>([await realpath(splitDir)]);
  for (let label = 0; label < classes.length; label++) {
    const classDir = join(splitDir, classes[label]);
    const paths: string[] = [];
    seen.add(await realpath(classDir));
    await walkFiles(classDir, seen, ignored, paths, { count: 0, max: maxImagesPerClass, what: `class folder ${classDir}` });
    for (const path of paths) items.push({ path, label });
    const count = paths.length;
    if (count === 0) throw new Error(`loadImageFolder: class folder ${classDir} (class '${classes[label]}') has no .png/.jpg/.jpeg images`);
  }
  return { root, split, classes, items, ignored };
}

/** Throws unless both splits have exactly the same classes (so labels mean the same thing in both). */
export function checkSplits(train: ImageFolder, test: ImageFolder): void {
  const describe = (f: ImageFolder) => `${join(f.root, f.split)} has [${f.classes.join(', ')}]`;
  const onlyTrain = train.classes.filter((c) => !test.classes.includes(c));
  const onlyTest = test.classes.filter((c) => !train.classes.includes(c));
  const problems: string[] = [];
  if (onlyTrain.length > 0) problems.push(`class${onlyTrain.length > 1 ? 'es' : ''} ${onlyTrain.map((c) => `'${c}'`).join(', ')} in ${train.split} but not in ${test.split}`);
  if (onlyTest.length > 0) problems.push(`class${onlyTest.length > 1 ? 'es' : ''} ${onlyTest.map((c) => `'${c}'`).join(', ')} in ${test.split} but not in ${train.split}`);
  if (problems.length > 0) throw new Error(`checkSplits: ${problems.join('; ')} (${describe(train)}, ${describe(test)})`);
}

/** Both splits of the dataset at `data`, checked to hold the same classes (checkSplits). */
export async function loadSplits(data: string): Promise<{ train: ImageFolder; test: ImageFolder }> {
  const train = await loadImageFolder(data, 'train');
  const test = await loadImageFolder(data, 'test');
  checkSplits(train, test);
  return { train, test };
}

export { mixSeed, seededRandom } from '../util/random.js';

/**
 * The few-shot subset of ../shared/datasets/README.md, image for image: per
 * class (in name order) the class's paths sorted, shuffled by Python's
 * `random.Random(f'{seed}:{class}')` (src/util/python-random.ts), and the
 * first max(1, int(fraction·n + 0.5)) kept. The shuffle depends only on the
 * seed, the class name and its paths, so the subsets are nested (5 % ⊂ 10 %
 * for one seed). `classes[label]` names each label (the ImageFolder's class
 * folders). The result keeps the input order.
 */
export function stratifiedSample<T extends DatasetItem>(items: T[], fraction: number, seed: number, classes: readonly string[]): T[] {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction <= 0 || fraction > 1) {
    throw new Error(`stratifiedSample: fraction must be a number in (0, 1], got ${fraction}`);
  }
  if (!Number.isSafeInteger(seed)) throw new Error(`stratifiedSample: seed must be an integer, got ${seed}`);
  const byLabel = new Map<number, T[]>();
  for (const item of items) {
    if (!Number.isInteger(item.label) || item.label < 0 || item.label >= classes.length) {
      throw new Error(`stratifiedSample: item ${item.path} has label ${item.label}; expected an integer in [0, ${classes.length - 1}] (one per class name)`);
    }
    const list = byLabel.get(item.label) ?? [];
    list.push(item);
    byLabel.set(item.label, list);
  }
  const chosen = new Set<T>();
  for (const [label, list] of byLabel) {
    // Sorted by path (code units, as Python sorts the manifest's paths: one class shares the prefix), so the subset does not depend on the input order.
    const order = new PythonRandom(`${seed}:${classes[label]}`).shuffle([...list].sort((a, b) => byName(a.path, b.path)));
    const k = Math.max(1, Math.floor(fraction * order.length + 0.5));
    for (const item of order.slice(0, k)) chosen.add(item);
  }
  return items.filter((item) => chosen.has(item));
}

/** The seed of the per-class caps: independent of the protocol's seeds, so every run sees the same capped pool. */
const CAP_SEED = 0xca9;

/** At most `n` items per class (undefined: all), chosen by a seeded stratified draw; order kept. */
export function capPerClass<T extends DatasetItem>(items: T[], classes: readonly string[], n: number | undefined): T[] {
  if (n === undefined) return items;
  const kept = new Set<T>();
  for (const label of new Set(items.map((it) => it.label))) {
    const list = items.filter((it) => it.label === label);
    for (const it of stratifiedSample(list, Math.min(1, n / list.length), CAP_SEED, classes)) kept.add(it);
  }
  return items.filter((it) => kept.has(it));
}

export interface LoadedImage extends DatasetItem {
  image: DecodedImage;
}

export interface LoadFailure {
  path: string;
  error: string;
}

export interface LoadImagesOptions {
  /** Called after each file, decoded or not. */
  onProgress?: (done: number, total: number, path: string) => void;
  /** Called for each file that cannot be read or decoded; default: a warning on the console naming the file. */
  onError?: (path: string, error: Error) => void;
  /** Paths are shown relative to this folder in the default warning. */
  root?: string;
}

export interface LoadedImages<T extends DatasetItem = DatasetItem> {
  /** The decoded items, in input order; each keeps the item's own fields. */
  images: (T & LoadedImage)[];
  /** Every file that could not be read or decoded, with the reason; such files are not in `images`. */
  failures: LoadFailure[];
}

/** Reads and decodes each item (src/io/image.ts). A failing file is reported and listed in `failures`, never dropped silently. */
export async function loadImages<T extends DatasetItem>(items: T[], options: LoadImagesOptions = {}): Promise<LoadedImages<T>> {
  const onError = options.onError ?? ((path: string, error: Error) => console.warn(`loadImages: skipping ${options.root ? relative(options.root, path) : path}: ${error.message}`));
  const images: (T & LoadedImage)[] = [];
  const failures: LoadFailure[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    try {
      const image = decodeImage(await readRegularFile(item.path), item.path);
      images.push({ ...item, image });
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      failures.push({ path: item.path, error: error.message });
      onError(item.path, error);
    }
    options.onProgress?.(i + 1, items.length, item.path);
  }
  return { images, failures };
}
