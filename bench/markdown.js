#!/usr/bin/env node
// Prints a results file of bench/run.js as the markdown table the README's
// "Performance" section shows: one row per benchmark (ours and every peer
// that ran beside it, with the ratio), then the run's context lines.
//
//   node bench/markdown.js bench/results/<adapter>-<date>.json

import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/markdown.js RESULTS.json');
  process.exit(2);
}
const report = JSON.parse(readFileSync(file, 'utf8'));

const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const cell = (r) => `${ms(r.median_ms)}${r.runs > 1 ? ` (${ms(r.min_ms)}–${ms(r.max_ms)})` : ''}`;

/** The ratio bench/run.js computed when ours and this peer ran side by side; a results file merged from several runs may hold lines that did not. */
const ratio = (o, p) => (o.speedup?.[p.impl] !== undefined ? `${o.speedup[p.impl].toFixed(2)}×` : 'not in the same run');

const byName = new Map();
for (const r of report.results) {
  if (!byName.has(r.name)) byName.set(r.name, { case: r.case, ours: undefined, peers: [] });
  const row = byName.get(r.name);
  if (r.impl === 'ours') row.ours = r;
  else row.peers.push(r);
}

const a = report.adapter;
const cpu = report.cpu;
const load = report.load_average ? `; load average ${report.load_average.map((v) => v.toFixed(1)).join(' → ')} (start → end)` : '';
console.log(`Adapter: ${a.description ?? a.name}${cpu ? `; CPU: ${cpu.cores} × ${cpu.model}, fp32 FMA peak ${cpu.gflops.toFixed(0)} GFLOP/s` : ''}; ${report.date}${report.quick ? ', --quick' : ', full run'}${load}.`);
console.log('');
console.log(`Timing: ${report.timing}.`);
console.log('');
console.log('| case | benchmark | shape | ours: median (min–max) | GFLOP/s | peer: median | ours vs peer |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, row] of byName) {
  if (!row.ours) continue;
  const o = row.ours;
  const peers = row.peers.length > 0 ? row.peers : [undefined];
  peers.forEach((p, i) => {
    const first = i === 0;
    console.log(
      `| ${first ? row.case : ''} | ${first ? name : ''} | ${first ? o.shape : ''} | ${first ? cell(o) : ''} | ${first && o.gflops ? o.gflops.toFixed(1) : ''} | ` +
        `${p ? `${p.impl}: ${cell(p)}` : '—'} | ${p ? ratio(o, p) : ''} |`,
    );
  });
}
if (report.notes?.length) {
  console.log('');
  for (const n of report.notes) console.log(`- ${n}`);
}
