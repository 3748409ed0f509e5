// A console progress bar: `label [#####-----] 12/40 3.1 it/s ETA 9s info`,
// redrawn in place (\r) on a terminal, and as a few plain lines (every 10%)
// when the stream is not a TTY, so CI logs stay short. Browser-safe: no Node
// imports; the default stream is looked up on globalThis.process when the
// bar is created, and without one (in a browser) nothing is written.

/** What the bar writes to (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  stream?: ProgressStream | null;
  /** Characters between the brackets. */
  width?: number;
  /** Milliseconds clock (for tests); default performance.now. */
  now?: () => number;
  /** Least time between two terminal redraws, ms (the last one is always drawn). */
  redrawMs?: number;
}

function defaultStream(): ProgressStream | null {
  const proc = (globalThis as { process?: { stderr?: ProgressStream } }).process;
  return proc?.stderr ?? null;
}

/** 9s, 2m05s, 1h02m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Not on a terminal, a phase whose tenths come slowly still shows it is alive this often (ms). */
export const PLAIN_HEARTBEAT_MS = 30_000;

export class ProgressBar {
  readonly label: string;
  readonly total: number;
  private readonly stream: ProgressStream | null;
  private readonly width: number;
  private readonly now: () => number;
  private readonly redrawMs: number;
  private readonly start: number;
  private count = 0;
  private info = '';
  private lastDraw = -Infinity;
  private lastLength = 0;
  /** Plain mode: the last tenth (0–10) printed. */
  private lastTenth = -1;
  private finished = false;

  constructor(label: string, total: number, options: ProgressOptions = {}) {
    if (!Number.isInteger(total) || total < 0) throw new Error(`ProgressBar(${label}): total must be an integer ≥ 0, got ${total}`);
    this.label = label;
    this.total = total;
    this.stream = options.stream === undefined ? defaultStream() : options.stream;
    this.width = options.width ?? 20;
    this.now = options.now ?? (() => performance.now());
    this.redrawMs = options.redrawMs ?? 100;
    this.start = this.now();
  }

  /** Advances by n items; `info` (e.g. the current loss) is shown after the ETA until replaced. */
  tick(n = 1, info?: string): void {
    this.count += n;
    if (info !== undefined) this.info = info;
    this.draw(false);
  }

  /** Draws the final state and ends the line. Further calls do nothing. */
  done(): void {
    if (this.finished) return;
    this.draw(true);
    this.finished = true;
  }

  /** The current line, without \r or newline. */
  line(): string {
    const elapsed = (this.now() - this.start) / 1000;
    const fraction = this.total > 0 ? Math.min(1, this.count / this.total) : 1;
    const filled = Math.round(fraction * this.width);
    const rate = elapsed > 0 && this.count > 0 ? this.count / elapsed : NaN;
    const remaining = Math.max(0, this.total - this.count);
    // Slow steps (seconds each, e.g. a SAM encode on a CPU adapter) read better as s/it.
    const rateText = !Number.isFinite(rate) ? '-- it/s' : rate >= 1 ? `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} it/s` : `${(1 / rate).toFixed(1)} s/it`;
    const eta = remaining === 0 ? '0s' : formatDuration(remaining / rate);
    const parts = [this.label, `[${'#'.repeat(filled)}${'-'.repeat(this.width - filled)}]`, `${this.count}/${this.total}`, rateText, `ETA ${eta}`];
    if (this.info) parts.push(this.info);
    return parts.join(' ');
  }

  private draw(final: boolean): void {
    if (!this.stream || this.finished) return;
    if (this.stream.isTTY) {
      const t = this.now();
      if (!final && t - this.lastDraw < this.redrawMs) return;
      this.lastDraw = t;
      const text = this.line();
      // Pad with spaces over the rest of a longer previous line.
      this.stream.write(`\r${text}${' '.repeat(Math.max(0, this.lastLength - text.length))}${final ? '\n' : ''}`);
      this.lastLength = text.length;
      return;
    }
    const tenth = this.total > 0 ? Math.floor((Math.min(this.count, this.total) / this.total) * 10) : 10;
    // A line on the first tick, at each further tenth, every PLAIN_HEARTBEAT_MS of a slow phase, and at done() if the count fell short.
    const t = this.now();
    if (tenth > this.lastTenth || (final && this.count < this.total) || t - this.lastDraw >= PLAIN_HEARTBEAT_MS) {
      this.lastTenth = tenth;
      this.lastDraw = t;
      this.stream.write(`${this.line()}\n`);
    }
  }
}
