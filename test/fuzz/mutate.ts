// Seeded mutations of a valid input, as a fuzzer's: bit flips, "interesting"
// bytes and 32-bit values (either byte order: length fields), insertions,
// deletions, duplicated slices (a second chunk or segment), truncation; for
// JSON inputs also a value anywhere in the tree replaced by a hostile one.

import { seededRandom } from '../../src/util/random.js';

const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 16384, 65535];
const HOSTILE_JSON: unknown[] = [null, -1, 0, 1e308, -1e308, 2 ** 53 + 1, 1.5, '', '../../../etc/passwd', '/abs/x.safetensors', 'https://elsewhere.example/x', 'x'.repeat(5000), [], {}, [1, 2, 3], true, 'NaN'];

function byteMutation(input: Uint8Array, r: () => number): Uint8Array {
  const n = input.length;
  const at = Math.floor(r() * Math.max(n, 1));
  const pick = <T>(list: readonly T[]) => list[Math.floor(r() * list.length)];
  switch (Math.floor(r() * 7)) {
    case 0: {
      const out = input.slice();
      if (n > 0) out[at] ^= 1 << Math.floor(r() * 8);
      return out;
    }
    case 1: {
      const out = input.slice();
      if (n > 0) out[at] = pick([0, 0xff, 0x7f, 0x80, 0x01, Math.floor(r() * 256)]);
      return out;
    }
    case 2: {
      const out = input.slice();
      const v = pick(INTERESTING_U32);
      const big = r() < 0.5;
      for (let i = 0; i < 4 && at + i < n; i++) out[at + i] = (v >>> (big ? 24 - 8 * i : 8 * i)) & 255;
      return out;
    }
    case 3: {
      const len = 1 + Math.floor(r() * 16);
      const insert = Uint8Array.from({ length: len }, () => Math.floor(r() * 256));
      return concat(input.subarray(0, at), insert, input.subarray(at));
    }
    case 4: {
      const len = 1 + Math.floor(r() * Math.min(64, Math.max(1, n - at)));
      return concat(input.subarray(0, at), input.subarray(at + len));
    }
    case 5: {
      // A slice repeated in place: a second IHDR / SOF / header field.
      const len = 1 + Math.floor(r() * Math.min(64, Math.max(1, n - at)));
      return concat(input.subarray(0, at + len), input.subarray(at, at + len), input.subarray(at + len));
    }
    default:
      return input.subarray(0, at).slice();
  }
}

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

/** A value somewhere in the parsed JSON replaced by a hostile one (or a key dropped). */
function jsonMutation(input: Uint8Array, r: () => number): Uint8Array | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(input));
  } catch {
    return undefined;
  }
  const slots: Array<[Record<string, unknown> | unknown[], string | number]> = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => (slots.push([v, i]), walk(x)));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (slots.push([v as Record<string, unknown>, k]), walk(x));
  };
  walk(value);
  if (slots.length === 0) return undefined;
  const [parent, key] = slots[Math.floor(r() * slots.length)];
  if (r() < 0.15 && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
  else (parent as Record<string | number, unknown>)[key] = HOSTILE_JSON[Math.floor(r() * HOSTILE_JSON.length)];
  return new TextEncoder().encode(JSON.stringify(value));
}

/** Input `index` of a run: a seed input under 1–4 mutations, all fixed by (seed, index). */
export function mutate(seeds: readonly Uint8Array[], seed: number, index: number, json = false): Uint8Array {
  const r = seededRandom((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  let out = seeds[Math.floor(r() * seeds.length)];
  const count = 1 + Math.floor(r() * 4);
  for (let i = 0; i < count; i++) out = (json && r() < 0.6 ? jsonMutation(out, r) : undefined) ?? byteMutation(out, r);
  return out;
}
