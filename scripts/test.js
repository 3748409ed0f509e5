// Runs each test/*.test.ts file in its own Node process (a native crash in one
// file cannot take the others down, and each file's time is visible), then
// prints the totals as one closing line: "N passed, N failed, N skipped".
//
// A file passes only when it exits 0, registered at least one test, every test
// it registered passed or was skipped through test/util.ts `skip(reason)`, and
// no hook failed (uvu 0.5.6 swallows a throwing `before` hook and exits 0 with
// nothing run: test/util.ts `suite` prints HOOK_FAILED_MARK, and the counts
// catch the rest). A file that imports `suite`/`test` from 'uvu' itself, or
// registers test.skip/test.only, is refused. A file still running after the
// per-file limit is killed and fails the run, named.
//
// Usage: node scripts/test.js [REGEX on file names] [--dir DIR] [--file-timeout SECONDS]
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// The markers test/util.ts prints (SKIP_MARK, HOOK_FAILED_MARK).
const SKIP_MARK = '#medfocus-skip: ';
const HOOK_FAILED_MARK = '#medfocus-hook-failed: ';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string', default: join(root, 'test') },
    'file-timeout': { type: 'string', default: '1200' },
  },
});
const dir = resolve(values.dir);
const timeoutS = Number(values['file-timeout']);
if (!(timeoutS > 0)) {
  console.error(`scripts/test.js: --file-timeout must be a positive number of seconds, got "${values['file-timeout']}"`);
  process.exit(2);
}
const filter = new RegExp(positionals[0] ?? '.');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.ts') && filter.test(f))
  .sort();
if (files.length === 0) {
  console.error(`scripts/test.js: no test file in ${dir} matches ${filter}`);
  process.exit(1);
}

/** Runs one file under uvu's CLI; resolves with its output, exit status and whether the limit killed it. */
function runFile(file) {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'node_modules/uvu/bin.js'), dir, `^${file.replace(/\./g, '\\.')}$`], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: '0' },
      detached: true, // its own process group, so the limit also ends what it started (servers, browsers)
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutS * 1000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      done({ out, status, signal, timedOut });
    });
  });
}

/** Why a file is refused before it runs, or undefined. */
function refusal(file) {
  const source = readFileSync(join(dir, file), 'utf8');
  if (/^\s*import\b[^;]*\bfrom\s+['"]uvu['"]/m.test(source)) return `imports from 'uvu' directly: use suite/gpuSuite from ./util.js (hook failures are reported there)`;
  if (/\b\w+\.(skip|only)\s*\(\s*['"`]/.test(source)) return 'registers test.skip/test.only: call skip(reason) inside the test instead';
  return undefined;
}

const ansi = /\x1b\[[0-9;]*m/g;
let passed = 0;
let failed = 0;
let skipped = 0;
const broken = [];
for (const file of files) {
  const refused = refusal(file);
  if (refused) {
    failed++;
    broken.push(file);
    console.log(`FAIL ${file.padEnd(28)} refused: ${refused}`);
    continue;
  }
  const t0 = performance.now();
  const r = await runFile(file);
  const out = r.out.replace(ansi, '');
  const lines = out.split('\n').filter((l) => !/^Warning: max\w+ artificially reduced/.test(l));
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const ran = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const registeredSkips = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const skips = lines.filter((l) => l.startsWith(SKIP_MARK)).map((l) => l.slice(SKIP_MARK.length));
  const hookFailures = lines.filter((l) => l.startsWith(HOOK_FAILED_MARK)).length;
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);

  const problems = [];
  if (r.timedOut) problems.push(`killed after the per-file limit of ${timeoutS} s`);
  else if (r.signal) problems.push(`exited with ${r.signal}`);
  else if (r.status !== 0) problems.push(`exited with code ${r.status}`);
  if (hookFailures > 0) problems.push(`${hookFailures} hook(s) failed`);
  if (!r.timedOut && total === 0) problems.push('registered no test (or crashed before reporting)');
  if (ran < total) problems.push(`${total - ran} of ${total} tests did not pass`);
  if (registeredSkips > 0) problems.push(`${registeredSkips} test.skip/test.only registration(s)`);
  const ok = problems.length === 0;

  const filePassed = Math.max(ran - skips.length, 0);
  passed += filePassed;
  skipped += skips.length;
  failed += ok ? 0 : Math.max(total - ran, 1);
  if (!ok) broken.push(file);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${file.padEnd(28)} ${String(filePassed).padStart(3)}/${String(total).padEnd(3)} ${seconds.padStart(6)} s${skips.length ? `  ${skips.length} skipped` : ''}`);
  for (const reason of skips) console.log(`     skip: ${reason}`);
  if (!ok) {
    console.log(`     | ${file}: ${problems.join('; ')}`);
    const detail = lines.filter((l) => l.trim() !== '').slice(-60).join('\n');
    console.log(detail.replace(/^/gm, '     | '));
  }
}
if (broken.length > 0) console.log(`failed files: ${broken.join(', ')}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(broken.length === 0 ? 0 : 1);
