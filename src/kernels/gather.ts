// Row gather along axis 0 (embedding lookup, e.g. CLIP's token embedding).

import type { Gpu } from '../device.js';
import { Tensor, shapeString } from '../tensor.js';
import { dispatchKernel, linearGrid } from './program.js';
import { outputTensor } from './strided.js';

const WORKGROUP_SIZE = 256;

/**
 * y = table[indices]: table [V, ...rest] (f32, i32 or u32), indices i32 of
 * any shape → y [...indices.shape, ...rest]. An index outside [0, V) (no
 * negative wrap-around) yields a row of zeros: indices are GPU data, so they
 * are not checked on the host.
 */
export function gather(gpu: Gpu, table: Tensor, indices: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'gather';
  if (table.rank < 1) throw new Error(`${op}: table must have at least one axis (rows to gather), got shape ${shapeString(table.shape)}`);
  if (table.dtype === 'f16') throw new Error(`${op}: table ${shapeString(table.shape)} is f16; the kernel copies 32-bit words (f32, i32, u32)`);
  if (indices.dtype !== 'i32') throw new Error(`${op}: indices ${shapeString(indices.shape)} must be i32, got ${indices.dtype}`);
  const rest = table.shape.slice(1);
  const row = rest.reduce((p, v) => p * v, 1);
  const y = outputTensor(gpu, op, [...indices.shape, ...rest], table.dtype, [table, indices], opts.out);
  if (y.size === 0) return y;
  dispatchKernel(
    gpu,
    op,
    { shader: 'gather', constants: { WORKGROUP_SIZE } },
    { table, indices, y, params: { n: y.size, row, vocab: table.shape[0] } },
    linearGrid(gpu, y.size, WORKGROUP_SIZE),
  );
  return y;
}
