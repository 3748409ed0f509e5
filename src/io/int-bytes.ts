// Little-endian integer tensor bytes as int32, for both weight formats
// (ONNX initializers, safetensors) with their own dtype names.

/** Integer element types by width and signedness (BOOL reads as u8). */
export type IntKind = 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64';

const BYTES: Readonly<Record<IntKind, number>> = { i8: 1, u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, i64: 8, u64: 8 };

/**
 * The elements of `bytes` as a fresh Int32Array. The kinds whose values may
 * not fit (u32, i64, u64) go through `narrow(i, value)`, which returns the
 * int32 to store or throws.
 */
export function intsFromBytes(bytes: Uint8Array, kind: IntKind, narrow: (i: number, value: bigint | number) => number): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(bytes.byteLength / BYTES[kind]);
  for (let i = 0; i < out.length; i++) {
    switch (kind) {
      case 'i32': out[i] = view.getInt32(4 * i, true); break;
      case 'u32': out[i] = narrow(i, view.getUint32(4 * i, true)); break;
      case 'i64': out[i] = narrow(i, view.getBigInt64(8 * i, true)); break;
      case 'u64': out[i] = narrow(i, view.getBigUint64(8 * i, true)); break;
      case 'i16': out[i] = view.getInt16(2 * i, true); break;
      case 'u16': out[i] = view.getUint16(2 * i, true); break;
      case 'i8': out[i] = view.getInt8(i); break;
      default: out[i] = view.getUint8(i);
    }
  }
  return out;
}
