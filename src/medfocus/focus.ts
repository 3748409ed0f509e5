// Focus: how automatic SAM masks steer a classifier (MedFocusCLIP).
//
// - salientCoverage: the union of the best automatic masks (ranked by
//   predicted IoU × stability), leaving out background-sized masks (the whole
//   field of view), masks touching the frame's edge, and specks, as a
//   per-pixel map in [0, 1]. The masks come from focusMaskFilters, looser
//   than SAM's defaults; scripts/focus-quality.js measures the choice
//   against ground-truth lesions (BUSI, phantoms).
// - 'overlay' (the paper's method): the masks painted semi-transparently on
//   the image before the encoder (render/overlay.ts).
// - 'attention': the coverage becomes an additive attention bias on the
//   KEYS: a patch key j gets −strength·(1 − coverage of patch j), class and
//   prompt keys 0, so every query — the class token in particular — attends
//   less to patches outside the salient region. A patch fully inside gets 0
//   (unchanged), one fully outside −strength (its weight × e^−strength).
//
// Token order follows ClipModel with shallow VPT: [cls, p_1..p_P, patches
// row-major]; patch (gy, gx) covers pixels [gy·h/G, (gy+1)·h/G) × [gx·w/G, …)
// of the (square, already cropped) image the coverage was computed on.

import type { DecodedImage } from '../io/image.js';
import type { AutoMask } from '../models/sam/segmenter.js';
import { renderOverlay } from '../render/overlay.js';

/** Side of the square "work image" (the whole image stretched) that masks, coverage and overlays are computed in. */
export const WORK_SIDE = 256;

export type FocusMode = 'none' | 'overlay' | 'attention' | 'both';

/**
 * A run's focus: a FocusMode, or 'learned' (issue 18 §2, region-focus.ts): the
 * automatic masks become region tokens and the classifier learns attention
 * over them. Every mode trains on both backbones and exports a web head.
 */
export type RunFocusMode = FocusMode | 'learned';
export const RUN_FOCUS_MODES: readonly RunFocusMode[] = ['none', 'overlay', 'attention', 'both', 'learned'];

export const usesOverlay = (mode: RunFocusMode) => mode === 'overlay' || mode === 'both';
export const usesAttention = (mode: RunFocusMode) => mode === 'attention' || mode === 'both';

/**
 * The focus strength a run uses when none is given: attention/both damp a
 * key fully outside the salient union by e^−4; the learned focus damps a key
 * no region weighs by at most e^−2 — its weights are learned from a few
 * images and can be wrong, and at 4 it fell below no focus on covid3
 * (results/learned-focus-variants.md, chosen on held-out training images).
 */
export function focusStrength(focus: RunFocusMode, strength?: number): number {
  return strength ?? (focus === 'learned' ? 2 : 4);
}

export interface SalientCoverageOptions {
  /** Masks covering more than this fraction of the image are background (the field of view, the whole frame). Default 0.6. */
  maxAreaFraction?: number;
  /** Masks smaller than this fraction of the image are specks. Default 0.002. */
  minAreaFraction?: number;
  /** How many of the best remaining masks form the union. Default 3. */
  maxMasks?: number;
  /**
   * Leave out masks whose box reaches the frame's edge. Default true: the
   * black surround of an ultrasound sector, an X-ray's collimator edge and
   * the frame's corners are the most stable masks and would otherwise win.
   */
  dropBorder?: boolean;
}

/**
 * The focus' automatic-mask filters at SAM's native 1024² input, looser than
 * SAM's own defaults (see salientCoverage). SAM's 0.88 / 0.95 keep only the
 * whole-frame mask on BUSI ultrasound at every input side up to 1024
 * (scripts/focus-quality.js), and left the focus inactive on all 66 covid3
 * test X-rays at 256. Cache keys of masks name these values.
 */
export const FOCUS_MASK_FILTERS_1024 = { predIouThresh: 0.7, stabilityScoreThresh: 0.8, stabilityScoreOffset: 1 } as const;

/** focusMaskFilters at input side `samSize`: the stability offset is in logits at 1024² and shrinks with the side. */
export function focusMaskFilters(samSize: number) {
  const f = FOCUS_MASK_FILTERS_1024;
  return { predIouThresh: f.predIouThresh, stabilityScoreThresh: f.stabilityScoreThresh, stabilityScoreOffset: (f.stabilityScoreOffset * samSize) / 1024 };
}

/** salientCoverage's defaults. */
export const SALIENT_DEFAULTS: Required<SalientCoverageOptions> = { maxAreaFraction: 0.6, minAreaFraction: 0.002, maxMasks: 3, dropBorder: true };

