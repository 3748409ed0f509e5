// The protocol's report, rewritten after every run: protocol.md (top-1,
// balanced accuracy and macro-F1 per train fraction × focus mode, mean ± std
// over seeds; the paired difference of each focus mode against none, by
// seed; the command that reruns any cell) and protocol.png (the top-1 table
// as bars, with the paper's 5 % numbers). ProtocolRequest and ProtocolCell
// are what protocol.ts runs and records.

import { basename, isAbsolute, relative, resolve } from 'node:path';
import { encodePng } from '../io/image.js';
import { renderGroupedBarsPng } from '../render/charts.js';
import { meanStd, pairedDifference } from '../util/stats.js';
import { focusStrength, type RunFocusMode } from './focus.js';
import type { TrainSettings } from './settings.js';

export interface ProtocolRequest {
  data: string;
  out: string;
  fractions: number[];
  seeds: number[];
  modes: RunFocusMode[];
  settings: TrainSettings;
  /** Caps per class (a fixed seeded choice), for data sets too big for the time at hand; the table says so. */
  trainPerClass?: number;
  testPerClass?: number;
  /** The data set's name in the chart's title (default: the data folder's name). */
  name?: string;
}

export interface ProtocolCell {
  fraction: number;
  mode: RunFocusMode;
  /** Top-1 accuracy per finished seed, in seed order. */
  accuracies: number[];
  /** Balanced accuracy (mean per-class recall) and macro-F1 per finished seed, in seed order. */
  balancedAccuracies: number[];
  macroF1s: number[];
  seeds: number[];
  trainImages: number;
  mean: number;
  std: number;
  /** Test images on which the focus did anything, "k/n" (the same for every seed: masks depend on the image only). */
  focusActive?: string;
}

/**
 * The flags that give `st` (the defaults too, so the command stays exact if a
 * default changes; the focus strength only where one was given, since its
 * default differs by focus mode and every run's config.json records it).
 */
function settingsFlags(st: TrainSettings): string {
  const flags = [`--backbone ${st.backbone}`, `--epochs ${st.epochs}`, `--lr ${st.lr}`, `--weight-decay ${st.weightDecay}`, `--batch ${st.batch}`];
  if (st.strength !== undefined) flags.push(`--strength ${st.strength}`);
  flags.push(`--sam-size ${st.samSize}`, `--points-per-side ${st.pointsPerSide}`);
  if (st.dtype) flags.push(`--dtype ${st.dtype}`);
  if (st.sam2) flags.push(`--sam2 ${st.sam2}`);
  if (st.backbone === 'clip') {
    flags.push(`--weights ${st.weights}`, `--prompts ${st.prompts}`, `--deep ${st.deep}`, `--contrastive ${st.contrastive}`);
    if (st.tokenizer) flags.push(`--tokenizer ${st.tokenizer}`);
  }
  return flags.join(' ');
}

export const percent = (v: number) => (100 * v).toFixed(2);
/** A path as the tables print it: relative to the working folder when inside it (committed tables carry no machine's absolute paths). */
export const displayPath = (p: string) => {
  const r = relative(process.cwd(), resolve(p));
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
};

