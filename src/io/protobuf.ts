// Minimal protobuf wire-format reader (browser-safe, no dependencies): enough
// to decode ONNX models without a protobuf library or a compiled schema.
//
// Wire format: a message is a sequence of (tag, value) records; tag = varint
// (field number << 3 | wire type). Wire types: 0 varint (int32/int64/uint64/
// bool/enum; negative int32/int64 take 10 bytes, sint* are zigzag-encoded),
// 1 fixed 8 bytes (fixed64/double), 2 length-delimited (varint length, then
// bytes: strings, bytes, nested messages, packed repeated scalars), 5 fixed
// 4 bytes (fixed32/float). 3/4 (groups) are deprecated and rejected here.
// Everything is little-endian. A repeated scalar may arrive packed (one
// wire-type-2 record) or unpacked (one record per value), and a parser must
// accept both.
//
// Every read is bounds-checked against the enclosing message and advances, so
// corrupt input throws an Error naming the source, the byte offset and the
// field path (e.g. `model.onnx: truncated varint at byte 1234 in
// graph.node[5].attribute[0]`) — never reads out of range or loops forever.

export const WireType = { VARINT: 0, FIXED64: 1, LENGTH_DELIMITED: 2, START_GROUP: 3, END_GROUP: 4, FIXED32: 5 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

const WIRE_TYPE_NAMES = ['varint', 'fixed64', 'length-delimited', 'start-group', 'end-group', 'fixed32'];
const wireTypeName = (w: number): string => WIRE_TYPE_NAMES[w] ?? `invalid (${w})`;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reads one message: the bytes [start, end) of `bytes`. */
export class ProtoReader {
  /** Absolute offset of the next byte to read. */
  pos: number;
  /** Field number and wire type of the record whose tag was read last. */
  field = 0;
  wireType = 0;
  /** Absolute offset of that record's tag, where errors about the record point. */
  tagAt = 0;
  // The last varint, as two unsigned 32-bit halves (JS numbers hold 53 bits, a varint 64).
  private lo = 0;
  private hi = 0;

  /**
   * @param source names the input in errors (a file name)
   * @param path names this message in errors (e.g. `graph.node[3]`)
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly source: string,
    readonly path: string,
    readonly start = 0,
    readonly end = bytes.byteLength,
  ) {
    if (start < 0 || end > bytes.byteLength || start > end) throw new Error(`${source}: message bounds [${start}, ${end}) lie outside the ${bytes.byteLength} input bytes`);
    this.pos = start;
  }

  /** An Error naming the source, a byte offset and this message's path. */
  error(problem: string, at = this.pos): Error {
    return new Error(`${this.source}: ${problem} at byte ${at}${this.path ? ` in ${this.path}` : ''}`);
  }

  /** Reads the next tag into `field`/`wireType`; false at the end of the message. */
  next(): boolean {
    if (this.pos >= this.end) return false;
    const at = this.pos;
    this.tagAt = at;
    this.readVarint();
    if (this.hi !== 0) throw this.error('tag does not fit in 32 bits', at);
    const wire = this.lo & 7;
    this.field = this.lo >>> 3;
    this.wireType = wire;
    if (this.field === 0) throw this.error('field number 0 in tag (not a protobuf message?)', at);
    if (wire > 5) throw this.error(`invalid wire type ${wire} for field ${this.field} (not a protobuf message?)`, at);
    return true;
  }

  /** Throws unless the current record has wire type `expected`; `name` is the field's name in the schema. */
  expect(expected: WireType, name: string): void {
    if (this.wireType !== expected) {
      throw this.error(`field ${this.field} (${name}) has wire type ${wireTypeName(this.wireType)}, expected ${wireTypeName(expected)}`, this.tagAt);
    }
  }

  /** Skips the value of the current record (a field this reader does not know). */
  skip(): void {
    switch (this.wireType) {
      case WireType.VARINT: this.readVarint(); break;
      case WireType.FIXED64: this.advance(8, 'fixed64 value'); break;
      case WireType.LENGTH_DELIMITED: this.advance(this.length(), 'length-delimited value'); break;
      case WireType.FIXED32: this.advance(4, 'fixed32 value'); break;
      default: throw this.error(`cannot skip field ${this.field} with wire type ${wireTypeName(this.wireType)} (groups are not supported)`, this.tagAt);
    }
  }

  private advance(n: number, what: string): number {
    const at = this.pos;
    if (n > this.end - at) throw this.error(`${what} of ${n} bytes runs past the end of its message (${this.end - at} bytes left)`, at);
    this.pos += n;
    return at;
  }

  private readVarint(): void {
    const { bytes, end } = this;
    const at = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw this.error('truncated varint', at);
      const b = bytes[this.pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32); // the 10th byte contributes its lowest bit (bit 63)
      if (b < 0x80) {
        this.lo = lo >>> 0;
        this.hi = hi >>> 0;
        return;
      }
    }
    throw this.error('varint longer than 10 bytes', at);
  }

  /** Two's-complement int64 varint as a number; values beyond ±2^53 lose precision. */
  int64(): number {
    this.readVarint();
    return (this.hi | 0) * 4294967296 + this.lo;
  }

  /** int64 varint, exact. */
  int64Big(): bigint {
    this.readVarint();
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo));
  }

  /** uint64 varint, exact. */
  uint64Big(): bigint {
    this.readVarint();
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** int32 varint (also enums): the low 32 bits, signed, as protobuf truncates. */
  int32(): number {
    this.readVarint();
    return this.lo | 0;
  }

  /** Zigzag-encoded sint64 as a number; values beyond ±2^53 lose precision. */
  sint64(): number {
    this.readVarint();
    // zigzag: n = (u >>> 1) ^ -(u & 1), on the 64-bit value
    const negative = this.lo & 1;
    const lo = ((this.lo >>> 1) | (this.hi << 31)) >>> 0;
    const hi = this.hi >>> 1;
    const magnitude = hi * 4294967296 + lo;
    return negative ? -magnitude - 1 : magnitude;
  }

  bool(): boolean {
    this.readVarint();
    return this.lo !== 0 || this.hi !== 0;
  }

  float(): number {
    const at = this.advance(4, 'float');
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + at, 4).getFloat32(0, true);
  }

  double(): number {
    const at = this.advance(8, 'double');
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + at, 8).getFloat64(0, true);
  }

  fixed32(): number {
    const at = this.advance(4, 'fixed32');
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + at, 4).getUint32(0, true);
  }

  fixed64(): bigint {
    const at = this.advance(8, 'fixed64');
    return new DataView(this.bytes.buffer, this.bytes.byteOffset + at, 8).getBigUint64(0, true);
  }

  /** A length prefix, checked against what is left of the message. */
  private length(): number {
    const at = this.pos;
    this.readVarint();
    const n = this.hi * 4294967296 + this.lo;
    if (n > this.end - this.pos) throw this.error(`length ${n} runs past the end of its message (${this.end - this.pos} bytes left)`, at);
    return n;
  }

  /** A length-delimited value as a view of the input (no copy). */
  bytesView(): Uint8Array {
    const n = this.length();
    const at = this.advance(n, 'bytes');
    return this.bytes.subarray(at, at + n);
  }

  /** A length-delimited UTF-8 string; invalid UTF-8 throws. */
  string(): string {
    const view = this.bytesView();
    try {
      return utf8.decode(view);
    } catch {
      throw this.error(`field ${this.field} is not valid UTF-8`, this.tagAt);
    }
  }

  /** A reader over the nested message in the current length-delimited record. */
  message(path: string): ProtoReader {
    const n = this.length();
    const at = this.advance(n, 'message');
    return new ProtoReader(this.bytes, this.source, path, at, at + n);
  }

  /**
   * The current record of a repeated scalar field, packed or not: calls
   * `read(reader)` once per value. `wire` is the field's unpacked wire type.
   */
  repeated(wire: WireType, name: string, read: (reader: ProtoReader) => void): void {
    if (this.wireType !== WireType.LENGTH_DELIMITED) {
      this.expect(wire, name);
      read(this);
      return;
    }
    const packed = this.message(`${this.path}.${name}`);
    const size = wire === WireType.FIXED32 ? 4 : wire === WireType.FIXED64 ? 8 : 1;
    const n = packed.end - packed.start;
    if (n % size !== 0) throw this.error(`packed field ${this.field} (${name}) has ${n} bytes, not a multiple of ${size}`, packed.start);
    while (packed.pos < packed.end) read(packed);
  }

  /** The current packed fixed32 record (floats) copied into a Float32Array. */
  packedFloats(name: string): Float32Array {
    this.expect(WireType.LENGTH_DELIMITED, name);
    const view = this.bytesView();
    if (view.byteLength % 4 !== 0) throw this.error(`packed field ${this.field} (${name}) has ${view.byteLength} bytes, not a multiple of 4`);
    return decodeLittleEndian(view, 4, (v, i) => v.getFloat32(i, true), Float32Array);
  }

  /** The current packed fixed64 record (doubles) copied into a Float64Array. */
  packedDoubles(name: string): Float64Array {
    this.expect(WireType.LENGTH_DELIMITED, name);
    const view = this.bytesView();
    if (view.byteLength % 8 !== 0) throw this.error(`packed field ${this.field} (${name}) has ${view.byteLength} bytes, not a multiple of 8`);
    return decodeLittleEndian(view, 8, (v, i) => v.getFloat64(i, true), Float64Array);
  }
}

/** Copies little-endian fixed-width values into a fresh typed array (a plain copy on little-endian hosts). */
function decodeLittleEndian<T extends Float32Array | Float64Array>(
  view: Uint8Array,
  size: number,
  get: (v: DataView, byteOffset: number) => number,
  Out: new (length: number) => T,
): T {
  const out = new Out(view.byteLength / size);
  if (littleEndianHost) {
    new Uint8Array(out.buffer).set(view);
    return out;
  }
  const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = get(dv, i * size);
  return out;
}
