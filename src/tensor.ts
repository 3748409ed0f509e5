// A tensor is a shape, a dtype and a GPU storage buffer from the pool.
// Layout is always dense row-major (C order); ops that permute write a copy.

import type { Gpu } from './device.js';
import { f16BitsToF32, f32ToF16Bits } from './half.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';
export type Shape = readonly number[];
export type TensorData = Float32Array | Int32Array | Uint32Array;

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

// GPUBufferUsage values from the WebGPU spec, so this module loads before the
// Node globals are installed.
export const BufferUsage = { MAP_READ: 0x01, COPY_SRC: 0x04, COPY_DST: 0x08, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
const { MAP_READ, COPY_DST } = BufferUsage;

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: shape ${shapeString(shape)} must hold non-negative integers`);
  }
}

export class Tensor {
  readonly shape: Shape;
  readonly size: number;
  private buf: GPUBuffer | undefined;

  /** `owner` is false for views (reshape): they never return the buffer to the pool. */
  private constructor(readonly gpu: Gpu, shape: Shape, readonly dtype: DType, buffer: GPUBuffer, private readonly owner = true) {
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    this.buf = buffer;
  }

  /** Bytes of the tensor's data (the buffer itself may be larger: it is a pool size class). */
  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  get rank(): number {
    return this.shape.length;
  }

  get buffer(): GPUBuffer {
    if (!this.buf) throw new Error(`Tensor ${shapeString(this.shape)} ${this.dtype}: used after dispose()`);
    return this.buf;
  }

  get disposed(): boolean {
    return this.buf === undefined;
  }

  /** An uninitialised tensor (its contents are whatever the pooled buffer held). */
  static empty(gpu: Gpu, shape: Shape, dtype: DType = 'f32', label?: string): Tensor {
    checkShape('Tensor.empty', shape);
    if (dtype === 'f16' && !gpu.hasF16) throw new Error('Tensor.empty: dtype f16 needs the adapter feature `shader-f16`, which this adapter lacks');
    const bytes = Math.max(4, Math.ceil((numel(shape) * BYTES_PER_ELEMENT[dtype]) / 4) * 4);
    return new Tensor(gpu, shape, dtype, gpu.pool.acquire(bytes, STORAGE_USAGE, label));
  }

  /** Uploads host data. For f16, pass float values (they are rounded to half precision). */
  static fromArray(gpu: Gpu, data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape('Tensor.fromArray', shape);
    const n = numel(shape);
    if (data.length !== n) {
      throw new Error(`Tensor.fromArray: shape ${shapeString(shape)} needs ${n} elements, got ${data.length}`);
    }
    const t = Tensor.empty(gpu, shape, dtype);
    t.write(data);
    return t;
  }

  /**
   * Uploads binary16 bit patterns as an f16 tensor, as they are: weights a
   * file already stores as halves skip the round trip through f32 values.
   */
  static fromF16Bits(gpu: Gpu, bits: Uint16Array, shape: Shape): Tensor {
    checkShape('Tensor.fromF16Bits', shape);
    const n = numel(shape);
    if (bits.length !== n) throw new Error(`Tensor.fromF16Bits: shape ${shapeString(shape)} needs ${n} halves, got ${bits.length}`);
    const t = Tensor.empty(gpu, shape, 'f16');
    // writeBuffer takes whole 4-byte words: an odd count gets a zero half after it.
    const words = new Uint16Array(Math.ceil(n / 2) * 2);
    words.set(bits);
    if (words.byteLength > 0) {
      gpu.flush(); // as write() does: work already recorded runs before the upload
      gpu.device.queue.writeBuffer(t.buffer, 0, words.buffer, 0, words.byteLength);
    }
    return t;
  }

  /** Overwrites the tensor's contents with host data of the same element count. */
  write(data: ArrayLike<number>): void {
    if (data.length !== this.size) {
      throw new Error(`Tensor.write: tensor ${shapeString(this.shape)} holds ${this.size} elements, got ${data.length}`);
    }
    const bytes = Math.ceil(this.byteLength / 4) * 4;
    if (bytes === 0) return;
    const host = new ArrayBuffer(bytes);
    switch (this.dtype) {
      case 'f32':
        new Float32Array(host, 0, this.size).set(data);
        break;
      case 'i32':
        new Int32Array(host, 0, this.size).set(data);
        break;
      case 'u32':
        new Uint32Array(host, 0, this.size).set(data);
        break;
      case 'f16': {
        const h = new Uint16Array(host, 0, this.size);
        for (let i = 0; i < this.size; i++) h[i] = f32ToF16Bits(data[i]);
        break;
      }
    }
    // Queue writes are ordered before later submissions but after earlier ones;
    // flush so work already recorded against the old contents runs first.
    this.gpu.flush();
    this.gpu.device.queue.writeBuffer(this.buffer, 0, host, 0, bytes);
  }

  /** Downloads the data: f32 and f16 tensors come back as Float32Array. */
  async read(): Promise<TensorData> {
    const gpu = this.gpu;
    gpu.assertAlive('Tensor.read');
    const bytes = Math.ceil(this.byteLength / 4) * 4;
    if (bytes === 0) return this.dtype === 'i32' ? new Int32Array(0) : this.dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0);
    const staging = gpu.pool.acquire(bytes, MAP_READ | COPY_DST, 'readback');
    gpu.commandEncoder().copyBufferToBuffer(this.buffer, 0, staging, 0, bytes);
    gpu.flush();
    try {
      await gpu.guard(staging.mapAsync(MAP_READ, 0, bytes));
    } catch (e) {
      throw new Error(`Tensor.read ${shapeString(this.shape)}: ${(e as Error).message}`);
    }
    const copy = staging.getMappedRange(0, bytes).slice(0);
    gpu.checkErrors();
    staging.unmap();
    gpu.pool.release(staging);
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(copy, 0, this.size);
      case 'i32':
        return new Int32Array(copy, 0, this.size);
      case 'u32':
        return new Uint32Array(copy, 0, this.size);
      case 'f16': {
        const h = new Uint16Array(copy, 0, this.size);
        const out = new Float32Array(this.size);
        for (let i = 0; i < this.size; i++) out[i] = f16BitsToF32(h[i]);
        return out;
      }
    }
  }

  /** Same data, new shape, no copy: a view that is valid while this tensor is alive. */
  reshape(shape: Shape): Tensor {
    const resolved = resolveReshape(this.shape, shape);
    return new Tensor(this.gpu, resolved, this.dtype, this.buffer, false);
  }

  /**
   * A view of this tensor's buffer with any shape and dtype that fits in it
   * (the graph runtime places many values in one planned buffer this way).
   */
  viewAs(shape: Shape, dtype: DType = this.dtype): Tensor {
    checkShape('Tensor.viewAs', shape);
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    if (bytes > this.buffer.size) {
      throw new Error(`Tensor.viewAs: ${dtype} ${shapeString(shape)} needs ${bytes} bytes, the buffer holds ${this.buffer.size}`);
    }
    return new Tensor(this.gpu, shape, dtype, this.buffer, false);
  }

  /** Returns the buffer to the pool (views only drop their reference); reused only after the queue is done with it. */
  dispose(): void {
    if (!this.buf) return;
    if (this.owner) this.gpu.pool.release(this.buf);
    this.buf = undefined;
  }
}

/** Resolves one -1 entry and checks the element count. */
export function resolveReshape(from: Shape, to: Shape): number[] {
  const n = numel(from);
  const out = [...to];
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    if (out.indexOf(-1, unknown + 1) >= 0) throw new Error(`reshape: at most one -1 allowed, got ${shapeString(to)}`);
    const rest = numel(out.filter((_, i) => i !== unknown));
    if (rest === 0 || n % rest !== 0) throw new Error(`reshape: cannot infer -1 of ${shapeString(to)} from ${n} elements ${shapeString(from)}`);
    out[unknown] = n / rest;
  }
  checkShape('reshape', out);
  if (numel(out) !== n) throw new Error(`reshape: ${shapeString(from)} (${n} elements) cannot become ${shapeString(to)} (${numel(out)} elements)`);
  return out;
}
