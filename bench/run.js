#!/usr/bin/env node
// Benchmark runner. Runs every bench/cases/*.js on one device, prints a
// table and writes bench/results/<adapter>-<YYYY-MM-DD>.json.
//
//   npm run build && node bench/run.js [--quick] [--filter NAME] [--json] [--compare OLD.json] [--gpu-check] [--out DIR]
//
//   --quick          fewer runs and the cases' small sizes (a few minutes on lavapipe)
//   --filter NAME    only benchmarks whose case file or name contains NAME
//   --json           print the results as JSON instead of the table
//   --compare FILE   list benchmarks that got more than 10% slower than in FILE, and ratios to peers that fell by more than 10%
//   --gpu-check      the real-GPU check's lines only (bench/gpu.sh): the cases in
//                    GPU_CHECK_CASES, each choosing its line(s) for ctx.gpuCheck;
//                    results go to <adapter>-<date>-gpu-check[-small].json
//   --out DIR        write the results file in DIR instead of bench/results
//
// A case is a module whose default export receives the context below and
// calls ctx.bench() once per benchmark (see bench/README.md):
//
//   ctx.gpu          the library's Gpu (import the library from ../../dist/node.js)
//   ctx.device       its GPUDevice, for peers that take an existing device
//   ctx.quick        true under --quick: use small sizes
//   ctx.gpuCheck     true under --gpu-check: run only the case's real-GPU check line(s)
//   ctx.once(key, init)   memoised async init shared by all cases (e.g. a peer backend)
//   ctx.note(text)   a line printed under the table
//   ctx.wants(name)  false if --filter excludes that benchmark (skip its setup too)
//   await ctx.bench({ name, shape, flops, ours, peers, runs, warmup })
//     name     unique benchmark name, e.g. 'matmul 1024x1024x1024'
//     shape    what ran, printed as is (string)
//     flops    floating-point operations of one run (for GFLOP/s)
//     ours     () => void | cleanup: records our work into ctx.gpu; the runner submits
//     peers    { label: () => void | cleanup | Promise<...> }: the same work by another library
//     runs, warmup   override the timed and warm-up run counts
//   It resolves to our timing record (median_ms etc.), or undefined when filtered out.
//   A timed function may return a cleanup function (e.g. disposing an output);
//   it runs after the timing.
//
// Timing: where the adapter has 'timestamp-query', the GPU time between two
// timestamps that empty passes write before and after the run's work on the
// queue (TimestampBracket); else the wall clock from the call until
// device.queue.onSubmittedWorkDone() resolves. Per result: the median and
// min–max of the timed runs after warm-up, and the wall-clock median beside it.
// Every implementation runs on the same device and queue, measured the same way.
// Each result also records the process's CPU time per run (all threads): on a
// CPU adapter (lavapipe) that is the work itself, and it moves less than wall
// clock when other processes share the cores.

import { readdirSync, readFileSync, writeFileSync, renameSync, mkdirSync, existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, basename, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { getDevice } from '../dist/node.js';

const here = dirname(fileURLToPath(import.meta.url));
const SLOWER_THRESHOLD = 1.1;
/** The case files of --gpu-check (issue 19 §2): matmul 4096³, attention L4096 d64, MobileSAM encoder 1024², CLIP ViT-B/16 batch 8, ViT-B/16 train step. */
const GPU_CHECK_CASES = ['matmul', 'attention', 'mobilesam', 'clip', 'train'];

/** The options above, by node:util parseArgs; an unknown option or a missing value is one line naming it. */
function readArgs(argv) {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'gpu-check': { type: 'boolean', default: false },
        filter: { type: 'string' },
        compare: { type: 'string' },
        out: { type: 'string' },
      },
    });
    return { quick: values.quick, json: values.json, gpuCheck: values['gpu-check'], filter: values.filter, compare: values.compare, out: values.out };
  } catch (e) {
    console.error(`bench: ${e.message} (use --quick, --filter NAME, --json, --compare OLD.json, --gpu-check, --out DIR)`);
    process.exit(2);
  }
}

/** fp32 FMA peak of this machine from /proc/cpuinfo: logical cores × clock × SIMD lanes × 2. */
function cpuPeak() {
  let info;
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim();
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  const cores = (info.match(/^processor\s*:/gm) ?? []).length || cpus().length;
  const ghz = Number(field('cpu MHz') ?? 0) / 1000;
  const [lanes, isa] = flags.has('avx512f') ? [16, 'avx512f'] : flags.has('avx2') ? [8, 'avx2'] : [4, 'sse'];
  return { model: field('model name') ?? 'unknown CPU', cores, ghz, lanes, isa, fma: flags.has('fma'), gflops: cores * ghz * lanes * 2 };
}

