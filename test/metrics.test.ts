// Protocol statistics against independent references: macro-F1 against a
// per-class precision/recall computation written here (and values sklearn
// gives for a hand-checked case), the paired 95 % interval against Student's t
// quantiles from scipy (stats.t.ppf(0.975, df)).

import * as assert from 'uvu/assert';
import { evaluatePredictions } from '../src/medfocus/metrics.js';
import { renderGroupedBarsPng } from '../src/render/charts.js';
import { pairedDifference } from '../src/util/stats.js';
import { assertThrows, rng, suite } from './util.js';

const test = suite('metrics');

/** sklearn's f1_score(average='macro'): F1 = 2PR/(P+R) per label in y_true ∪ y_pred (0 where P+R = 0), averaged. */
function macroF1Reference(labels: number[], predicted: number[]): number {
  const present = [...new Set([...labels, ...predicted])];
  let sum = 0;
  for (const c of present) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < labels.length; i++) {
      if (predicted[i] === c && labels[i] === c) tp++;
      else if (predicted[i] === c) fp++;
      else if (labels[i] === c) fn++;
    }
    const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
    const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
    sum += precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  }
  return sum / present.length;
}

test('macro-F1: a hand-checked case (sklearn: 0.655556) and random cases against the per-class reference', () => {
  const r = evaluatePredictions([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], ['a', 'b', 'c']);
  assert.ok(Math.abs(r.macroF1 - (0.5 + 0.8 + 2 / 3) / 3) < 1e-12, `macroF1 ${r.macroF1}`);
  // A class never present nor predicted is left out; one predicted but absent scores 0.
  const absent = evaluatePredictions([0, 0, 1], [0, 2, 1], ['a', 'b', 'c', 'd']);
  assert.ok(Math.abs(absent.macroF1 - (2 / 3 + 1 + 0) / 3) < 1e-12, `macroF1 with an absent class ${absent.macroF1}`);
  const random = rng(7);
  for (let trial = 0; trial < 200; trial++) {
    const classes = 2 + Math.floor(random() * 4);
    const n = 1 + Math.floor(random() * 40);
    const labels = Array.from({ length: n }, () => Math.floor(random() * classes));
    const predicted = labels.map((l) => (random() < 0.6 ? l : Math.floor(random() * classes)));
    const got = evaluatePredictions(labels, predicted, Array.from({ length: classes }, (_, i) => `c${i}`)).macroF1;
    const want = macroF1Reference(labels, predicted);
    assert.ok(Math.abs(got - want) < 1e-12, `trial ${trial}: macroF1 ${got}, reference ${want}`);
  }
});

test("paired difference: mean and Student's t 95 % interval (scipy t.ppf(0.975, 4) = 2.776445)", async () => {
  const d = pairedDifference([0.7, 0.8, 0.9, 1.0, 1.1], [0.6, 0.6, 0.6, 0.6, 0.6]);
  const mean = 0.3;
  const std = Math.sqrt(0.025); // sample std of 0.1…0.5
  const half = (2.776445 * std) / Math.sqrt(5);
  assert.ok(Math.abs(d.mean - mean) < 1e-12, `mean ${d.mean}`);
  assert.ok(Math.abs(d.low - (mean - half)) < 1e-5 && Math.abs(d.high - (mean + half)) < 1e-5, `interval [${d.low}, ${d.high}], expected ±${half}`);
  assert.is(d.n, 5);
  // df 2: t.ppf(0.975, 2) = 4.302653; one pair: no spread to estimate, a zero-width interval.
  const three = pairedDifference([1, 2, 6], [0, 0, 0]);
  const half3 = (4.302653 * Math.sqrt(7)) / Math.sqrt(3);
  assert.ok(Math.abs(three.high - three.mean - half3) < 1e-5, `df 2 half-width ${three.high - three.mean}, expected ${half3}`);
  const one = pairedDifference([0.5], [0.25]);
  assert.equal([one.mean, one.low, one.high], [0.25, 0.25, 0.25]);
  await assertThrows(() => pairedDifference([1, 2], [1]), /pairedDifference: expected two equally long, non-empty lists, got 2 and 1 values/);
});

test("grouped bars: a paper's value is drawn across its group at its height, with a legend line; a mark off the groups is refused", async () => {
  const series = [{ name: 'none', values: [[50], [50]] }];
  const plain = renderGroupedBarsPng(['5%', '100%'], series, 't');
  const marked = renderGroupedBarsPng(['5%', '100%'], series, 't', { marks: [{ group: 0, value: 75, kind: 'paper', label: 'p' }] });
  assert.is(marked.height > plain.height, true, 'a legend line for the mark');
  // The mark's colour (120, 0, 60) appears only in the marked chart: find its rows.
  const rows = new Set<number>();
  for (let i = 0; i < marked.rgba.length; i += 4) {
    if (marked.rgba[i] === 120 && marked.rgba[i + 1] === 0 && marked.rgba[i + 2] === 60) rows.add(Math.floor(i / 4 / marked.width));
  }
  for (let i = 0; i < plain.rgba.length; i += 4) assert.ok(!(plain.rgba[i] === 120 && plain.rgba[i + 1] === 0 && plain.rgba[i + 2] === 60), 'no mark colour without marks');
  // Heights from the bars (both 50, colour 31,119,180): the first contiguous blue run down the column of the leftmost blue pixel fixes the scale, so 75 must sit 1.5 bar heights above the bottom.
  const blue = (x: number, y: number) => {
    const i = 4 * (y * marked.width + x);
    return marked.rgba[i] === 31 && marked.rgba[i + 1] === 119 && marked.rgba[i + 2] === 180;
  };
  let column = -1;
  for (let x = 0; x < marked.width && column < 0; x++) for (let y = 0; y < marked.height / 2 + 100 && column < 0; y++) if (blue(x, y)) column = x + 1; // the bar's left edge: seed dots and whiskers sit further in
  let barTop = 0;
  while (!blue(column, barTop)) barTop++;
  let barBottom = barTop;
  while (blue(column, barBottom + 1)) barBottom++;
  const expected = barBottom - 1.5 * (barBottom - barTop);
  const inPlot = [...rows].filter((y) => y < barBottom);
  assert.ok(inPlot.length > 0 && inPlot.every((y) => Math.abs(y - expected) <= 3), `mark rows ${inPlot.join(',')}, expected about ${expected.toFixed(1)} (bar ${barTop}–${barBottom})`);
  await assertThrows(() => renderGroupedBarsPng(['5%'], [{ name: 'none', values: [[1]] }], 't', { marks: [{ group: 3, value: 1, kind: 'k', label: 'paper CLIP' }] }), /mark 'paper CLIP' is at group 3/);
});

test.run();
