// Synthetic ultrasound-like phantoms for end-to-end runs without real data:
// an ImageFolder dataset whose class is the SHAPE of one hypoechoic lesion
// (round / lobulated / spiculated, loosely the BI-RADS margin descriptors),
// with the ground-truth lesion masks laid out like busi3's. Everything else
// in the picture (tissue texture, speckle, depth attenuation, bright
// reflector lines and specks) is class-independent, so a classifier that
// looks at the lesion has an easier job than one that looks at the whole
// frame. Deterministic: each image has its own generator seeded from (seed,
// split, shape, index), so changing the counts does not change the images
// that remain.

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { writeFileAtomic } from '../util/atomic-write.js';
import { mixSeed, seededRandom, type Split } from './dataset.js';

export const PHANTOM_SHAPES = ['lobulated', 'round', 'spiculated'] as const;
export type PhantomShape = (typeof PHANTOM_SHAPES)[number];

const GENERATOR = 'medfocus phantom';
const GENERATOR_VERSION = 1;

export interface LesionParams {
  shape: PhantomShape;
  /** Centre, pixels. */
  cx: number;
  cy: number;
  /** Base radius, pixels; the outline reaches at most `extent`. */
  radius: number;
  extent: number;
  /** Radians. */
  rotation: number;
  /** Lesion echogenicity relative to the surrounding tissue (< 1: hypoechoic). */
  contrast: number;
}

export interface Phantom {
  size: number;
  /** size² gray levels, row-major. */
  gray: Uint8Array;
  /** size² bytes, 255 inside the lesion, 0 elsewhere. */
  mask: Uint8Array;
  lesion: LesionParams;
}

function uniform(random: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * random();
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Smooth value noise in [-1, 1]: a random (cells+1)² grid, smoothstep-interpolated. */
function valueNoise(size: number, cells: number, random: () => number): Float32Array {
  const stride = cells + 1;
  const grid = new Float32Array(stride * stride);
  for (let k = 0; k < grid.length; k++) grid[k] = random() * 2 - 1;
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    const gy = (y / size) * cells;
    const y0 = Math.floor(gy);
    const ty = (gy - y0) * (gy - y0) * (3 - 2 * (gy - y0)); // smoothstep
    for (let x = 0; x < size; x++) {
      const gx = (x / size) * cells;
      const x0 = Math.floor(gx);
      const tx = (gx - x0) * (gx - x0) * (3 - 2 * (gx - x0));
      const k = y0 * stride + x0;
      const top = grid[k] + (grid[k + 1] - grid[k]) * tx;
      const bottom = grid[k + stride] + (grid[k + stride + 1] - grid[k + stride]) * tx;
      out[y * size + x] = top + (bottom - top) * ty;
    }
  }
  return out;
}

/**
 * Fully developed speckle: a complex Gaussian field smoothed over 3×3 (the
 * resolution cell, so grains span a few pixels); its magnitude is Rayleigh
 * distributed. Scaled to mean 1, to multiply the echogenicity.
 */
function speckle(size: number, random: () => number): Float32Array {
  const re = new Float32Array(size * size);
  const im = new Float32Array(size * size);
  for (let k = 0; k < re.length; k++) re[k] = gaussian(random);
  for (let k = 0; k < im.length; k++) im[k] = gaussian(random);
  const out = new Float32Array(size * size);
  let sum = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0;
      let i = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = Math.min(size - 1, Math.max(0, y + dy));
        for (let dx = -1; dx <= 1; dx++) {
          const xx = Math.min(size - 1, Math.max(0, x + dx));
          r += re[yy * size + xx];
          i += im[yy * size + xx];
        }
      }
      const m = Math.sqrt(r * r + i * i);
      out[y * size + x] = m;
      sum += m;
    }
  }
  const mean = sum / (size * size);
  for (let k = 0; k < out.length; k++) out[k] /= mean;
  return out;
}