/**
 * The masks salientCoverage may choose from: inside the area window and,
 * with dropBorder, clear of the frame's edge; ranked best first (predicted
 * IoU × stability).
 */
export function salientCandidates(masks: readonly AutoMask[], w: number, h: number, opts: SalientCoverageOptions = {}): AutoMask[] {
  const d = SALIENT_DEFAULTS;
  const { maxAreaFraction = d.maxAreaFraction, minAreaFraction = d.minAreaFraction, maxMasks = d.maxMasks, dropBorder = d.dropBorder } = opts;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new Error(`salientCoverage: size must be positive integers, got ${w}×${h}`);
  if (!(minAreaFraction >= 0 && minAreaFraction < maxAreaFraction && maxAreaFraction <= 1)) {
    throw new Error(`salientCoverage: need 0 <= minAreaFraction < maxAreaFraction <= 1, got ${minAreaFraction} and ${maxAreaFraction}`);
  }
  if (!Number.isInteger(maxMasks) || maxMasks < 1) throw new Error(`salientCoverage: maxMasks must be a positive integer, got ${maxMasks}`);
  masks.forEach((m, i) => {
    if (m.width !== w || m.height !== h || m.mask.length !== w * h) {
      throw new Error(`salientCoverage: mask ${i} is ${m.width}×${m.height} (${m.mask.length} bytes), expected ${w}×${h}`);
    }
  });
  const total = w * h;
  const touchesBorder = (m: AutoMask) => m.box[0] <= 0 || m.box[1] <= 0 || m.box[2] >= w - 1 || m.box[3] >= h - 1;
  return masks
    .filter((m) => m.area >= minAreaFraction * total && m.area <= maxAreaFraction * total && !(dropBorder && touchesBorder(m)))
    .sort((a, b) => b.predictedIou * b.stabilityScore - a.predictedIou * a.stabilityScore);
}

/**
 * Per-pixel salient coverage [h·w] in [0, 1] (1 inside the union of the best
 * masks). With no mask left after the filters there is no focus evidence and
 * the coverage is all ones: nothing gets down-weighted.
 */
export function salientCoverage(masks: readonly AutoMask[], w: number, h: number, opts: SalientCoverageOptions = {}): Float32Array {
  const chosen = salientCandidates(masks, w, h, opts).slice(0, opts.maxMasks ?? SALIENT_DEFAULTS.maxMasks);
  const total = w * h;
  const coverage = new Float32Array(total);
  if (chosen.length === 0) return coverage.fill(1);
  for (const m of chosen) for (let i = 0; i < total; i++) if (m.mask[i]) coverage[i] = 1;
  return coverage;
}

/** Mean coverage of each cell of a G×G grid over the image (area-weighted, cells may split pixels): [G²], row-major. */
export function patchCoverage(coverage: Float32Array, w: number, h: number, grid: number): Float32Array {
  if (coverage.length !== w * h) throw new Error(`patchCoverage: coverage has ${coverage.length} values, expected ${w}×${h} = ${w * h}`);
  if (!Number.isInteger(grid) || grid < 1) throw new Error(`patchCoverage: grid must be a positive integer, got ${grid}`);
  // Each axis: the overlap of pixel [p, p+1) with cell [c·n/G, (c+1)·n/G), in pixel units.
  const weights = (n: number) => {
    const rows: Array<Array<[number, number]>> = [];
    for (let c = 0; c < grid; c++) {
      const lo = (c * n) / grid;
      const hi = ((c + 1) * n) / grid;
      const row: Array<[number, number]> = [];
      for (let p = Math.floor(lo); p < Math.ceil(hi); p++) {
        const overlap = Math.min(hi, p + 1) - Math.max(lo, p);
        if (overlap > 0) row.push([p, overlap]);
      }
      rows.push(row);
    }
    return rows;
  };
  const wx = weights(w);
  const wy = weights(h);
  const out = new Float32Array(grid * grid);
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      let sum = 0;
      let area = 0;
      for (const [y, fy] of wy[gy]) {
        for (const [x, fx] of wx[gx]) {
          sum += coverage[y * w + x] * fy * fx;
          area += fy * fx;
        }
      }
      out[gy * grid + gx] = sum / area;
    }
  }
  return out;
}

function checkStrength(op: string, strength: number): void {
  if (typeof strength !== 'number' || !Number.isFinite(strength) || strength < 0) throw new Error(`${op}: strength must be a finite number >= 0, got ${strength}`);
}