export function protocolMarkdown(req: ProtocolRequest, cells: ProtocolCell[], testImages: number, done: boolean): string {
  const st = req.settings;
  const cellOf = (f: number, m: RunFocusMode) => cells.find((x) => x.fraction === f && x.mode === m);
  const table = (values: (c: ProtocolCell) => number[]) => {
    const cell = (f: number, m: RunFocusMode) => {
      const c = cellOf(f, m);
      if (!c) return '—';
      const n = c.seeds.length < req.seeds.length ? ` (${c.seeds.length} of ${req.seeds.length} seeds)` : '';
      const { mean, std } = meanStd(values(c));
      return `${percent(mean)} ± ${percent(std)}${n}`;
    };
    return [
      `| train fraction | train images | ${req.modes.join(' | ')} |`,
      `| --- | --- | ${req.modes.map(() => '---').join(' | ')} |`,
      ...req.fractions.map((f) => {
        const sizes = [...new Set(cells.filter((c) => c.fraction === f).map((c) => c.trainImages))];
        return `| ${+(100 * f).toFixed(2)}% | ${sizes.join('/') || '—'} | ${req.modes.map((m) => cell(f, m)).join(' | ')} |`;
      }),
    ];
  };
  // Paired by seed: the same seed draws the same training images for every mode.
  const focusModes = req.modes.filter((m) => m !== 'none');
  const paired = (values: (c: ProtocolCell) => number[]) => (f: number, m: RunFocusMode) => {
    const a = cellOf(f, m);
    const b = cellOf(f, 'none');
    if (!a || !b) return '—';
    const seeds = a.seeds.filter((sd) => b.seeds.includes(sd));
    if (seeds.length === 0) return '—';
    const pick = (c: ProtocolCell) => seeds.map((sd) => values(c)[c.seeds.indexOf(sd)]);
    const d = pairedDifference(pick(a), pick(b));
    const sign = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(100 * v).toFixed(2)}`;
    return `${sign(d.mean)} [${sign(d.low)}, ${sign(d.high)}]${seeds.length < req.seeds.length ? ` (${seeds.length} seeds)` : ''}`;
  };
  const pairedTable =
    req.modes.includes('none') && focusModes.length > 0
      ? [
          `| train fraction | ${focusModes.flatMap((m) => [`${m} − none, top-1`, `${m} − none, balanced`]).join(' | ')} |`,
          `| --- | ${focusModes.flatMap(() => ['---', '---']).join(' | ')} |`,
          ...req.fractions.map(
            (f) => `| ${+(100 * f).toFixed(2)}% | ${focusModes.flatMap((m) => [paired((c) => c.accuracies)(f, m), paired((c) => c.balancedAccuracies)(f, m)]).join(' | ')} |`,
          ),
        ]
      : [];
  const active = req.modes
    .map((m) => [m, cells.find((c) => c.mode === m && c.focusActive)?.focusActive] as const)
    .filter(([, a]) => a !== undefined)
    .map(([m, a]) => `${m} ${a}`);
  const caps = [req.trainPerClass !== undefined ? `train capped at ${req.trainPerClass} per class` : '', req.testPerClass !== undefined ? `test capped at ${req.testPerClass} per class` : '']
    .filter(Boolean)
    .join(', ');
  const capFlags = `${req.trainPerClass !== undefined ? ` --train-per-class ${req.trainPerClass}` : ''}${req.testPerClass !== undefined ? ` --test-per-class ${req.testPerClass}` : ''}`;
  const running = done ? '' : ` — PARTIAL: the protocol is still running or was interrupted (${cells.reduce((n, c) => n + c.seeds.length, 0)} of ${req.fractions.length * req.modes.length * req.seeds.length} runs finished)`;
  return [
    `Test split: ${testImages} images${caps ? `; ${caps} (a fixed seeded choice)` : ', full'}. Mean ± std (sample) over seeds ${req.seeds.join(', ')}${running}.`,
    '',
    `Backbone ${st.backbone}; ${st.sam2 ? `masks from SAM2 (${st.sam2}), ` : ''}MobileSAM input ${st.samSize}×${st.samSize} (native 1024)${st.dtype ? `, ${st.dtype} weights` : ''}, ${st.pointsPerSide}×${st.pointsPerSide} automatic-mask points; ${st.epochs} epochs, lr ${st.lr}, batch ${st.batch}, focus strength ${st.strength ?? `${focusStrength('attention')} (attention, both), ${focusStrength('learned')} (learned)`}; data ${displayPath(req.data)}.`,
    '',
    'Top-1 accuracy (%):',
    '',
    ...table((c) => c.accuracies),
    '',
    'Balanced accuracy (%, mean per-class recall):',
    '',
    ...table((c) => c.balancedAccuracies),
    '',
    'Macro-F1 (%):',
    '',
    ...table((c) => c.macroF1s),
    '',
    ...(pairedTable.length > 0
      ? ['Paired difference focus − none (points; same seed = same training images), mean and 95 % interval (Student\'s t over the seeds):', '', ...pairedTable, '']
      : []),
    ...(active.length > 0 ? [`Test images on which the focus did anything (a salient mask survived; overlay: masks to paint): ${active.join(', ')}. Where it did nothing, the focus mode is the plain backbone.`, ''] : []),
    `Any cell, one seed (fraction F, seed S, mode M): \`node scripts/medfocus.js protocol --data ${displayPath(req.data)} --fractions F --seeds S --modes M${capFlags} ${settingsFlags(st)} --out DIR\`.`,
    '',
  ].join('\n');
}

/**
 * What the MedFocusCLIP paper (Jan 2025) reports at 5 % of the training
 * split, top-1 %: its method and pretrained CLIP after few-shot training, by
 * our data set's folder name. lung4 is a substitute for the paper's lung set
 * (../shared/datasets/README.md), so it gets no marks; brain4's pool is 3,200
 * of the paper's 5,712 images.
 */
export const PAPER_AT_5_PERCENT: Record<string, { medfocusClip: number; clip: number }> = {
  covid3: { medfocusClip: 71.15, clip: 66.7 },
  brain4: { medfocusClip: 86.09, clip: 68 },
  busi3: { medfocusClip: 58.63, clip: 29 },
};

/** The protocol's table as a bar chart: per train fraction one bar per focus mode (mean ± std, a dot per seed), chance level dashed, the paper's 5 % numbers as marks. */
export function protocolPng(req: ProtocolRequest, cells: ProtocolCell[], classes: number): Uint8Array {
  const groups = req.fractions.map((f) => {
    const images = cells.find((c) => c.fraction === f)?.trainImages;
    return `${+(100 * f).toFixed(2)}%${images ? ` (${images})` : ''}`;
  });
  const series = req.modes.map((mode) => ({
    name: mode,
    values: req.fractions.map((f) => (cells.find((c) => c.fraction === f && c.mode === mode)?.accuracies ?? []).map((a) => 100 * a)),
  }));
  const title = `${req.name ?? basename(resolve(req.data))}: top-1 accuracy %, seeds ${req.seeds.join(',')}`;
  const paper = Object.hasOwn(PAPER_AT_5_PERCENT, basename(resolve(req.data))) ? PAPER_AT_5_PERCENT[basename(resolve(req.data))] : undefined;
  const at5 = req.fractions.indexOf(0.05);
  const marks =
    paper && at5 >= 0
      ? [
          { group: at5, value: paper.medfocusClip, kind: 'paper: MedFocusCLIP (5%)', label: 'paper MedFocusCLIP' },
          { group: at5, value: paper.clip, kind: 'paper: CLIP few-shot (5%)', label: 'paper CLIP' },
        ]
      : [];
  const png = renderGroupedBarsPng(groups, series, title, { reference: { label: 'chance', value: 100 / classes }, marks });
  return encodePng(png.rgba, png.width, png.height);
}