/** The lesion outline as a radius per angle (relative to the lesion's rotation), and its largest value. */
function lesionOutline(shape: PhantomShape, radius: number, random: () => number): { r: (phi: number) => number; extent: number } {
  if (shape === 'round') {
    // Ellipse, semi-axes radius and aspect·radius.
    const aspect = uniform(random, 0.6, 1);
    return { r: (phi) => (radius * aspect) / Math.sqrt((aspect * Math.cos(phi)) ** 2 + Math.sin(phi) ** 2), extent: radius };
  }
  if (shape === 'lobulated') {
    // A few broad lobes plus a smaller, faster undulation.
    const lobes = 3 + Math.floor(random() * 3);
    const a1 = uniform(random, 0.16, 0.26);
    const a2 = uniform(random, 0.06, 0.1);
    const psi = uniform(random, 0, 2 * Math.PI);
    return { r: (phi) => radius * (1 + a1 * Math.sin(lobes * phi) + a2 * Math.sin((2 * lobes + 1) * phi + psi)), extent: radius * (1 + a1 + a2) };
  }
  // Spiculated: a smaller core with tapering spikes radiating from it.
  const core = radius * 0.7;
  const count = 9 + Math.floor(random() * 7);
  const spikes = Array.from({ length: count }, (_, i) => ({
    angle: ((i + uniform(random, -0.3, 0.3)) / count) * 2 * Math.PI,
    length: radius * uniform(random, 0.5, 0.9),
    halfWidth: uniform(random, 0.08, 0.14),
  }));
  const extent = core + Math.max(...spikes.map((s) => s.length));
  return {
    r: (phi) => {
      let reach = 0;
      for (const s of spikes) {
        let d = Math.abs(phi - s.angle) % (2 * Math.PI);
        if (d > Math.PI) d = 2 * Math.PI - d;
        if (d < s.halfWidth) reach = Math.max(reach, s.length * (1 - d / s.halfWidth));
      }
      return core + reach;
    },
    extent,
  };
}

/**
 * How much of the speckle reaches the picture (1: fully developed). Spatial
 * compounding and log compression on a scanner soften it. With fully
 * developed speckle and fainter lesions no automatic SAM mask outlined the
 * lesion; with this depth, the darker lesions and MobileSAM at 512 the focus
 * covers it (coverage IoU 0.75, scripts/focus-quality.js).
 */
const SPECKLE_DEPTH = 0.5;

