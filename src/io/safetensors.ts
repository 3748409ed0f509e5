// SAFETENSORS reader and writer (browser-safe: no Node built-ins; the Node file
// source lives in node-files.ts).
//
// Format: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`,
// then the raw little-endian tensor bytes; data_offsets count from the end of
// the header. The whole header is validated before anything is returned, and
// tensors are then read one at a time, so a streaming consumer (upload to the
// GPU, drop) never holds more than one tensor besides the file's header.
// Over 500 lines as one job, the format: most of it is the reader's
// field-by-field header validation and the writer's checks of the same rules
// on what it writes (names, dtypes, shapes), plus the byte sources it reads.

import { f16BitsToF32, f32ToF16Bits } from '../half.js';
import { intsFromBytes, type IntKind } from './int-bytes.js';

/** Random-access bytes: a file, a Blob, a URL, or memory. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Used in error messages when openSafetensors is given no name. */
  readonly name?: string;
  /**
   * Exactly `length` bytes starting at `offset`, in a fresh array the caller owns
   * (never a view of memory the source or anyone else keeps using).
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** Element size in bytes of every dtype the reference implementation knows. */
const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;
export type SafetensorsDType = keyof typeof DTYPE_BYTES;

/** Dtypes `read()` converts to Float32Array (F64 is narrowed to f32). */
export const SAFETENSORS_FLOAT_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];
/** Dtypes `readInt32()` converts to Int32Array (64-bit and U32 values must fit in int32). */
export const SAFETENSORS_INT_DTYPES: readonly SafetensorsDType[] = ['I32', 'I64', 'U64', 'U32', 'I16', 'U16', 'I8', 'U8', 'BOOL'];
/** Dtypes writeSafetensors can encode: all but the 8-bit floats. */
export type WritableDType = Exclude<SafetensorsDType, 'F8_E5M2' | 'F8_E4M3'>;

/** The reference implementation's limit; a larger length means this is not a safetensors file. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Absolute position in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

function describe(value: unknown): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function knownDTypesText(): string {
  return (
    `known: ${Object.keys(DTYPE_BYTES).join(', ')}; read() takes ${SAFETENSORS_FLOAT_DTYPES.join(', ')}, ` +
    `readInt32() takes ${SAFETENSORS_INT_DTYPES.join(', ')}, readRaw() takes any`
  );
}

function checkReadRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new Error(`${name}: cannot read ${length} bytes at offset ${offset}: the source has ${size} bytes`);
  }
}

/**
 * A safetensors file that is never stored: a real header over `entries`
 * ([name, shape, dtype = 'F32'], laid out in the given order), data
 * synthesised on read. Every 4-byte word of the data is an f32 in
 * [-amplitude, amplitude) from a hash of its index (non-F32 tensors hold
 * those bytes too), so a model at its true size (hundreds of MB) can be
 * loaded and run — benchmarks, loader tests — without a download and
 * without ever holding the file.
 */
export function syntheticSafetensors(entries: ReadonlyArray<readonly [string, readonly number[], SafetensorsDType?]>, name: string, amplitude = 0.02): ByteSource {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [key, shape, dtype = 'F32'] of entries) {
    const bytes = shape.reduce((p, d) => p * d, 1) * DTYPE_BYTES[dtype];
    if (bytes % 4 !== 0) throw new Error(`syntheticSafetensors: ${key} (${dtype} [${shape.join(', ')}]) is not a whole number of 4-byte words`);
    header[key] = { dtype, shape, data_offsets: [offset, offset + bytes] };
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
    async read(at: number, length: number): Promise<Uint8Array> {
      const out = new Uint8Array(length);
      const inHead = Math.max(0, Math.min(length, head.length - at));
      if (inHead > 0) out.set(head.subarray(at, at + inHead));
      const data = new DataView(out.buffer);
      // Reads start word-aligned in the data (every tensor does); a ragged tail stays zero.
      const firstWord = (at + inHead - head.length) / 4;
      for (let i = 0; inHead + 4 * i + 4 <= length; i++) {
        data.setFloat32(inHead + 4 * i, ((Math.imul(firstWord + i, 2654435761) >>> 0) / 2 ** 32 - 0.5) * 2 * amplitude, true);
      }
      return out;
    },
  };
}

