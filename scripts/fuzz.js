#!/usr/bin/env node
// Fuzzes every reader of user files for a while (the bounded version runs in
// npm test: test/fuzz.test.ts). Each target gets rounds of 5,000 inputs with
// a new seed per round for --minutes (per target); prints per target
// the inputs, hangs, over-limit memory, unnamed errors and invalid inputs
// accepted, each mishandled input with its (seed, index) so that
// mutate(seeds, seed, index) rebuilds it for a regression test.
// Usage: node scripts/fuzz.js [--minutes N per target] [--target NAME] [--seed S]
// Exit: 0 nothing mishandled, 1 something was.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '1' }, target: { type: 'string' }, seed: { type: 'string', default: '1' } } });
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`scripts/fuzz.js: --minutes must be a number > 0, got '${values.minutes}'`);
  process.exit(2);
}
// The driver and targets are TypeScript: run them under tsx in one child.
const program = `
import { formatReport, fuzz } from ${JSON.stringify(join(root, 'test/fuzz/driver.ts'))};
import { TARGETS } from ${JSON.stringify(join(root, 'test/fuzz/targets.ts'))};
const names = ${JSON.stringify(values.target ?? null)} ? [${JSON.stringify(values.target)}] : Object.keys(TARGETS);
for (const n of names) if (!(n in TARGETS)) { console.error('unknown target ' + n + '; known: ' + Object.keys(TARGETS).join(', ')); process.exit(2); }
const share = ${minutes} * 60000;
let mishandled = 0;
for (const name of names) {
  const t0 = performance.now();
  const total = { inputs: 0, accepted: 0, refused: 0, peak: 0, bad: [] };
  for (let seed = ${Number(values.seed)}; performance.now() - t0 < share; seed++) {
    const r = await fuzz(name, { seed, count: 5000 });
    total.inputs += r.inputs; total.accepted += r.accepted; total.refused += r.refused; total.peak = Math.max(total.peak, r.peakRssMiB);
    total.bad.push(...r.bad.map((b) => 'seed ' + seed + ', input ' + b));
  }
  // Each bad line reads 'seed S, input I KIND …': the kind is its fifth word.
  const kinds = ['hang', 'over-limit', 'unnamed', 'invalid-accepted', 'crash'].map((k) => k + ' ' + total.bad.filter((b) => b.split(' ')[4] === k).length).join(', ');
  console.log(name + ': ' + total.inputs + ' inputs in ' + ((performance.now() - t0) / 60000).toFixed(1) + ' min, ' + total.accepted + ' accepted, ' + total.refused + ' refused, peak RSS ' + total.peak + ' MiB; ' + kinds);
  for (const b of total.bad.slice(0, 20)) console.log('  ' + b);
  mishandled += total.bad.length;
}
process.exit(mishandled === 0 ? 0 : 1);
`;
const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