/** Renders one phantom of the given lesion shape (deterministic for a given `random` state). */
export function renderPhantom(shape: PhantomShape, size: number, random: () => number): Phantom {
  if (!PHANTOM_SHAPES.includes(shape)) throw new Error(`renderPhantom: unknown shape ${JSON.stringify(shape)}; expected one of ${PHANTOM_SHAPES.join(', ')}`);
  if (!Number.isInteger(size) || size < 32 || size > 4096) throw new Error(`renderPhantom: size must be an integer from 32 to 4096, got ${size}`);
  const n = size * size;

  // Sector (fan) field of view from a virtual apex above the image.
  const apexX = size / 2;
  const apexY = -0.15 * size;
  const halfAngle = uniform(random, 0.5, 0.62);
  const near = 0.22 * size;
  const far = 1.12 * size;
  const depthOf = (x: number, y: number) => Math.sqrt((x - apexX) ** 2 + (y - apexY) ** 2);
  const inFan = (x: number, y: number, margin = 0) => {
    const r = depthOf(x, y);
    // Angular margin as arc length at this depth.
    return r >= near + margin && r <= far - margin && Math.abs(Math.atan2(x - apexX, y - apexY)) * r <= halfAngle * r - margin &&
      x >= margin && x < size - margin && y >= margin && y < size - margin;
  };

  // Tissue: smooth background texture plus horizontal layering near the skin.
  const coarse = valueNoise(size, 5, random);
  const fine = valueNoise(size, 13, random);
  const layerPeriod = uniform(random, 0.12, 0.2) * size;
  const layerPhase = uniform(random, 0, 2 * Math.PI);
  const attenuation = uniform(random, 0.5, 1.1);
  const echo = new Float32Array(n);
  for (let y = 0; y < size; y++) {
    const layering = 0.1 * Math.sin((2 * Math.PI * y) / layerPeriod + layerPhase) * Math.exp(-y / (0.35 * size));
    for (let x = 0; x < size; x++) {
      const k = y * size + x;
      echo[k] = 0.55 + 0.17 * coarse[k] + 0.07 * fine[k] + layering;
    }
  }

  // The lesion, placed so that its whole outline (plus a margin) lies in the fan.
  const radius = uniform(random, 0.11, 0.16) * size;
  const rotation = uniform(random, 0, 2 * Math.PI);
  const contrast = uniform(random, 0.08, 0.25);
  const outline = lesionOutline(shape, radius, random);
  const extent = outline.extent;
  let cx = size / 2;
  let cy = size / 2;
  for (let attempt = 0; attempt < 200; attempt++) {
    const x = uniform(random, extent, size - extent);
    const y = uniform(random, extent, size - extent);
    let inside = true;
    for (let a = 0; a < 24 && inside; a++) {
      const t = (a / 24) * 2 * Math.PI;
      inside = inFan(x + (extent + 2) * Math.cos(t), y + (extent + 2) * Math.sin(t), 1);
    }
    if (inside) {
      cx = x;
      cy = y;
      break;
    }
  }

  // Class-independent bright distractors, kept clear of the lesion: specular
  // reflector lines (fascia, ducts) and point-like calcification specks.
  const clearance = extent + 4;
  const bright = new Float32Array(n);
  const lines = 2 + Math.floor(random() * 4);
  for (let l = 0; l < lines; l++) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const mx = uniform(random, 0, size);
      const my = uniform(random, 0.05 * size, size);
      const half = uniform(random, 0.05, 0.16) * size;
      const angle = uniform(random, -0.4, 0.4);
      const ux = Math.cos(angle);
      const uy = Math.sin(angle);
      // Distance from the lesion centre to the segment.
      const along = Math.max(-half, Math.min(half, (cx - mx) * ux + (cy - my) * uy));
      if (Math.hypot(mx + along * ux - cx, my + along * uy - cy) < clearance + 2) continue;
      const strength = uniform(random, 0.5, 0.9);
      const thickness = uniform(random, 0.6, 1.3);
      for (let s = -half; s <= half; s += 0.5) {
        const px = mx + s * ux;
        const py = my + s * uy;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) {
            const x = Math.round(px) + dx;
            const y = Math.round(py) + dy;
            if (x < 0 || y < 0 || x >= size || y >= size) continue;
            const d = Math.abs((x - mx) * -uy + (y - my) * ux);
            const v = strength * Math.exp(-(d * d) / (2 * thickness * thickness));
            bright[y * size + x] = Math.max(bright[y * size + x], v);
          }
        }
      }
      break;
    }
  }
  const specks = 3 + Math.floor(random() * 6);
  for (let s = 0; s < specks; s++) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const sx = uniform(random, 0, size);
      const sy = uniform(random, 0.05 * size, size);
      if (Math.hypot(sx - cx, sy - cy) < clearance + 3) continue;
      const strength = uniform(random, 0.6, 1.2);
      const sigma = uniform(random, 0.7, 1.6);
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const x = Math.round(sx) + dx;
          const y = Math.round(sy) + dy;
          if (x < 0 || y < 0 || x >= size || y >= size) continue;
          const v = strength * Math.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * sigma * sigma));
          bright[y * size + x] = Math.max(bright[y * size + x], v);
        }
      }
      break;
    }
  }

  const grain = speckle(size, random);
  const gray = new Uint8Array(n);
  const mask = new Uint8Array(n);
  // A round lesion has a crisp, well-defined margin; the others are a little softer.
  const edge = shape === 'round' ? 0.8 : 1.5;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const k = y * size + x;
      if (!inFan(x + 0.5, y + 0.5)) continue;
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const d = Math.sqrt(dx * dx + dy * dy);
      let lesionWeight = 0;
      if (d <= extent + edge) {
        const boundary = outline.r(Math.atan2(dy, dx) - rotation);
        if (d <= boundary) mask[k] = 255;
        lesionWeight = Math.max(0, Math.min(1, (boundary - d) / edge + 0.5));
      }
      const tissue = (echo[k] + bright[k]) * (1 - (1 - contrast) * lesionWeight);
      const depthGain = Math.exp((-attenuation * (depthOf(x + 0.5, y + 0.5) - near)) / size);
      gray[k] = Math.max(0, Math.min(255, Math.round(230 * tissue * depthGain * (1 - SPECKLE_DEPTH + SPECKLE_DEPTH * grain[k]))));
    }
  }
  return { size, gray, mask, lesion: { shape, cx, cy, radius, extent, rotation, contrast } };
}

/**
 * 8-bit grayscale PNG (colour type 0), as busi3 stores its masks. Not
 * encodePng: that one writes RGB and deflates every image five times (once
 * per scanline filter, in JS) to keep the smallest, ~30 ms for one noisy
 * 128² frame; zlib with one filter is ~20× faster here, and a third the size.
 */
