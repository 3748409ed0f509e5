// The protocol (medfocus protocol, and the demo): every cell of train
// fraction × focus mode × seed trained and evaluated (runs.ts), and the
// report (protocol-report.ts: protocol.md, .png, and protocol.json) written
// after each run, so an interrupted protocol still leaves what it finished.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '../util/progress.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { meanStd } from '../util/stats.js';
import { capPerClass, loadSplits, stratifiedSample } from './dataset.js';
import type { RunFocusMode } from './focus.js';
import { displayPath, percent, protocolMarkdown, protocolPng, type ProtocolCell, type ProtocolRequest } from './protocol-report.js';
import { evalRun, finishedRun, imageSetHash, preparePool, trainRun } from './runs.js';
import type { Session } from './session.js';

/** Focus modes that need masks first: their raw encoder pass caches the features `none` reads, so each raw image is encoded once. */
const executionOrder = (modes: RunFocusMode[]) => [...modes.filter((m) => m !== 'none'), ...modes.filter((m) => m === 'none')];

export async function protocol(s: Session, req: ProtocolRequest): Promise<{ cells: ProtocolCell[]; markdown: string }> {
  const cells: ProtocolCell[] = [];
  const { train, test: testSplit } = await loadSplits(req.data);
  const testUsed = capPerClass(testSplit.items, testSplit.classes, req.testPerClass);
  const testImages = testUsed.length;
  await mkdir(req.out, { recursive: true });
  // Written after every run, so an interrupted protocol still leaves a table and its chart.
  const write = async (done: boolean) => {
    const markdown = protocolMarkdown(req, cells, testImages, done);
    await writeFileAtomic(join(req.out, 'protocol.md'), markdown);
    await writeFileAtomic(join(req.out, 'protocol.png'), protocolPng(req, cells, testSplit.classes.length));
    // preprocessing: what this invocation computed (a resumed or cached protocol computes less), seconds by stage.
    const json = { data: displayPath(req.data), done, settings: req.settings, trainPerClass: req.trainPerClass, testPerClass: req.testPerClass, testImages, seeds: req.seeds, fractions: req.fractions, modes: req.modes, cells, ...(s.prep && { preprocessing: s.prep }) };
    await writeFileAtomic(join(req.out, 'protocol.json'), `${JSON.stringify(json, null, 2)}\n`);
    return markdown;
  };
  // Runs already finished with this very request (config, last epoch, eval.json on these test images) are read, never recomputed.
  const testSet = imageSetHash(req.data, testUsed);
  const requests = req.fractions.flatMap((fraction) =>
    executionOrder(req.modes).flatMap((mode) => req.seeds.map((seed) => ({ data: req.data, out: join(req.out, 'runs', `${mode}-f${fraction}-s${seed}`), fraction, seed, focus: mode, settings: req.settings, maxPerClass: req.trainPerClass }))),
  );
  const done = new Map<(typeof requests)[number], Awaited<ReturnType<typeof finishedRun>>>();
  for (const r of requests) done.set(r, await finishedRun(r, testSet));
  const todo = requests.filter((r) => !done.get(r));
  if (todo.length < requests.length) s.log(`protocol: ${requests.length - todo.length} of ${requests.length} runs already finished (their eval.json is reused)`);
  if (todo.length > 0) {
    // Every image the remaining runs read, masks and features computed first (the cost), so the runs after it only train and evaluate.
    const pool = capPerClass(train.items, train.classes, req.trainPerClass);
    const trainUsed = new Set(todo.flatMap((r) => stratifiedSample(pool, r.fraction, r.seed, train.classes)));
    const modes = executionOrder(req.modes).filter((m) => todo.some((r) => r.focus === m));
    s.log(`protocol: preprocessing ${testUsed.length} test and ${trainUsed.size} train images (those the remaining runs draw from ${pool.length}) for focus ${modes.join(', ')}`);
    await preparePool(s, req.settings, modes, [...testUsed, ...pool.filter((it) => trainUsed.has(it))]);
  }
  const t0 = performance.now();
  let finished = 0;
  for (const r of requests) {
    let c = cells.find((cell) => cell.fraction === r.fraction && cell.mode === r.focus);
    if (!c) cells.push((c = { fraction: r.fraction, mode: r.focus, accuracies: [], balancedAccuracies: [], macroF1s: [], seeds: [], trainImages: 0, mean: 0, std: 0 }));
    let reused = done.get(r);
    if (!reused) {
      const config = await trainRun(s, r);
      reused = { config, result: await evalRun(s, r.out, req.data, req.testPerClass) };
      finished++;
    }
    const { config, result } = reused;
    const elapsed = (performance.now() - t0) / 1000;
    s.log(
      `protocol: fraction ${r.fraction}, focus ${r.focus}, seed ${r.seed}: accuracy ${percent(result.accuracy)}%, balanced ${percent(result.balancedAccuracy)}%, macro-F1 ${percent(result.macroF1)}% ` +
        (done.get(r) ? '(finished before)' : `(run ${finished} of ${todo.length}, ${formatDuration(elapsed)} so far, ETA ${formatDuration((elapsed / finished) * (todo.length - finished))})`),
    );
    c.accuracies.push(result.accuracy);
    c.balancedAccuracies.push(result.balancedAccuracy);
    c.macroF1s.push(result.macroF1);
    c.seeds.push(r.seed);
    c.trainImages = config.trainImages;
    c.focusActive = result.focusActive;
    Object.assign(c, meanStd(c.accuracies));
    await write(false);
  }
  return { cells, markdown: await write(true) };
}
