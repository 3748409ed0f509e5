// A safetensors ByteSource of f32 tensors with a real header and data
// synthesised on read, for model cases that run random weights at their true
// size: nothing is downloaded and a checkpoint of hundreds of MB is never held
// whole. Open it with the library's openSafetensors(source).

/**
 * `entries`: [key, shape] pairs. Values lie in [-amplitude, amplitude) and
 * come from a hash of the element's index in the file (default 0.02: small
 * enough that a dozen pre-LN blocks stay finite).
 */
export function syntheticCheckpoint(entries, name, amplitude = 0.02) {
  const header = {};
  let offset = 0;
  for (const [key, shape] of entries) {
    const bytes = shape.reduce((p, d) => p * d, 1) * 4;
    header[key] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(new TextEncoder().encode(json), 8);
  return {
    name,
    size: head.length + offset,
    async read(at, length) {
      const out = new Uint8Array(length);
      const inHead = Math.max(0, Math.min(length, head.length - at));
      if (inHead > 0) out.set(head.subarray(at, at + inHead));
      const start = (at + inHead - head.length) / 4; // every tensor starts 4-byte aligned
      const floats = new Float32Array(out.buffer, inHead, Math.floor((length - inHead) / 4));
      for (let i = 0; i < floats.length; i++) floats[i] = ((Math.imul(start + i, 2654435761) >>> 0) / 2 ** 32 - 0.5) * 2 * amplitude;
      return out;
    },
  };
}

/** Bytes as MiB, one decimal below 16 MiB. */
export const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 24 ? 1 : 0)} MiB`;

/** The context line of a compiled graph's Graph.stats(). */
export const memoryLine = (s) => `planned peak GPU memory ${mib(s.plannedPeakBytes)} of intermediates (${mib(s.unplannedBytes)} without the plan) + ${mib(s.weightBytes)} weights`;
