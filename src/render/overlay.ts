// Visualising masks and heat maps on RGBA8 images (CPU, no Node built-ins:
// runs in browsers too). Masks are painted as SAM's show_anns does: each a
// semi-transparent colour over the image, later masks over earlier ones.
// Write the result with encodePng from src/io/image.ts.

import type { DecodedImage } from '../io/image.js';
import { seededRandom } from '../util/random.js';

export type Rgb = readonly [number, number, number];

/** Distinct colours for consecutive masks (Tableau 10, then its lighter tints). */
export const MASK_PALETTE: readonly Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
  [174, 199, 232],
  [255, 187, 120],
  [152, 223, 138],
  [255, 152, 150],
  [197, 176, 213],
  [196, 156, 148],
  [247, 182, 210],
  [199, 199, 199],
  [219, 219, 141],
  [158, 218, 229],
];

export interface OverlayMask {
  /** One byte per pixel of the image, non-zero inside. */
  mask: Uint8Array;
  color?: Rgb;
}

export interface OverlayOptions {
  /** Opacity of the mask colour (default 0.5). */
  alpha?: number;
  /** Also draw each mask's contour (its pixels with a 4-neighbour outside the mask or the image) in its opaque colour. */
  outline?: boolean;
  /** Colours for masks without one: MASK_PALETTE in order when absent, else random colours from this seed. */
  seed?: number;
}

export interface HeatmapOptions {
  /** Opacity of the colour map (default 0.5). */
  alpha?: number;
  colormap?: 'jet' | 'turbo';
  /** Value mapped to the colour map's start (default: the smallest value). */
  min?: number;
  /** Value mapped to the colour map's end (default: the largest value). */
  max?: number;
}

function checkImage(op: string, image: DecodedImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${op}: image width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 4) {
    throw new Error(`${op}: a ${width}×${height} image needs ${width * height * 4} RGBA8 bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`);
  }
}

function checkAlpha(op: string, alpha: number): void {
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`${op}: alpha must be in [0, 1], got ${alpha}`);
}

/** mulberry32, so a seed gives the same colours everywhere. */
function seededColors(seed: number): () => Rgb {
  const next = seededRandom(seed);
  return () => [Math.floor(next() * 256), Math.floor(next() * 256), Math.floor(next() * 256)];
}

/** out = round((1 − α)·base + α·color) per channel; alpha channel left as is. */
function blendPixel(data: Uint8Array, at: number, color: readonly number[], alpha: number): void {
  for (let c = 0; c < 3; c++) data[at + c] = Math.round((1 - alpha) * data[at + c] + alpha * color[c]);
}

/** The image with each mask painted over it, in order (draw large masks first so small ones stay visible). */
export function renderOverlay(image: DecodedImage, masks: readonly OverlayMask[], opts: OverlayOptions = {}): DecodedImage {
  const op = 'renderOverlay';
  checkImage(op, image);
  const alpha = opts.alpha ?? 0.5;
  checkAlpha(op, alpha);
  const { width, height } = image;
  const randomColor = opts.seed === undefined ? undefined : seededColors(opts.seed);
  const data = image.data.slice();
  masks.forEach(({ mask, color }, k) => {
    if (!(mask instanceof Uint8Array) || mask.length !== width * height) {
      throw new Error(`${op}: masks[${k}] must be a Uint8Array of ${width}·${height} = ${width * height} bytes, got ${mask instanceof Uint8Array ? mask.length : typeof mask}`);
    }
    const fallback = randomColor ? randomColor() : MASK_PALETTE[k % MASK_PALETTE.length];
    const rgb = color ?? fallback;
    if (rgb.length !== 3 || !rgb.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new Error(`${op}: masks[${k}].color must be [r, g, b] integers 0–255, got ${JSON.stringify(rgb)}`);
    }
    for (let i = 0; i < mask.length; i++) if (mask[i]) blendPixel(data, 4 * i, rgb, alpha);
    if (!opts.outline) return;
    const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] !== 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!inside(x, y)) continue;
        if (inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1)) continue;
        data.set(rgb, 4 * (y * width + x));
      }
    }
  });
  return { width, height, data, channels: image.channels === 4 ? 4 : 3 };
}

/** Jet: piecewise-linear blue → cyan → yellow → red (matplotlib's 'jet'), t in [0, 1] → 0–255. */
function jet(t: number): Rgb {
  const ramp = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
  return [ramp(1.5 - Math.abs(4 * t - 3)), ramp(1.5 - Math.abs(4 * t - 2)), ramp(1.5 - Math.abs(4 * t - 1))];
}