function encodeGrayPng(gray: Uint8Array, width: number, height: number): Uint8Array {
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1); // filter byte 0: none
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const chunk = (type: string, data: Uint8Array) => {
    const out = Buffer.alloc(data.length + 12);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    out.set(data, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

export interface PhantomOptions {
  seed?: number;
  /** Image side, pixels. */
  size?: number;
  perClassTrain?: number;
  perClassTest?: number;
  /** Lesion shapes to generate (default all of PHANTOM_SHAPES). */
  classes?: PhantomShape[];
  /** Replace an earlier phantom dataset in outDir (its train/, test/, masks/ and manifest.json); anything else there is an error. */
  overwrite?: boolean;
}

export interface PhantomManifestItem {
  path: string;
  class: PhantomShape;
  split: Split;
  mask_path: string;
  lesion_fraction: number;
  lesion: Omit<LesionParams, 'shape'>;
}

export interface PhantomManifest {
  generator: string;
  version: number;
  seed: number;
  size: number;
  perClassTrain: number;
  perClassTest: number;
  classes: PhantomShape[];
  items: PhantomManifestItem[];
}

export interface PhantomDataset {
  root: string;
  classes: PhantomShape[];
  manifest: PhantomManifest;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/**
 * Writes outDir/{train,test}/<shape>/<id>.png, the lesion masks at
 * outDir/masks/<split>/<shape>/<id>.png (0 / 255) and outDir/manifest.json.
 */
export async function generatePhantomDataset(outDir: string, options: PhantomOptions = {}): Promise<PhantomDataset> {
  const { seed = 0, size = 128, perClassTrain = 40, perClassTest = 20, overwrite = false } = options;
  const classes = [...(options.classes ?? PHANTOM_SHAPES)].sort();
  if (!Number.isSafeInteger(seed)) throw new Error(`generatePhantomDataset: seed must be an integer, got ${seed}`);
  for (const [name, v] of [['perClassTrain', perClassTrain], ['perClassTest', perClassTest]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`generatePhantomDataset: ${name} must be an integer ≥ 1, got ${v}`);
  }
  if (classes.length === 0) throw new Error('generatePhantomDataset: classes is empty');
  for (const c of classes) {
    if (!PHANTOM_SHAPES.includes(c)) throw new Error(`generatePhantomDataset: unknown class ${JSON.stringify(c)}; the lesion shapes are ${PHANTOM_SHAPES.join(', ')}`);
  }
  if (new Set(classes).size !== classes.length) throw new Error(`generatePhantomDataset: classes [${classes.join(', ')}] has duplicates`);

  const manifestPath = join(outDir, 'manifest.json');
  if (existsSync(outDir) && (await readdir(outDir)).length > 0) {
    let previous: { generator?: string } | undefined;
    try {
      previous = JSON.parse(await readFile(manifestPath, 'utf8'));
    } catch {
      previous = undefined;
    }
    if (previous?.generator !== GENERATOR) throw new Error(`generatePhantomDataset: ${outDir} is not empty and holds no phantom dataset; choose an empty or new folder`);
    if (!overwrite) throw new Error(`generatePhantomDataset: ${outDir} already holds a phantom dataset; pass overwrite: true to replace it`);
    for (const sub of ['train', 'test', 'masks']) await rm(join(outDir, sub), { recursive: true, force: true });
  }

  const items: PhantomManifestItem[] = [];
  const splits: [Split, number][] = [
    ['train', perClassTrain],
    ['test', perClassTest],
  ];
  for (const [splitIndex, [split, count]] of splits.entries()) {
    for (const shape of classes) {
      const imageDir = join(outDir, split, shape);
      const maskDir = join(outDir, 'masks', split, shape);
      await mkdir(imageDir, { recursive: true });
      await mkdir(maskDir, { recursive: true });
      for (let i = 0; i < count; i++) {
        const phantom = renderPhantom(shape, size, seededRandom(mixSeed(seed, splitIndex, PHANTOM_SHAPES.indexOf(shape), i)));
        const id = `${shape}_${String(i).padStart(4, '0')}`;
        await writeFile(join(imageDir, `${id}.png`), encodeGrayPng(phantom.gray, size, size));
        await writeFile(join(maskDir, `${id}.png`), encodeGrayPng(phantom.mask, size, size));
        let lesionPixels = 0;
        for (const m of phantom.mask) lesionPixels += m > 0 ? 1 : 0;
        const { shape: _shape, ...lesion } = phantom.lesion;
        items.push({
          path: `${split}/${shape}/${id}.png`,
          class: shape,
          split,
          mask_path: `masks/${split}/${shape}/${id}.png`,
          lesion_fraction: round3(lesionPixels / (size * size)),
          lesion: Object.fromEntries(Object.entries(lesion).map(([k, v]) => [k, round3(v)])) as PhantomManifestItem['lesion'],
        });
      }
    }
  }
  const manifest: PhantomManifest = { generator: GENERATOR, version: GENERATOR_VERSION, seed, size, perClassTrain, perClassTest, classes, items };
  await writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 1)}\n`);
  return { root: outDir, classes, manifest };
}