const median = (sorted) => (sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2);

/**
 * GPU time of whatever one run submits, from timestamp queries: an empty
 * compute pass writes a timestamp before the run's work and another after it
 * on the same queue, so ours and every peer (tfjs, onnxruntime-web, which
 * encode their own passes) are bracketed alike. Undefined when the adapter
 * lacks 'timestamp-query'.
 */
class TimestampBracket {
  constructor(device) {
    this.device = device;
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
    this.resolved = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.readback = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  static create(device) {
    return device.features.has('timestamp-query') ? new TimestampBracket(device) : undefined;
  }

  /** Submits a pass that only writes timestamp `index`; the end one also resolves both into the readback buffer. */
  mark(index) {
    const encoder = this.device.createCommandEncoder();
    encoder.beginComputePass({ timestampWrites: { querySet: this.querySet, [index === 0 ? 'beginningOfPassWriteIndex' : 'endOfPassWriteIndex']: index } }).end();
    if (index === 1) {
      encoder.resolveQuerySet(this.querySet, 0, 2, this.resolved, 0);
      encoder.copyBufferToBuffer(this.resolved, 0, this.readback, 0, 16);
    }
    this.device.queue.submit([encoder.finish()]);
  }

  /** Milliseconds between the two marks (after the queue is done). */
  async read() {
    await this.readback.mapAsync(GPUMapMode.READ);
    const [begin, end] = new BigUint64Array(this.readback.getMappedRange().slice(0));
    this.readback.unmap();
    return Number(end - begin) / 1e6;
  }

  destroy() {
    this.querySet.destroy();
    this.resolved.destroy();
    this.readback.destroy();
  }
}

/** Sorted samples → median, min, max. */
const spread = (values) => {
  const sorted = [...values].sort((x, y) => x - y);
  return { median: median(sorted), min: sorted[0], max: sorted[sorted.length - 1], sorted };
};

/**
 * Times `runs` calls of fn after `warmup` untimed ones. The reported time
 * (median_ms, min_ms, max_ms) is the GPU time between two timestamp queries
 * bracketing the call's work where the adapter has them, else the wall clock
 * from the call to queue.onSubmittedWorkDone(); the wall clock and the
 * process's CPU time are kept beside it either way.
 */
async function timeRuns(gpu, fn, warmup, runs, stamps) {
  const once = async () => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    stamps?.mark(0);
    const cleanup = await fn();
    gpu.flush();
    stamps?.mark(1);
    await gpu.device.queue.onSubmittedWorkDone();
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const gpuMs = stamps && (await stamps.read());
    if (typeof cleanup === 'function') await cleanup();
    gpu.checkErrors();
    return { ms, gpuMs, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  for (let i = 0; i < warmup; i++) await once();
  const samples = [];
  for (let i = 0; i < runs; i++) samples.push(await once());
  const wall = spread(samples.map((s) => s.ms));
  const timed = stamps ? spread(samples.map((s) => s.gpuMs)) : wall;
  return {
    timing: stamps ? 'timestamp-query' : 'wall',
    median_ms: timed.median,
    min_ms: timed.min,
    max_ms: timed.max,
    samples_ms: timed.sorted,
    wall_median_ms: wall.median,
    cpu_ms: spread(samples.map((s) => s.cpuMs)).median,
  };
}

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function printTable(results) {
  const rows = results.map((r) => [
    r.name,
    r.impl,
    r.shape,
    r.median_ms.toFixed(2),
    `${r.min_ms.toFixed(2)}–${r.max_ms.toFixed(2)}`,
    r.gflops.toFixed(2),
    r.wall_median_ms.toFixed(2),
    r.cpu_ms.toFixed(1),
    Object.entries(r.speedup ?? {})
      .map(([peer, x]) => `${x.toFixed(2)}× ${peer}`)
      .join(', '),
  ]);
  const head = ['benchmark', 'impl', 'shape', 'median ms', 'min–max ms', 'GFLOP/s', 'wall ms', 'cpu ms', 'ours vs peer (speed)'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i >= 3 && i <= 7 ? lpad(c, widths[i]) : pad(c, widths[i]))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/**
 * Lines that got slower than in an earlier results file. Absolute times hold
 * only on the same CPU with the same load, so the ratios to the peers (same
 * run, same load: `speedup`) are compared too; on another CPU, or with
 * either run's load average above the cores, read the ratio lines.
 */
function compare(report, oldPath) {
  const old = JSON.parse(readFileSync(oldPath, 'utf8'));
  const before = new Map(old.results.map((r) => [`${r.name}|${r.impl}`, r]));
  let compared = 0;
  const slower = [];
  const ratioFell = [];
  for (const r of report.results) {
    const o = before.get(`${r.name}|${r.impl}`);
    if (!o) continue;
    compared++;
    if (r.median_ms > o.median_ms * SLOWER_THRESHOLD) slower.push({ r, o });
    for (const [peer, ratio] of Object.entries(r.speedup ?? {})) {
      const was = o.speedup?.[peer];
      if (was !== undefined && ratio * SLOWER_THRESHOLD < was) ratioFell.push({ r, peer, was, ratio });
    }
  }
  console.log(`\ncompare with ${oldPath} (${old.adapter?.description ?? old.adapter?.name ?? 'unknown adapter'}, ${old.date}): ${compared} benchmark(s) in both`);
  const cores = report.cpu?.cores ?? 1;
  const loaded = [old, report].some((x) => Math.max(...(x.load_average ?? [0])) > cores);
  if (old.cpu?.model !== report.cpu?.model || loaded) {
    console.log(`  absolute times are not comparable (${old.cpu?.model !== report.cpu?.model ? `CPU ${old.cpu?.model} then ${report.cpu?.model}` : `load average above ${cores} cores`}): read the ratios to the peers`);
  }
  for (const { r, o } of slower) {
    console.log(`  slower: ${r.name} [${r.impl}] ${o.median_ms.toFixed(2)} -> ${r.median_ms.toFixed(2)} ms (+${((r.median_ms / o.median_ms - 1) * 100).toFixed(0)}%)`);
  }
  if (slower.length === 0) console.log(`  none more than ${Math.round((SLOWER_THRESHOLD - 1) * 100)}% slower`);
  for (const { r, peer, was, ratio } of ratioFell) console.log(`  ratio fell: ${r.name} [${r.impl}] vs ${peer} ${was.toFixed(2)}× -> ${ratio.toFixed(2)}×`);
  if (ratioFell.length === 0) console.log(`  no ratio to a peer fell by more than ${Math.round((SLOWER_THRESHOLD - 1) * 100)}%`);
}

/**
 * Merges into today's file for this adapter (a filtered run keeps the other
 * entries, and the other cases' notes and case times), written atomically.
 */
function writeResults(report, dir, suffix = '') {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${report.adapter.name}-${report.date}${suffix}.json`);
  let merged = report;
  if (existsSync(file)) {
    const old = JSON.parse(readFileSync(file, 'utf8'));
    const fresh = new Set(report.results.map((r) => `${r.name}|${r.impl}`));
    const caseOf = (note) => note.slice(0, note.indexOf(':'));
    const cases = new Set([...report.results.map((r) => r.case), ...report.notes.map(caseOf)]);
    merged = {
      ...report,
      notes: [...(old.notes ?? []).filter((n) => !cases.has(caseOf(n))), ...report.notes],
      case_seconds: { ...old.case_seconds, ...report.case_seconds },
      results: [...old.results.filter((r) => !fresh.has(`${r.name}|${r.impl}`)), ...report.results],
    };
  }
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}

async function main() {
  const args = readArgs(process.argv.slice(2));
  const gpu = await getDevice();
  const stamps = TimestampBracket.create(gpu.device);
  const results = [];
  const notes = [];
  const memo = new Map();
  const defaults = args.quick ? { warmup: 1, runs: 3 } : { warmup: 2, runs: 7 };
  const log = args.json ? () => undefined : (s) => console.log(s);

  const caseFiles = readdirSync(join(here, 'cases'))
    .filter((f) => f.endsWith('.js') && (!args.gpuCheck || GPU_CHECK_CASES.includes(basename(f, '.js'))))
    .sort();
  // Wall seconds per case file, setup and correctness checks included: what a
  // --quick run's length is made of.
  const caseSeconds = {};
  const started = performance.now();
  // The 1-minute load average at the start and the end: how quiet the machine was (other jobs share the cores).
  const loadAtStart = loadavg()[0];
  try {
    for (const file of caseFiles) {
      const caseName = basename(file, '.js');
      const caseStart = performance.now();
      const ctx = {
        gpu,
        device: gpu.device,
        quick: args.quick,
        gpuCheck: args.gpuCheck,
        once(key, init) {
          if (!memo.has(key)) memo.set(key, init());
          return memo.get(key);
        },
        note(text) {
          notes.push(`${caseName}: ${text}`);
        },
        wants(name) {
          return !args.filter || caseName.includes(args.filter) || name.includes(args.filter);
        },
        async bench({ name, shape, flops, ours, peers = {}, runs = defaults.runs, warmup = defaults.warmup }) {
          if (!ctx.wants(name)) return;
          const impls = [['ours', ours], ...Object.entries(peers)];
          const timed = [];
          for (const [impl, fn] of impls) {
            log(`  running ${name} [${impl}] ...`);
            const t0 = performance.now();
            const t = await timeRuns(gpu, fn, warmup, runs, stamps);
            log(`    median ${t.median_ms.toFixed(1)} ms; ${warmup} warm-up + ${runs} timed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
            timed.push({ case: caseName, name, impl, shape, flops, warmup, runs, ...t, gflops: flops / t.median_ms / 1e6 });
          }
          const [mine, ...others] = timed;
          mine.speedup = Object.fromEntries(others.map((p) => [p.impl, p.median_ms / mine.median_ms]));
          for (const [peer, x] of Object.entries(mine.speedup)) {
            log(`  ratio ${name}: ${peer} ${others.find((p) => p.impl === peer).median_ms.toFixed(2)} ms / ours ${mine.median_ms.toFixed(2)} ms = ${x.toFixed(2)}× (${x >= 1 ? 'ours faster' : 'ours slower'})`);
          }
          if (others.length === 0) log(`  ratio ${name}: no peer line (ours ${mine.median_ms.toFixed(2)} ms)`);
          results.push(...timed);
          return mine;
        },
      };
      const mod = await import(pathToFileURL(join(here, 'cases', file)).href);
      await mod.default(ctx);
      const seconds = (performance.now() - caseStart) / 1000;
      if (results.some((r) => r.case === caseName)) {
        caseSeconds[caseName] = Number(seconds.toFixed(1));
        log(`  case ${caseName}: ${seconds.toFixed(1)} s`);
      }
    }
  } finally {
    stamps?.destroy();
    gpu.destroy();
  }

  const peak = cpuPeak();
  const report = {
    date: new Date().toISOString().slice(0, 10),
    adapter: gpu.adapter,
    cpu: peak,
    quick: args.quick,
    gpu_check: args.gpuCheck,
    timing: stamps
      ? 'GPU time between timestamp queries written before and after each run on the queue (wall clock to onSubmittedWorkDone kept as wall_median_ms), median of timed runs after warm-up'
      : 'wall clock from recording to queue.onSubmittedWorkDone(), median of timed runs after warm-up (the adapter has no timestamp-query)',
    case_seconds: caseSeconds,
    load_average: [Number(loadAtStart.toFixed(2)), Number(loadavg()[0].toFixed(2))],
    total_seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    notes,
    results,
  };
  if (results.length === 0) {
    console.error(`bench: no benchmark matched${args.filter ? ` --filter ${args.filter}` : ''}; nothing written`);
    process.exitCode = 1;
    return;
  }
  const file = writeResults(report, args.out ? resolve(args.out) : join(here, 'results'), args.gpuCheck ? `-gpu-check${args.quick ? '-small' : ''}` : '');
  if (args.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    console.log(`\nadapter: ${gpu.adapter.description || gpu.adapter.name} (${gpu.adapter.vendor}${gpu.adapter.isFallbackAdapter ? ', fallback/CPU' : ''})`);
    console.log(`timing: ${report.timing} (${defaults.warmup} warm-up, ${defaults.runs} timed unless a case says otherwise)`);
    console.log('cpu ms: median CPU time of this process per run (all threads): on a CPU adapter the work itself, less sensitive to other load than wall clock');
    if (peak) {
      const lavapipeBits = /(\d+)[- ]bits/.exec(gpu.adapter.device)?.[1];
      const shaderPeak = lavapipeBits ? ` (llvmpipe compiles ${lavapipeBits}-bit vectors: ${(peak.cores * peak.ghz * (Number(lavapipeBits) / 32) * 2).toFixed(0)} GFLOP/s for shaders)` : '';
      console.log(
        `cpu: ${peak.model}: fp32 FMA peak ${peak.cores} cores × ${peak.ghz.toFixed(2)} GHz × ${peak.lanes} lanes (${peak.isa}) × 2 = ${peak.gflops.toFixed(0)} GFLOP/s${shaderPeak}; ×2 more if each core has two FMA units`,
      );
    }
    console.log('');
    printTable(results);
    for (const n of notes) console.log(n);
    console.log(`\ncase wall time (setup and checks included): ${Object.entries(caseSeconds).map(([c, sec]) => `${c} ${sec} s`).join(', ')}; all cases ${report.total_seconds} s`);
    console.log(`wrote ${file}`);
  }
  if (args.compare) compare(report, resolve(args.compare));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
