// `node bench/run.js` is a user's entry point: every case in bench/cases/
// must run to the end at --quick sizes (its own correctness checks
// included), each giving at least one timed line of ours. A case that
// reaches into library internals breaks silently otherwise (sam-decoder.js
// threw "decoder.graphs is not iterable" after the GraphCache refactor, and
// no test noticed). Timings are not checked here: bench/run.js --compare
// does that.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { repoRoot, suite } from './util.js';

const test = suite('bench cases');

test('bench/run.js --quick: every case runs and times our implementation', () => {
  const out = mkdtempSync(join(tmpdir(), 'medfocus-bench-'));
  try {
    // --quick: ~70 s of timed lines on a quiet 2-core lavapipe machine (21 min measured at load average 10); under the runner's per-file limit.
    const r = spawnSync(process.execPath, [join(repoRoot, 'bench', 'run.js'), '--quick', '--json', '--out', out], { cwd: repoRoot, encoding: 'utf8', timeout: 1_100_000, maxBuffer: 64 << 20 });
    assert.is(r.status, 0, `bench/run.js --quick exited ${r.status} (signal ${r.signal}):\n${(r.stderr ?? '').slice(-3000)}`);
    const report = JSON.parse(r.stdout) as { results: Array<{ case: string; impl: string; median_ms: number }>; notes: string[] };
    const cases = readdirSync(join(repoRoot, 'bench', 'cases')).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
    assert.ok(cases.length >= 9, `bench/cases holds ${cases.length} cases`);
    for (const c of cases) {
      const ours = report.results.filter((x) => x.case === c && x.impl.startsWith('ours'));
      assert.ok(ours.length > 0, `case ${c}: no line of ours (notes: ${report.notes.filter((n) => n.startsWith(`${c}:`)).join(' | ') || 'none'})`);
      for (const x of ours) assert.ok(Number.isFinite(x.median_ms) && x.median_ms > 0, `case ${c}: median ${x.median_ms} ms`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
