// A GPU buffer pool by size class. A released buffer becomes reusable only
// after every submission that could still read or write it has finished: the
// release is attached to the next flush, and that flush's
// onSubmittedWorkDone() moves it to the free list.

import type { Gpu } from './device.js';

/** Size classes: 256 bytes, then powers of two with one midpoint (2^k, 1.5·2^k), so waste stays under 33%. */
export function sizeClass(bytes: number): number {
  const min = 256;
  if (bytes <= min) return min;
  const p = 2 ** Math.floor(Math.log2(bytes));
  if (bytes === p) return p;
  const mid = p + p / 2;
  return bytes <= mid ? mid : 2 * p;
}

export interface PoolStats {
  created: number;
  reused: number;
  /** Bytes of buffers the pool created and still owns (in use + free + waiting). */
  ownedBytes: number;
  freeBytes: number;
  /** Buffers released but not yet known to be finished on the queue. */
  waiting: number;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private retired: GPUBuffer[] = [];
  private waiting = 0;
  private created = 0;
  private reused = 0;
  private ownedBytes = 0;
  private freeBytes = 0;

  constructor(private readonly gpu: Gpu) {}

  /** A buffer of at least `bytes` with exactly `usage`. Its size is the size class, not `bytes`. */
  acquire(bytes: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    this.gpu.assertAlive('BufferPool.acquire');
    const size = sizeClass(bytes);
    const max = this.gpu.limits.maxBufferSize;
    if (size > max && bytes <= max) return this.create(Math.ceil(bytes / 4) * 4, usage, label);
    if (bytes > max) {
      throw new Error(`BufferPool.acquire: ${bytes} bytes requested${label ? ` for ${label}` : ''}, but the device's maxBufferSize is ${max}`);
    }
    const list = this.free.get(key(size, usage));
    // First in, first out: a graph run again gets its recycled buffers back in
    // the same order, so its cached bind groups match (kernels/program.ts).
    const buf = list?.shift();
    if (buf) {
      this.reused++;
      this.freeBytes -= buf.size;
      return buf;
    }
    return this.create(size, usage, label);
  }

  private create(size: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    const buf = this.gpu.device.createBuffer({ size, usage, label });
    this.created++;
    this.ownedBytes += size;
    return buf;
  }

  /** Returns a buffer; it is handed out again only after the queue is done with it. */
  release(buf: GPUBuffer): void {
    if (this.gpu.isLost) return;
    this.retired.push(buf);
    // With no open encoder all uses are submitted already: fence right away.
    if (!this.gpu.hasOpenEncoder) this.onFlush();
  }

  /** Called by Gpu.flush(): fences everything retired so far on the work submitted so far. */
  onFlush(): void {
    if (this.retired.length === 0) return;
    const batch = this.retired;
    this.retired = [];
    this.waiting += batch.length;
    this.gpu.device.queue.onSubmittedWorkDone().then(
      () => {
        this.waiting -= batch.length;
        if (this.gpu.isLost) return;
        for (const b of batch) {
          const k = key(b.size, b.usage);
          let list = this.free.get(k);
          if (!list) this.free.set(k, (list = []));
          list.push(b);
          this.freeBytes += b.size;
        }
      },
      () => undefined,
    );
  }

  /** Destroys the free buffers (e.g. between models). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) {
      this.ownedBytes -= b.size;
      b.destroy();
    }
    this.free.clear();
    this.freeBytes = 0;
  }

  clear(): void {
    this.trim();
    this.retired = [];
  }

  stats(): PoolStats {
    return { created: this.created, reused: this.reused, ownedBytes: this.ownedBytes, freeBytes: this.freeBytes, waiting: this.waiting };
  }
}

function key(size: number, usage: GPUBufferUsageFlags): string {
  return `${size}:${usage}`;
}
