// Charts as RGBA images (a confusion matrix, a loss curve, grouped bars, a
// caption under a picture), drawn with a built-in 5×7 bitmap font so no
// canvas or font library is needed. No Node built-ins: runs in browsers too.

import { meanStd } from '../util/stats.js';
import { MASK_PALETTE } from './overlay.js';

export interface RgbaImage {
  rgba: Uint8Array;
  width: number;
  height: number;
}

type Color = readonly [number, number, number];

const WHITE: Color = [255, 255, 255];
const BLACK: Color = [0, 0, 0];
const GRID: Color = [220, 220, 220];
/** The overlays' mask palette, so a chart's series and a picture's masks share colours; six, repeating. */
const SERIES_COLORS: readonly Color[] = MASK_PALETTE.slice(0, 6);
/** Reference marks: dark, so they read apart from the bars' colours. */
const MARK_COLORS: Color[] = [
  [120, 0, 60],
  [90, 90, 90],
];

/**
 * 5×7 glyphs, one number per row, bit 4 the leftmost pixel. Letters are
 * upper case only; lower case is drawn upper case, anything else as '?'.
 */
const FONT: Record<string, number[]> = {
  ' ': [0, 0, 0, 0, 0, 0, 0],
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  A: [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
  F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
  H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
  L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
  N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
  R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
  T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
  X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
  Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c],
  ',': [0, 0, 0, 0, 0x0c, 0x04, 0x08],
  '-': [0, 0, 0, 0x1f, 0, 0, 0],
  _: [0, 0, 0, 0, 0, 0, 0x1f],
  ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
  '/': [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
  '%': [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '[': [0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e],
  ']': [0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e],
  '=': [0, 0, 0x1f, 0, 0x1f, 0, 0],
  '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
  '#': [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
  '?': [0x0e, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
};

const GLYPH_W = 5;
const GLYPH_H = 7;
/** Horizontal advance per character in font pixels (one column of spacing). */
const ADVANCE = GLYPH_W + 1;

/** Width in pixels of `text` drawn at `scale`. */
export function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
}

class Canvas implements RgbaImage {
  readonly rgba: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4).fill(255);
  }

  set(x: number, y: number, [r, g, b]: Color): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const k = (y * this.width + x) * 4;
    this.rgba[k] = r;
    this.rgba[k + 1] = g;
    this.rgba[k + 2] = b;
  }

  fillRect(x: number, y: number, w: number, h: number, color: Color): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++) for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.set(xx, yy, color);
  }

  /** Bresenham line, `thickness` pixels wide (square pen). */
  line(x0: number, y0: number, x1: number, y1: number, color: Color, thickness = 1): void {
    x0 = Math.round(x0);
    y0 = Math.round(y0);
    x1 = Math.round(x1);
    y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    const lo = -Math.floor((thickness - 1) / 2);
    for (let err = dx + dy; ; ) {
      for (let a = lo; a < lo + thickness; a++) for (let b = lo; b < lo + thickness; b++) this.set(x0 + a, y0 + b, color);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  /** Text with its top-left corner at (x, y). */
  text(text: string, x: number, y: number, scale: number, color: Color): void {
    [...text].forEach((ch, i) => {
      const glyph = FONT[ch] ?? FONT[ch.toUpperCase()] ?? FONT['?'];
      const left = x + i * ADVANCE * scale;
      for (let row = 0; row < GLYPH_H; row++) {
        for (let col = 0; col < GLYPH_W; col++) {
          if (glyph[row] & (1 << (GLYPH_W - 1 - col))) this.fillRect(left + col * scale, y + row * scale, scale, scale, color);
        }
      }
    });
  }

  textCentered(text: string, cx: number, y: number, scale: number, color: Color): void {
    this.text(text, cx - textWidth(text, scale) / 2, y, scale, color);
  }
}

/** At most `chars` characters; a cut name ends in '.'. */
function fit(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, Math.max(1, chars - 1))}.`;
}

/** White → dark blue (matplotlib's "Blues" end points and middle) for t in [0, 1]. */
function blues(t: number): Color {
  const stops: Color[] = [
    [247, 251, 255],
    [107, 174, 214],
    [8, 48, 107],
  ];
  const s = Math.max(0, Math.min(1, t)) * 2;
  const i = Math.min(1, Math.floor(s));
  const f = s - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f)) as unknown as Color;
}

/** Short number text: 3 significant digits, exponent form when very large or small. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

const TEXT = 2; // font scale for titles, counts and labels: 10×14-pixel glyphs
const LINE = (GLYPH_H + 3) * TEXT;

/**
 * The confusion matrix as a picture: rows are true classes, columns
 * predictions; each cell shows its count and row percentage, shaded by that
 * percentage (the class's recall on the diagonal). Accuracy, balanced
 * accuracy and the sample count are printed below.
 */
/** What the confusion chart shows of an evaluation (medfocus/metrics.ts EvaluationResult has it). */
export interface ConfusionSummary {
  classes: string[];
  /** confusion[true][predicted] = count. */
  confusion: number[][];
  accuracy: number;
  balancedAccuracy: number;
  count: number;
}

export function renderConfusionPng(result: ConfusionSummary, title = 'Confusion matrix'): RgbaImage {
  const { classes, confusion } = result;
  const n = classes.length;
  const nameChars = Math.min(14, Math.max(4, ...classes.map((c) => c.length)));
  const cell = Math.max(64, Math.min(12, nameChars) * ADVANCE * TEXT + 8);
  const margin = 12;
  const rowLabelW = nameChars * ADVANCE * TEXT + 8;
  const gridX = margin + rowLabelW;
  const gridY = margin + LINE * 3;
  const footer = LINE * 2;
  const width = Math.max(gridX + n * cell + margin, margin * 2 + textWidth(title, TEXT));
  const height = gridY + n * cell + footer + margin;
  const canvas = new Canvas(width, height);

  canvas.text(title, margin, margin, TEXT, BLACK);
  canvas.text('rows: true class, columns: predicted', margin, margin + LINE, 1, BLACK);
  classes.forEach((name, c) => {
    canvas.textCentered(fit(name, Math.floor((cell - 4) / (ADVANCE * TEXT))), gridX + c * cell + cell / 2, gridY - LINE, TEXT, BLACK);
    canvas.text(fit(name, nameChars), margin, gridY + c * cell + cell / 2 - (GLYPH_H * TEXT) / 2, TEXT, BLACK);
  });
  for (let t = 0; t < n; t++) {
    const support = confusion[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < n; p++) {
      const share = support > 0 ? confusion[t][p] / support : 0;
      const x = gridX + p * cell;
      const y = gridY + t * cell;
      canvas.fillRect(x, y, cell, cell, blues(share));
      const ink = share > 0.5 ? WHITE : BLACK;
      canvas.textCentered(String(confusion[t][p]), x + cell / 2, y + cell / 2 - GLYPH_H * TEXT + 2, TEXT, ink);
      if (support > 0) canvas.textCentered(`${Math.round(share * 100)}%`, x + cell / 2, y + cell / 2 + 4, 1, ink);
    }
  }
  // Cell borders.
  for (let i = 0; i <= n; i++) {
    canvas.line(gridX + i * cell, gridY, gridX + i * cell, gridY + n * cell, GRID);
    canvas.line(gridX, gridY + i * cell, gridX + n * cell, gridY + i * cell, GRID);
  }
  const summary = `acc ${formatNumber(result.accuracy)}  bal ${formatNumber(result.balancedAccuracy)}  n ${result.count}`;
  canvas.text(summary, margin, gridY + n * cell + LINE / 2, TEXT, BLACK);
  return canvas;
}

export interface CurveSeries {
  name: string;
  values: number[];
}

/**
 * Line plot of one or more series against their index (e.g. loss per step):
 * min / middle / max on the y axis, first and last index on the x axis, a
 * legend below. Non-finite values leave a gap.
 */
export function renderCurvePng(series: CurveSeries[], title: string): RgbaImage {
  if (!Array.isArray(series) || series.length === 0) throw new Error('renderCurvePng: no series to plot');
  const finite = series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)));
  if (finite.length === 0) throw new Error(`renderCurvePng: the series [${series.map((s) => s.name).join(', ')}] have no finite values`);
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi === lo) {
    const pad = Math.abs(lo) * 0.1 || 0.5;
    lo -= pad;
    hi += pad;
  }
  const steps = Math.max(...series.map((s) => s.values.length));
  const yLabels = [hi, (lo + hi) / 2, lo].map(formatNumber);
  const margin = 12;
  const left = margin + Math.max(...yLabels.map((l) => textWidth(l, TEXT))) + 8;
  const top = margin + LINE * 2;
  const plotW = 560;
  const plotH = 280;
  const legendRows = series.length;
  const width = Math.max(left + plotW + margin * 2, margin * 2 + textWidth(title, TEXT));
  const height = top + plotH + LINE * (2 + legendRows) + margin;
  const canvas = new Canvas(width, height);
  canvas.text(title, margin, margin, TEXT, BLACK);

  const xOf = (i: number) => left + (steps > 1 ? (i / (steps - 1)) * plotW : plotW / 2);
  const yOf = (v: number) => top + ((hi - v) / (hi - lo)) * plotH;
  yLabels.forEach((label, i) => {
    const y = top + (i * plotH) / 2;
    canvas.line(left, y, left + plotW, y, GRID);
    canvas.text(label, left - 8 - textWidth(label, TEXT), y - (GLYPH_H * TEXT) / 2, TEXT, BLACK);
  });
  canvas.line(left, top, left, top + plotH, BLACK);
  canvas.line(left, top + plotH, left + plotW, top + plotH, BLACK);
  canvas.text('0', left, top + plotH + 6, TEXT, BLACK);
  const last = String(Math.max(0, steps - 1));
  canvas.text(last, left + plotW - textWidth(last, TEXT), top + plotH + 6, TEXT, BLACK);

  series.forEach((s, k) => {
    const color = SERIES_COLORS[k % SERIES_COLORS.length];
    let previous: [number, number] | null = null;
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v)) {
        previous = null;
        return;
      }
      const point: [number, number] = [xOf(i), yOf(v)];
      if (previous) canvas.line(previous[0], previous[1], point[0], point[1], color, 2);
      else canvas.fillRect(point[0] - 1, point[1] - 1, 3, 3, color);
      previous = point;
    });
    const y = top + plotH + LINE * (2 + k) - 4;
    canvas.fillRect(left, y, GLYPH_H * TEXT, GLYPH_H * TEXT, color);
    canvas.text(s.name, left + GLYPH_H * TEXT + 8, y, TEXT, BLACK);
  });
  return canvas;
}

/**
 * An RGBA image with caption lines under it (scale-1 font, black on white),
 * as explanation pictures carry: what was predicted, the focus, and a legend.
 */
export function captionBelow(image: RgbaImage, lines: readonly string[]): RgbaImage {
  const scale = 2;
  const lineH = (GLYPH_H + 4) * scale;
  const pad = 6;
  const width = Math.max(image.width, ...lines.map((l) => textWidth(l, scale) + 2 * pad));
  const canvas = new Canvas(width, image.height + pad * 2 + lines.length * lineH);
  for (let y = 0; y < image.height; y++) canvas.rgba.set(image.rgba.subarray(4 * y * image.width, 4 * (y + 1) * image.width), 4 * y * width);
  lines.forEach((line, k) => canvas.text(line, pad, image.height + pad + k * lineH, scale, BLACK));
  return canvas;
}

/** A reference value drawn across one group, e.g. a paper's reported accuracy; marks of one kind share a colour and a legend line. */
export interface GroupMark {
  group: number;
  value: number;
  /** The legend's text, e.g. "paper: MedFocusCLIP". */
  kind: string;
  /** Names it in errors. */
  label: string;
}

export interface BarSeries {
  name: string;
  /** Per group: the values (one per seed, say), or an empty list where nothing was measured. */
  values: number[][];
}

/**
 * Grouped bar chart on a fixed y range (e.g. accuracy 0–100 %): per group one
 * bar per series at the mean of its values, a whisker of ± one standard
 * deviation (sample, as meanStd) and a dot per value; an optional dashed
 * reference line (chance level). A legend of the series below.
 */
export function renderGroupedBarsPng(
  groups: string[],
  series: BarSeries[],
  title: string,
  opts: { min?: number; max?: number; reference?: { label: string; value: number }; marks?: GroupMark[] } = {},
): RgbaImage {
  const { min = 0, max = 100, reference, marks = [] } = opts;
  marks.forEach((m) => {
    if (!Number.isInteger(m.group) || m.group < 0 || m.group >= groups.length || !Number.isFinite(m.value)) {
      throw new Error(`renderGroupedBarsPng: mark '${m.label}' is at group ${m.group} with value ${m.value}; expected a group index in [0, ${groups.length - 1}] and a finite value`);
    }
  });
  const markKinds = [...new Set(marks.map((m) => m.kind))];
  if (groups.length === 0 || series.length === 0) throw new Error(`renderGroupedBarsPng: need at least one group and one series, got ${groups.length} and ${series.length}`);
  if (!(max > min)) throw new Error(`renderGroupedBarsPng: need min < max, got ${min} and ${max}`);
  series.forEach((s) => {
    if (s.values.length !== groups.length) throw new Error(`renderGroupedBarsPng: series '${s.name}' has ${s.values.length} groups of values, expected ${groups.length}`);
    s.values.flat().forEach((v) => {
      if (!Number.isFinite(v)) throw new Error(`renderGroupedBarsPng: series '${s.name}' has a non-finite value ${v}`);
    });
  });
  const ticks = Array.from({ length: 6 }, (_, i) => min + ((max - min) * i) / 5);
  const margin = 12;
  const left = margin + Math.max(...ticks.map((t) => textWidth(formatNumber(t), TEXT))) + 8;
  const top = margin + LINE * 2;
  const bar = 36;
  const gap = 28;
  const groupW = Math.max(series.length * bar, ...groups.map((g) => textWidth(g, TEXT))) + gap;
  const plotW = Math.max(groups.length * groupW, 240);
  const plotH = 300;
  const width = Math.max(left + plotW + margin, margin * 2 + textWidth(title, TEXT));
  const height = top + plotH + LINE * (2 + series.length + markKinds.length) + margin;
  const canvas = new Canvas(width, height);
  canvas.text(title, margin, margin, TEXT, BLACK);
  const clamp = (v: number) => Math.max(min, Math.min(max, v));
  const yOf = (v: number) => top + ((max - clamp(v)) / (max - min)) * plotH;
  for (const t of ticks) {
    canvas.line(left, yOf(t), left + plotW, yOf(t), GRID);
    const label = formatNumber(t);
    canvas.text(label, left - 8 - textWidth(label, TEXT), yOf(t) - (GLYPH_H * TEXT) / 2, TEXT, BLACK);
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + (groupW - series.length * bar) / 2;
    series.forEach((s, si) => {
      const values = s.values[gi];
      if (values.length === 0) return;
      const color = SERIES_COLORS[si % SERIES_COLORS.length];
      const { mean, std } = meanStd(values);
      const x = x0 + si * bar;
      canvas.fillRect(x + 2, yOf(mean), bar - 4, yOf(min) - yOf(mean), color);
      const cx = x + bar / 2;
      canvas.line(cx, yOf(mean - std), cx, yOf(mean + std), BLACK, 2);
      canvas.line(cx - 6, yOf(mean + std), cx + 6, yOf(mean + std), BLACK, 2);
      canvas.line(cx - 6, yOf(mean - std), cx + 6, yOf(mean - std), BLACK, 2);
      // Seed dots spread over four x positions inside the bar, so equal values stay visible apart.
      values.forEach((v, k) => canvas.fillRect(x + 6 + ((k % 4) * (bar - 16)) / 3, yOf(v) - 2, 5, 5, BLACK));
    });
    canvas.textCentered(g, x0 + (series.length * bar) / 2, top + plotH + 6, TEXT, BLACK);
  });
  // Reference points (e.g. a paper's numbers): a thick line across the group, in the kind's colour.
  for (const m of marks) {
    const color = MARK_COLORS[markKinds.indexOf(m.kind) % MARK_COLORS.length];
    const x0 = left + m.group * groupW + gap / 4;
    const y = yOf(m.value);
    canvas.line(x0, y, x0 + groupW - gap / 2, y, color, 3);
  }
  if (reference) {
    const y = yOf(reference.value);
    for (let x = left; x < left + plotW; x += 12) canvas.line(x, y, Math.min(x + 6, left + plotW), y, BLACK, 2);
    canvas.text(reference.label, left + plotW - textWidth(reference.label, 1) - 2, y - GLYPH_H - 3, 1, BLACK);
  }
  canvas.line(left, top, left, top + plotH, BLACK);
  canvas.line(left, top + plotH, left + plotW, top + plotH, BLACK);
  series.forEach((s, k) => {
    const y = top + plotH + LINE * (2 + k) - 4;
    canvas.fillRect(left, y, GLYPH_H * TEXT, GLYPH_H * TEXT, SERIES_COLORS[k % SERIES_COLORS.length]);
    canvas.text(s.name, left + GLYPH_H * TEXT + 8, y, TEXT, BLACK);
  });
  markKinds.forEach((kind, k) => {
    const y = top + plotH + LINE * (2 + series.length + k) - 4;
    canvas.line(left, y + (GLYPH_H * TEXT) / 2, left + GLYPH_H * TEXT, y + (GLYPH_H * TEXT) / 2, MARK_COLORS[k % MARK_COLORS.length], 3);
    canvas.text(kind, left + GLYPH_H * TEXT + 8, y, TEXT, BLACK);
  });
  return canvas;
}
