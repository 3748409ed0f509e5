// Runs each test/*.test.ts file in its own Node process (a native crash in one
// file cannot take the others down, and each file's time is visible), then
// prints the totals as one closing line: "N passed, N failed, N skipped".
// Usage: node scripts/test.js [regex on file names]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filter = new RegExp(process.argv[2] ?? '.');
const files = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts') && filter.test(f))
  .sort();
if (files.length === 0) {
  console.error(`scripts/test.js: no test file matches ${filter}`);
  process.exit(1);
}

const ansi = /\x1b\[[0-9;]*m/g;
let passed = 0;
let failed = 0;
let skipped = 0;
const broken = [];
for (const file of files) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'node_modules/uvu/bin.js'), 'test', `^${file.replace(/\./g, '\\.')}$`], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.replace(ansi, '');
  const lines = out.split('\n').filter((l) => !/^Warning: max\w+ artificially reduced/.test(l));
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const pass = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const ok = r.status === 0 && total > 0;
  passed += pass;
  skipped += skip;
  failed += Math.max(total - pass, 0) + (ok || total - pass > 0 ? 0 : 1);
  if (!ok) broken.push(file);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${file.padEnd(28)} ${String(pass).padStart(3)}/${String(total).padEnd(3)} ${seconds.padStart(6)} s`);
  if (!ok) {
    const detail = lines.filter((l) => l.trim() !== '').slice(-60).join('\n');
    console.log(detail.replace(/^/gm, '     | '));
    if (r.signal || (r.status !== 0 && total === 0)) console.log(`     | exited with ${r.signal ?? `code ${r.status}`} before reporting results`);
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(broken.length === 0 ? 0 : 1);