/** Turbo, by Google's published polynomial approximation (Mikhailov, Du, 2019), t in [0, 1] → 0–255. */
function turbo(t: number): Rgb {
  const t2 = t * t;
  const t3 = t2 * t;
  const t4 = t2 * t2;
  const t5 = t4 * t;
  const channel = (c: readonly number[]) => Math.round(255 * Math.min(1, Math.max(0, c[0] + c[1] * t + c[2] * t2 + c[3] * t3 + c[4] * t4 + c[5] * t5)));
  return [
    channel([0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943]),
    channel([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604]),
    channel([0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]),
  ];
}

export const COLORMAPS: Record<NonNullable<HeatmapOptions['colormap']>, (t: number) => Rgb> = { jet, turbo };

/**
 * A heat map (values [h, w] row-major, e.g. an attention map on a patch grid)
 * stretched bilinearly over the image (pixel centres aligned, as
 * F.interpolate with align_corners = False), normalised to [min, max], colour
 * mapped and blended on the image with opacity alpha.
 */
export function renderHeatmap(image: DecodedImage, values: Float32Array, w: number, h: number, opts: HeatmapOptions = {}): DecodedImage {
  const op = 'renderHeatmap';
  checkImage(op, image);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new Error(`${op}: heat map size must be positive integers, got ${w}×${h}`);
  if (!(values instanceof Float32Array) || values.length !== w * h) {
    throw new Error(`${op}: values must be a Float32Array of ${w}·${h} = ${w * h}, got ${values instanceof Float32Array ? values.length : typeof values}`);
  }
  const alpha = opts.alpha ?? 0.5;
  checkAlpha(op, alpha);
  const colormapName = opts.colormap ?? 'jet';
  const colormap = COLORMAPS[colormapName];
  if (!colormap) throw new Error(`${op}: colormap must be 'jet' or 'turbo', got '${String(colormapName)}'`);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) throw new Error(`${op}: values must be finite, got ${v}`);
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  lo = opts.min ?? lo;
  hi = opts.max ?? hi;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) throw new Error(`${op}: min ${lo} and max ${hi} must be finite with min ≤ max`);
  const span = hi - lo;
  const { width, height } = image;
  const data = image.data.slice();
  const axisTaps = (dst: number, len: number, outLen: number): [number, number, number] => {
    const src = Math.max((len / outLen) * (dst + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), len - 1);
    return [i0, Math.min(i0 + 1, len - 1), Math.min(1, src - i0)];
  };
  const columns = Array.from({ length: width }, (_, x) => axisTaps(x, w, width));
  for (let y = 0; y < height; y++) {
    const [y0, y1, ly] = axisTaps(y, h, height);
    for (let x = 0; x < width; x++) {
      const [x0, x1, lx] = columns[x];
      const top = (1 - lx) * values[y0 * w + x0] + lx * values[y0 * w + x1];
      const bottom = (1 - lx) * values[y1 * w + x0] + lx * values[y1 * w + x1];
      const v = (1 - ly) * top + ly * bottom;
      const t = span > 0 ? Math.min(1, Math.max(0, (v - lo) / span)) : 0;
      blendPixel(data, 4 * (y * width + x), colormap(t), alpha);
    }
  }
  return { width, height, data, channels: image.channels === 4 ? 4 : 3 };
}

/**
 * Images placed left to right, top-aligned, `gap` pixels apart, on an opaque
 * background (default white) that also fills below shorter images.
 */
export function sideBySide(images: readonly DecodedImage[], gap = 4, background: Rgb = [255, 255, 255]): DecodedImage {
  const op = 'sideBySide';
  if (images.length === 0) throw new Error(`${op}: needs at least one image, got none`);
  if (!Number.isInteger(gap) || gap < 0) throw new Error(`${op}: gap must be a non-negative integer, got ${gap}`);
  images.forEach((im, k) => checkImage(`${op}: images[${k}]`, im));
  const width = images.reduce((s, im) => s + im.width, 0) + gap * (images.length - 1);
  const height = Math.max(...images.map((im) => im.height));
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([background[0], background[1], background[2], 255], 4 * i);
  let left = 0;
  for (const im of images) {
    for (let y = 0; y < im.height; y++) data.set(im.data.subarray(4 * y * im.width, 4 * (y + 1) * im.width), 4 * (y * width + left));
    left += im.width + gap;
  }
  return { width, height, data, channels: images.some((im) => im.channels === 4) ? 4 : 3 };
}
