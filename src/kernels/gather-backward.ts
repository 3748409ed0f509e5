// Adjoint of the row gather: scatter-add of output-row gradients into the table.

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel } from './program.js';
import { outputTensor } from './strided.js';

const WORKGROUP_SIZE = 64;
const MAX_GRID_X = 65535;

/**
 * dTable [vocab, ...rest] = Σ over positions k with indices[k] = v of
 * dy[k, ...rest], for y = gather(table, indices) with dy [...indices.shape,
 * ...rest]. Deterministic (a fixed summation order per row, no atomics);
 * positions outside [0, vocab) contribute nothing, as gather gave them zeros.
 */
export function gatherBackward(gpu: Gpu, dy: Tensor, indices: Tensor, vocab: number, opts: { out?: Tensor } = {}): Tensor {
  const op = 'gatherBackward';
  if (dy.dtype !== 'f32') throw new Error(`${op}: dy ${shapeString(dy.shape)} must be f32, got ${dy.dtype}`);
  if (indices.dtype !== 'i32') throw new Error(`${op}: indices ${shapeString(indices.shape)} must be i32, got ${indices.dtype}`);
  if (!Number.isInteger(vocab) || vocab < 1) throw new Error(`${op}: vocab must be a positive integer, got ${vocab}`);
  const lead = indices.shape;
  if (dy.rank < lead.length || lead.some((d, i) => dy.shape[i] !== d)) {
    throw new Error(`${op}: dy ${shapeString(dy.shape)} must start with the indices' shape ${shapeString(lead)}`);
  }
  const rest = dy.shape.slice(lead.length);
  const row = rest.reduce((p, v) => p * v, 1);
  const n = indices.size;
  const dtable = outputTensor(gpu, op, [vocab, ...rest], 'f32', [dy, indices], opts.out);
  gpu.commandEncoder().clearBuffer(dtable.buffer, 0, Math.ceil(dtable.byteLength / 4) * 4);
  if (n === 0 || row === 0) return dtable;
  const gx = Math.min(n, MAX_GRID_X);
  dispatchKernel(
    gpu,
    op,
    { shader: 'gather_backward', constants: { WORKGROUP_SIZE } },
    { dy, indices, dtable, params: { n, row, vocab } },
    [gx, Math.ceil(n / gx), 1],
  );
  return dtable;
}
