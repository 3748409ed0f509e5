// The protocol (medfocus protocol, and the demo): every cell of train
// fraction × focus mode × seed trained and evaluated (runs.ts), the tables
// and the chart rewritten after each run (protocol.md, .png, .json), so an
// interrupted protocol still leaves what it finished; the paired difference
// of each focus mode against none, by seed.

import { mkdir } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { encodePng } from '../io/image.js';
import { formatDuration } from '../util/progress.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { capPerClass, loadImageFolder } from './dataset.js';
import { meanStd, pairedDifference, renderGroupedBarsPng } from './metrics.js';
import type { RunFocusMode } from './focus.js';
import { evalRun, trainRun } from './runs.js';
import type { Session } from './session.js';
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

/** Focus modes that need masks first: their raw encoder pass caches the features `none` reads, so each raw image is encoded once. */
const executionOrder = (modes: RunFocusMode[]) => [...modes.filter((m) => m !== 'none'), ...modes.filter((m) => m === 'none')];

/** The flags that give `st` (the defaults too, so the command stays exact if a default changes). */
function settingsFlags(st: TrainSettings): string {
  const flags = [`--backbone ${st.backbone}`, `--epochs ${st.epochs}`, `--lr ${st.lr}`, `--weight-decay ${st.weightDecay}`, `--batch ${st.batch}`, `--strength ${st.strength}`];
  flags.push(`--sam-size ${st.samSize}`, `--points-per-side ${st.pointsPerSide}`);
  if (st.sam2) flags.push(`--sam2 ${st.sam2}`);
  if (st.backbone === 'clip') {
    flags.push(`--weights ${st.weights}`, `--prompts ${st.prompts}`, `--deep ${st.deep}`, `--contrastive ${st.contrastive}`);
    if (st.tokenizer) flags.push(`--tokenizer ${st.tokenizer}`);
  }
  return flags.join(' ');
}

const percent = (v: number) => (100 * v).toFixed(2);
/** A path as the tables print it: relative to the working folder when inside it (committed tables carry no machine's absolute paths). */
const displayPath = (p: string) => {
  const r = relative(process.cwd(), resolve(p));
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
};

function protocolMarkdown(req: ProtocolRequest, cells: ProtocolCell[], testImages: number, done: boolean): string {
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
    `Backbone ${st.backbone}; ${st.sam2 ? `masks from SAM2 (${st.sam2}), ` : ''}MobileSAM input ${st.samSize}×${st.samSize} (native 1024), ${st.pointsPerSide}×${st.pointsPerSide} automatic-mask points; ${st.epochs} epochs, lr ${st.lr}, batch ${st.batch}, attention strength ${st.strength}; data ${displayPath(req.data)}.`,
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
function protocolPng(req: ProtocolRequest, cells: ProtocolCell[], classes: number): Uint8Array {
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

export async function protocol(s: Session, req: ProtocolRequest): Promise<{ cells: ProtocolCell[]; markdown: string }> {
  const cells: ProtocolCell[] = [];
  const testSplit = await loadImageFolder(req.data, 'test');
  const testImages = capPerClass(testSplit.items, testSplit.classes, req.testPerClass).length;
  await mkdir(req.out, { recursive: true });
  // Written after every run, so an interrupted protocol still leaves a table and its chart.
  const write = async (done: boolean) => {
    const markdown = protocolMarkdown(req, cells, testImages, done);
    await writeFileAtomic(join(req.out, 'protocol.md'), markdown);
    await writeFileAtomic(join(req.out, 'protocol.png'), protocolPng(req, cells, testSplit.classes.length));
    const json = { data: displayPath(req.data), done, settings: req.settings, trainPerClass: req.trainPerClass, testPerClass: req.testPerClass, testImages, seeds: req.seeds, fractions: req.fractions, modes: req.modes, cells };
    await writeFileAtomic(join(req.out, 'protocol.json'), `${JSON.stringify(json, null, 2)}\n`);
    return markdown;
  };
  const totalRuns = req.fractions.length * req.modes.length * req.seeds.length;
  const t0 = performance.now();
  let finished = 0;
  for (const fraction of req.fractions) {
    for (const mode of executionOrder(req.modes)) {
      const c: ProtocolCell = { fraction, mode, accuracies: [], balancedAccuracies: [], macroF1s: [], seeds: [], trainImages: 0, mean: 0, std: 0 };
      for (const seed of req.seeds) {
        const run = join(req.out, 'runs', `${mode}-f${fraction}-s${seed}`);
        const config = await trainRun(s, { data: req.data, out: run, fraction, seed, focus: mode, settings: req.settings, maxPerClass: req.trainPerClass });
        const result = await evalRun(s, run, req.data, req.testPerClass);
        finished++;
        const elapsed = (performance.now() - t0) / 1000;
        s.log(
          `protocol: fraction ${fraction}, focus ${mode}, seed ${seed}: accuracy ${percent(result.accuracy)}%, balanced ${percent(result.balancedAccuracy)}%, macro-F1 ${percent(result.macroF1)}% ` +
            `(run ${finished} of ${totalRuns}, ${formatDuration(elapsed)} so far, ETA ${formatDuration((elapsed / finished) * (totalRuns - finished))})`,
        );
        c.accuracies.push(result.accuracy);
        c.balancedAccuracies.push(result.balancedAccuracy);
        c.macroF1s.push(result.macroF1);
        c.seeds.push(seed);
        c.trainImages = config.trainImages;
        c.focusActive = result.focusActive;
        Object.assign(c, meanStd(c.accuracies));
        if (!cells.includes(c)) cells.push(c);
        await write(false);
      }
    }
  }
  return { cells, markdown: await write(true) };
}
