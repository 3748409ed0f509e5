// The fuzz driver: runs test/fuzz/child.ts for a target, restarts it after an
// input that hung (killed when no progress line came for `stallMs`), and
// tallies hangs, over-limit memory, unnamed errors and invalid inputs
// accepted, each with the input's index (the input is mutate(seeds, seed,
// index): reproducible). Used by test/fuzz.test.ts (bounded) and
// scripts/fuzz.js (for minutes, for hunting).

import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export interface FuzzReport {
  target: string;
  seed: number;
  inputs: number;
  accepted: number;
  refused: number;
  peakRssMiB: number;
  /** "<index> <kind> <message>" per mishandled input; kind: hang, over-limit, unnamed, invalid-accepted, crash. */
  bad: string[];
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** An input with no progress for this long is a hang (default 2000 ms). */
  stallMs?: number;
  /** Resident memory the child may reach (default 1024 MiB); the child also runs with a 512 MiB heap cap. */
  rssLimitMiB?: number;
}

/** Runs `count` inputs of `target` from `start` in one child; resolves with its lines and how it ended. */
function runChild(target: string, seed: number, start: number, count: number, stallMs: number, rssLimitMiB: number): Promise<{ lines: string[]; stalledAt?: number; exit: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--max-old-space-size=512', '--import', 'tsx', join(here, 'child.ts'), target, String(seed), String(start), String(count), String(rssLimitMiB)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let buffer = '';
    let stderr = '';
    let last = start - 1;
    let stalled: number | undefined;
    let timer = setTimeout(stall, stallMs * 5); // start-up (tsx) gets longer
    function stall() {
      stalled = last;
      child.kill('SIGKILL');
    }
    child.stdout.on('data', (d) => {
      buffer += d;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (/^\d+$/.test(line)) {
          last = Number(line);
          clearTimeout(timer);
          timer = setTimeout(stall, stallMs);
        }
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ lines, stalledAt: stalled, exit: signal ? `signal ${signal}` : `code ${code}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
  });
}

export async function fuzz(target: string, options: FuzzOptions): Promise<FuzzReport> {
  const stallMs = options.stallMs ?? 2000;
  const rssLimitMiB = options.rssLimitMiB ?? 1024;
  const report: FuzzReport = { target, seed: options.seed, inputs: 0, accepted: 0, refused: 0, peakRssMiB: 0, bad: [] };
  let start = 0;
  while (start < options.count) {
    const r = await runChild(target, options.seed, start, options.count - start, stallMs, rssLimitMiB);
    for (const line of r.lines) {
      if (line.startsWith('BAD ')) report.bad.push(line.slice(4));
      const done = /^DONE (\d+) (\d+) (\d+)$/.exec(line);
      if (done) {
        report.accepted += Number(done[1]);
        report.refused += Number(done[2]);
        report.peakRssMiB = Math.max(report.peakRssMiB, Number(done[3]));
      }
    }
    if (r.lines.some((l) => l.startsWith('DONE '))) {
      report.inputs = options.count;
      break;
    }
    // The child died or hung on the last input it announced: record it and go on after it.
    const at = r.stalledAt ?? Number([...r.lines].reverse().find((l) => /^\d+$/.test(l)) ?? start);
    report.bad.push(`${at} ${r.stalledAt !== undefined ? `hang (no progress for ${stallMs} ms)` : `crash (${r.exit})`}`);
    // Inputs before `at` in this child were counted only in its (missing) DONE line: count them as seen.
    report.inputs = at + 1;
    start = at + 1;
  }
  return report;
}

/** One line per target: counts, peak memory, and the mishandled inputs. */
export function formatReport(r: FuzzReport): string {
  const head = `${r.target}: ${r.inputs} inputs (seed ${r.seed}), ${r.accepted} accepted, ${r.refused} refused, peak RSS ${r.peakRssMiB} MiB, ${r.bad.length} mishandled`;
  return [head, ...r.bad.slice(0, 20).map((b) => `  input ${b}`), ...(r.bad.length > 20 ? [`  … ${r.bad.length - 20} more`] : [])].join('\n');
}