/** A source over bytes in memory (the bytes are not copied until read). */
export function bytesSource(data: ArrayBuffer | Uint8Array, name = 'safetensors bytes'): ByteSource {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkReadRange(name, bytes.byteLength, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** A source over a Blob or File (browser file inputs, drag and drop). */
export function blobSource(blob: Blob, name = (blob as Partial<File>).name ?? 'safetensors blob'): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkReadRange(name, blob.size, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

export interface UrlSourceOptions {
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** For error messages; defaults to the URL. */
  name?: string;
}

/**
 * A source over HTTP Range requests. A 1-byte probe learns the size; a server
 * that ignores Range (200 instead of 206) or hides the size costs one full
 * download, after which everything is served from memory.
 */
export async function urlSource(url: string | URL, options: UrlSourceOptions = {}): Promise<ByteSource> {
  const fetchFn = options.fetch ?? fetch;
  const name = options.name ?? String(url);
  const get = async (range: string | undefined, what: string): Promise<Response> => {
    const headers = range === undefined ? { ...options.headers } : { ...options.headers, Range: range };
    const response = await fetchFn(url, { headers });
    if (!response.ok) throw new Error(`${name}: HTTP ${response.status} ${response.statusText} while reading ${what}`);
    return response;
  };
  const download = async (response: Response): Promise<ByteSource> => bytesSource(await response.arrayBuffer(), name);

  const probe = await get('bytes=0-0', 'the first byte');
  const total = /\/(\d+)\s*$/.exec(probe.headers.get('content-range') ?? '')?.[1];
  if (probe.status !== 206) return download(probe);
  await probe.arrayBuffer();
  if (total === undefined) return download(await get(undefined, 'the whole file'));

  const size = Number(total);
  let whole: ByteSource | undefined; // set if the server stops honouring Range
  return {
    name,
    size,
    async read(offset, length) {
      checkReadRange(name, size, offset, length);
      if (whole) return whole.read(offset, length);
      if (length === 0) return new Uint8Array(0);
      const span = `bytes [${offset}, ${offset + length})`;
      const response = await get(`bytes=${offset}-${offset + length - 1}`, span);
      if (response.status !== 206) {
        whole = await download(response);
        return whole.read(offset, length);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.byteLength !== length) throw new Error(`${name}: asked for ${span} (${length} bytes), the server sent ${bytes.byteLength}`);
      return bytes;
    },
  };
}

/** f16 bit pattern → f32 value, for all 65536 patterns (built on first use). */
let f16Table: Float32Array | undefined;
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** binary16 bit patterns → their f32 values (exact: every half is an f32). */
export function widenF16(bits: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

function decodeFloat(dtype: SafetensorsDType, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  // Bytes from a ByteSource are ours: an aligned F32 buffer becomes the result without a copy.
  if (dtype === 'F32' && littleEndianHost && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  else if (dtype === 'F64') for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
  else if (dtype === 'F16') {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)];
  } else {
    // BF16 is the upper half of an f32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

const INT_KINDS: Readonly<Partial<Record<SafetensorsDType, IntKind>>> = { I32: 'i32', U32: 'u32', I64: 'i64', U64: 'u64', I16: 'i16', U16: 'u16', I8: 'i8', U8: 'u8', BOOL: 'u8' };

function decodeInt(dtype: SafetensorsDType, bytes: Uint8Array, fail: (problem: string) => Error): Int32Array {
  const wide = (i: number, value: bigint | number): number => {
    if (value < -2147483648 || value > 2147483647) throw fail(`element ${i} is ${value}, which does not fit in int32`);
    return Number(value);
  };
  return intsFromBytes(bytes, INT_KINDS[dtype]!, wide);
}

/** Parses and validates the whole header; throws on the first problem, through `fail`. */
function parseHeader(
  json: unknown,
  headerEnd: number,
  dataBytes: number,
  fail: (problem: string) => Error,
): { metadata: Record<string, string>; tensors: Map<string, SafetensorsTensorInfo> } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fail(`header must be a JSON object, got ${Array.isArray(json) ? 'an array' : describe(json)}`);
  }
  const metadataEntries: Array<[string, string]> = [];
  const tensors = new Map<string, SafetensorsTensorInfo>();
  const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  for (const [name, entry] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail(`${METADATA_KEY} must be an object of strings, got ${describe(entry)}`);
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') throw fail(`${METADATA_KEY} value of "${key}" must be a string, got ${describe(value)}`);
        metadataEntries.push([key, value]);
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail(`${where}: entry must be an object with dtype, shape and data_offsets, got ${describe(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    for (const [key, value] of [['dtype', dtype], ['shape', shape], ['data_offsets', offsets]] as const) {
      if (value === undefined) throw fail(`${where}: missing "${key}"`);
    }
    if (typeof dtype !== 'string') throw fail(`${where}: dtype must be a string, got ${describe(dtype)}`);
    if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw fail(`${where}: unknown dtype "${dtype}" (${knownDTypesText()})`);
    if (!Array.isArray(shape) || !shape.every(isCount)) throw fail(`${where}: shape must be an array of non-negative integers, got ${describe(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw fail(`${where}: data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${describe(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const elementBytes = DTYPE_BYTES[dtype as SafetensorsDType];
    const expected = shape.reduce((product: number, d: number) => product * d, elementBytes);
    if (expected !== end - begin) {
      throw fail(
        `${where}: byte length mismatch: dtype ${dtype} (${elementBytes} bytes) × shape [${shape.join(', ')}] needs ${expected} bytes, ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataBytes) throw fail(`truncated: ${where} needs bytes [${begin}, ${end}) but the file has only ${dataBytes} data bytes`);
    tensors.set(name, { name, dtype: dtype as SafetensorsDType, shape: [...shape], byteOffset: headerEnd + begin, byteLength: end - begin });
  }
  // Overlaps: walk by start; an empty tensor occupies no bytes and cannot overlap.
  const byStart = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < byStart.length; i++) {
    const [a, b] = [byStart[i - 1], byStart[i]];
    if (b.byteOffset < a.byteOffset + a.byteLength) {
      const span = (t: SafetensorsTensorInfo) => `[${t.byteOffset - headerEnd}, ${t.byteOffset - headerEnd + t.byteLength})`;
      throw fail(`tensors "${a.name}" ${span(a)} and "${b.name}" ${span(b)} overlap`);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return { metadata: Object.fromEntries(metadataEntries), tensors };
}

/** source.read, checked: a short read from a custom source must not surface as a RangeError deep in decoding. */
async function readExactly(source: ByteSource, name: string, offset: number, length: number): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.byteLength !== length) throw new Error(`${name}: asked the source for bytes [${offset}, ${offset + length}), got ${bytes.byteLength} bytes`);
  return bytes;
}

/** An open safetensors file: header parsed and validated, tensor data read on demand. */
export class SafetensorsFile {
  private closed = false;

  private constructor(
    readonly name: string,
    readonly metadata: Readonly<Record<string, string>>,
    /** In header order. */
    readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>,
    private readonly source: ByteSource,
  ) {}

  /**
   * Reads and validates the header of `source`. Takes ownership of the source:
   * it is closed if the header is invalid, else by close().
   */
  static async open(source: ByteSource, name = source.name ?? 'safetensors data'): Promise<SafetensorsFile> {
    const fail = (problem: string) => new Error(`${name}: ${problem}`);
    try {
      if (source.size < 8) throw fail(`not a safetensors file: it has ${source.size} bytes, fewer than the 8-byte header length`);
      const prefixBytes = await readExactly(source, name, 0, 8);
      const prefix = new DataView(prefixBytes.buffer, prefixBytes.byteOffset, 8);
      const headerBytes = prefix.getUint32(0, true) + prefix.getUint32(4, true) * 2 ** 32;
      if (headerBytes > MAX_HEADER_BYTES) throw fail(`header length ${headerBytes} bytes is absurd (limit ${MAX_HEADER_BYTES}): not a safetensors file?`);
      if (8 + headerBytes > source.size) {
        throw fail(`header length ${headerBytes} bytes runs past the end of the file (${source.size} bytes): truncated or not a safetensors file`);
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(await readExactly(source, name, 8, headerBytes));
      } catch {
        throw fail('header is not valid UTF-8');
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw fail(`header is not valid JSON (${(e as Error).message})`);
      }
      const { metadata, tensors } = parseHeader(json, 8 + headerBytes, source.size - 8 - headerBytes, fail);
      return new SafetensorsFile(name, metadata, tensors, source);
    } catch (e) {
      await source.close?.();
      throw e;
    }
  }

  /** The entry of tensor `name`; throws naming the file if there is none. */
  info(name: string): SafetensorsTensorInfo {
    const info = this.tensors.get(name);
    if (info) return info;
    const names = [...this.tensors.keys()];
    const listed = names.slice(0, 8).map((n) => `"${n}"`).join(', ') + (names.length > 8 ? ', ...' : '');
    throw new Error(`${this.name}: no tensor "${name}" (${names.length} tensors: ${listed})`);
  }

  /** The tensor's bytes as stored (little-endian), any dtype. */
  async readRaw(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    if (this.closed) throw new Error(`${this.name}: cannot read tensor "${name}": the file is closed`);
    try {
      return await readExactly(this.source, this.name, info.byteOffset, info.byteLength);
    } catch (e) {
      // A file cut short after open() (or a source that misbehaves) fails here: say which tensor.
      throw new Error(`${this.name}: reading tensor "${name}" (${info.dtype} [${info.shape.join(', ')}], ${info.byteLength} bytes at ${info.byteOffset}): ${(e as Error).message}`);
    }
  }

  /**
   * An F16 tensor's halves as stored (binary16 bit patterns, no conversion),
   * for uploading f16 weights as they are; widenF16 gives their values.
   */
  async readF16Bits(name: string): Promise<Uint16Array> {
    const { dtype } = this.info(name);
    if (dtype !== 'F16') throw new Error(`${this.name}: tensor "${name}" is ${dtype}, but readF16Bits() reads F16 only`);
    const bytes = await this.readRaw(name);
    const n = bytes.byteLength / 2;
    if (littleEndianHost && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getUint16(2 * i, true);
    return out;
  }

  /** The tensor as f32: F32 as stored (no copy), F16, BF16 and F64 converted. */
  async read(name: string): Promise<Float32Array> {
    const { dtype } = this.info(name);
    if (!SAFETENSORS_FLOAT_DTYPES.includes(dtype)) {
      throw new Error(`${this.name}: tensor "${name}" is ${dtype}, which read() does not convert to f32 (${knownDTypesText()})`);
    }
    return decodeFloat(dtype, await this.readRaw(name));
  }

  /** The tensor as int32 (token ids, labels): integer and BOOL dtypes; wider values must fit. */
  async readInt32(name: string): Promise<Int32Array> {
    const { dtype } = this.info(name);
    if (!SAFETENSORS_INT_DTYPES.includes(dtype)) {
      throw new Error(`${this.name}: tensor "${name}" is ${dtype}, which readInt32() does not convert (${knownDTypesText()})`);
    }
    return decodeInt(dtype, await this.readRaw(name), (problem) => new Error(`${this.name}: tensor "${name}": ${problem}`));
  }

  /** Closes the source; later reads throw. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.source.close?.();
  }
}

/** Opens a safetensors file; see SafetensorsFile.open. */
export const openSafetensors = (source: ByteSource, name?: string): Promise<SafetensorsFile> => SafetensorsFile.open(source, name);

export interface SafetensorsEntry {
  name: string;
  dtype: WritableDType;
  shape: readonly number[];
  /** Values, converted to dtype (F16/BF16 round to nearest even; integers must be exact and in range). */
  data: ArrayLike<number>;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function f32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0];
  if (Number.isNaN(value)) return (bits >>> 16) | 0x40; // keep it a NaN after truncation
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16; // round to nearest even; may carry into the exponent, as it should
}

const INT_RANGES: Partial<Record<WritableDType, [number, number]>> = {
  BOOL: [0, 1],
  U8: [0, 255],
  I8: [-128, 127],
  I16: [-32768, 32767],
  U16: [0, 65535],
  I32: [-2147483648, 2147483647],
  U32: [0, 4294967295],
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  U64: [0, Number.MAX_SAFE_INTEGER],
};

function encode(entry: SafetensorsEntry, view: DataView, fail: (problem: string) => Error): void {
  const { dtype, data } = entry;
  const range = INT_RANGES[dtype];
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (range && !(Number.isInteger(v) && v >= range[0] && v <= range[1])) throw fail(`element ${i} is ${v}, not an integer in [${range[0]}, ${range[1]}] as ${dtype} needs`);
    switch (dtype) {
      case 'F32': view.setFloat32(4 * i, v, true); break;
      case 'F64': view.setFloat64(8 * i, v, true); break;
      case 'F16': view.setUint16(2 * i, f32ToF16Bits(v), true); break;
      case 'BF16': view.setUint16(2 * i, f32ToBf16Bits(v), true); break;
      case 'I32': view.setInt32(4 * i, v, true); break;
      case 'U32': view.setUint32(4 * i, v, true); break;
      case 'I64': view.setBigInt64(8 * i, BigInt(v), true); break;
      case 'U64': view.setBigUint64(8 * i, BigInt(v), true); break;
      case 'I16': view.setInt16(2 * i, v, true); break;
      case 'U16': view.setUint16(2 * i, v, true); break;
      case 'I8': view.setInt8(i, v); break;
      default: view.setUint8(i, v); // U8, BOOL
    }
  }
}

/**
 * Serialises tensors (in the order given, contiguous) and optional string
 * metadata to safetensors bytes. The header is padded with spaces to a
 * multiple of 8 bytes, as the reference implementation does.
 */
export function writeSafetensors(tensors: readonly SafetensorsEntry[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  // Entries, not an object: a tensor named "__proto__" must stay a plain key.
  const header: Array<[string, unknown]> = [];
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new Error(`writeSafetensors: metadata value of "${key}" must be a string, got ${describe(value)}`);
    }
    header.push([METADATA_KEY, metadata]);
  }
  const names = new Set<string>();
  let dataBytes = 0;
  for (const t of tensors) {
    const where = `writeSafetensors: tensor "${t.name}"`;
    if (t.name === METADATA_KEY || t.name === '') throw new Error(`${where}: reserved or empty name`);
    if (names.has(t.name)) throw new Error(`${where}: duplicate name`);
    names.add(t.name);
    if (!Object.hasOwn(DTYPE_BYTES, t.dtype) || t.dtype.startsWith('F8')) {
      throw new Error(`${where}: cannot write dtype "${t.dtype}" (writable: ${Object.keys(DTYPE_BYTES).filter((d) => !d.startsWith('F8')).join(', ')})`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${where}: shape must be non-negative integers, got [${t.shape.join(', ')}]`);
    const count = t.shape.reduce((p, d) => p * d, 1);
    if (t.data.length !== count) throw new Error(`${where}: shape [${t.shape.join(', ')}] has ${count} elements, data has ${t.data.length}`);
    const length = count * DTYPE_BYTES[t.dtype];
    header.push([t.name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [dataBytes, dataBytes + length] }]);
    dataBytes += length;
  }
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded + dataBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, padded % 2 ** 32, true);
  view.setUint32(4, Math.floor(padded / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let offset = 8 + padded;
  for (const t of tensors) {
    const length = t.data.length * DTYPE_BYTES[t.dtype];
    encode(t, new DataView(out.buffer, offset, length), (problem) => new Error(`writeSafetensors: tensor "${t.name}": ${problem}`));
    offset += length;
  }
  return out;
}
