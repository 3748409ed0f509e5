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

/** What one child did: its lines, the last input it finished (start − 1 if none), whether it stalled, how it ended. */
interface ChildRun {
  lines: string[];
  last: number;
  stalled: boolean;
  finished: boolean;
  exit: string;
}

/** Runs `count` inputs of `target` from `start` in one child, killed when no input finishes for `stallMs` (start-up gets 5×). */
function runChild(target: string, seed: number, start: number, count: number, stallMs: number, rssLimitMiB: number): Promise<ChildRun> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--max-old-space-size=512', '--import', 'tsx', join(here, 'child.ts'), target, String(seed), String(start), String(count), String(rssLimitMiB)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let buffer = '';
    let stderr = '';
    let last = start - 1;
    let stalled = false;
    let timer = setTimeout(stall, stallMs * 5);
    function stall() {
      stalled = true;
      child.kill('SIGKILL');
    }
    child.stdout.on('data', (d) => {
      buffer += d;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        const finishedInput = /^(\d+) [arb]$/.exec(line);
        if (finishedInput) {
          last = Number(finishedInput[1]);
          clearTimeout(timer);
          timer = setTimeout(stall, stallMs);
        }
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ lines, last, stalled, finished: lines.some((l) => l.startsWith('DONE ')), exit: signal ? `signal ${signal}` : `code ${code}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
  });
}

export async function fuzz(target: string, options: FuzzOptions): Promise<FuzzReport> {
  const stallMs = options.stallMs ?? 2000;
  const rssLimitMiB = options.rssLimitMiB ?? 1024;
  const report: FuzzReport = { target, seed: options.seed, inputs: 0, accepted: 0, refused: 0, peakRssMiB: 0, bad: [] };
  const tally = (r: ChildRun) => {
    for (const line of r.lines) {
      if (line.startsWith('BAD ')) report.bad.push(line.slice(4));
      else if (/^\d+ a$/.test(line)) report.accepted++;
      else if (/^\d+ r$/.test(line)) report.refused++;
      else if (line.startsWith('DONE ')) report.peakRssMiB = Math.max(report.peakRssMiB, Number(line.slice(5)));
    }
  };
  let start = 0;
  while (start < options.count) {
    const r = await runChild(target, options.seed, start, options.count - start, stallMs, rssLimitMiB);
    tally(r);
    if (r.finished) break;
    // The child stopped inside input `at`. A stall may be the machine's (other jobs on the cores), not the
    // reader's: the input runs again alone, with 5× the time, and is a hang (or crash) only if it fails again.
    const at = r.last + 1;
    const again = await runChild(target, options.seed, at, 1, stallMs * 5, rssLimitMiB);
    tally(again);
    if (!again.finished) report.bad.push(`${at} ${again.stalled ? `hang (no result in ${stallMs} ms, nor alone in ${5 * stallMs} ms)` : `crash (${again.exit})`}`);
    start = at + 1;
  }
  report.inputs = options.count;
  return report;
}

/** One line per target: counts, peak memory, and the mishandled inputs. */
export function formatReport(r: FuzzReport): string {
  const head = `${r.target}: ${r.inputs} inputs (seed ${r.seed}), ${r.accepted} accepted, ${r.refused} refused, peak RSS ${r.peakRssMiB} MiB, ${r.bad.length} mishandled`;
  return [head, ...r.bad.slice(0, 20).map((b) => `  input ${b}`), ...(r.bad.length > 20 ? [`  … ${r.bad.length - 20} more`] : [])].join('\n');
}