/** The additive key bias of each patch: −strength·(1 − patch coverage), [G²]. */
export function patchKeyBias(coverage: Float32Array, w: number, h: number, grid: number, strength: number): Float32Array {
  checkStrength('patchKeyBias', strength);
  const cells = patchCoverage(coverage, w, h, grid);
  return cells.map((c) => -strength * (1 - c));
}

/** The paper's overlay: every automatic mask painted semi-transparently (largest first, so small ones stay visible). */
export function focusOverlay(image: DecodedImage, masks: ReadonlyArray<Pick<AutoMask, 'mask' | 'area'>>, alpha: number): DecodedImage {
  const ordered = [...masks].sort((a, b) => b.area - a.area);
  return renderOverlay(image, ordered.map((m) => ({ mask: m.mask })), { alpha });
}

/**
 * RGBA8 resize to w×h: a box filter over each output pixel's footprint when
 * shrinking (every source pixel counts), bilinear when enlarging.
 */
export function resizeRgba(image: { width: number; height: number; data: Uint8Array }, w: number, h: number): DecodedImage {
  const { width: sw, height: sh, data } = image;
  const out = new Uint8Array(w * h * 4);
  const axis = (src: number, dst: number) => {
    // Per output index: source indices and weights (normalised).
    const taps: Array<Array<[number, number]>> = [];
    for (let o = 0; o < dst; o++) {
      const row: Array<[number, number]> = [];
      if (src >= dst) {
        const lo = (o * src) / dst;
        const hi = ((o + 1) * src) / dst;
        for (let p = Math.floor(lo); p < Math.ceil(hi); p++) {
          const wgt = Math.min(hi, p + 1) - Math.max(lo, p);
          if (wgt > 0) row.push([p, wgt / (hi - lo)]);
        }
      } else {
        const x = Math.min(Math.max((o + 0.5) * (src / dst) - 0.5, 0), src - 1);
        const x0 = Math.floor(x);
        const x1 = Math.min(x0 + 1, src - 1);
        row.push([x0, 1 - (x - x0)]);
        if (x1 !== x0) row.push([x1, x - x0]);
      }
      taps.push(row);
    }
    return taps;
  };
  const tx = axis(sw, w);
  const ty = axis(sh, h);
  const acc = new Float64Array(4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      acc.fill(0);
      for (const [sy, wy] of ty[y]) {
        for (const [sx, wx] of tx[x]) {
          const at = (sy * sw + sx) * 4;
          const wgt = wy * wx;
          for (let c = 0; c < 4; c++) acc[c] += data[at + c] * wgt;
        }
      }
      for (let c = 0; c < 4; c++) out[(y * w + x) * 4 + c] = Math.min(255, Math.max(0, Math.round(acc[c])));
    }
  }
  return { width: w, height: h, data: out, channels: 3 };
}

/** Serialises automatic masks for the disk cache: a JSON header (sizes, scores, boxes) and the masks bit-packed. */
export function encodeMasks(masks: readonly AutoMask[], w: number, h: number): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ w, h, masks: masks.map((m) => ({ area: m.area, box: m.box, predictedIou: m.predictedIou, stabilityScore: m.stabilityScore, point: m.point })) }),
  );
  const perMask = Math.ceil((w * h) / 8);
  const out = new Uint8Array(4 + header.length + perMask * masks.length);
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 4);
  masks.forEach((m, k) => {
    if (m.mask.length !== w * h) throw new Error(`encodeMasks: mask ${k} has ${m.mask.length} pixels, expected ${w}×${h}`);
    const base = 4 + header.length + k * perMask;
    for (let i = 0; i < m.mask.length; i++) if (m.mask[i]) out[base + (i >> 3)] |= 1 << (i & 7);
  });
  return out;
}

export function decodeMasks(bytes: Uint8Array): { masks: AutoMask[]; width: number; height: number } {
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + len))) as {
    w: number;
    h: number;
    masks: Array<Pick<AutoMask, 'area' | 'box' | 'predictedIou' | 'stabilityScore' | 'point'>>;
  };
  const { w, h } = header;
  const perMask = Math.ceil((w * h) / 8);
  const masks = header.masks.map((m, k) => {
    const base = 4 + len + k * perMask;
    const mask = new Uint8Array(w * h);
    for (let i = 0; i < mask.length; i++) mask[i] = (bytes[base + (i >> 3)] >> (i & 7)) & 1;
    return { ...m, mask, width: w, height: h };
  });
  return { masks, width: w, height: h };
}
