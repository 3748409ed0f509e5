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
//
// Large repeated numeric fields (tensor data) are read in two passes without a
// JS value per element: countRepeated counts the values of a record — packed,
// or a run of unpacked records with the same tag — and the *Into methods then
// decode them straight into a typed array the caller sized from those counts.

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
  /** A DataView over all of `bytes`, made on first use and handed to nested readers. */
  private dataView?: DataView;

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

  private get view(): DataView {
    this.dataView ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    return this.dataView;
  }

  float(): number {
    return this.view.getFloat32(this.advance(4, 'float'), true);
  }

  double(): number {
    return this.view.getFloat64(this.advance(8, 'double'), true);
  }

  fixed32(): number {
    return this.view.getUint32(this.advance(4, 'fixed32'), true);
  }

  fixed64(): bigint {
    return this.view.getBigUint64(this.advance(8, 'fixed64'), true);
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
    const child = new ProtoReader(this.bytes, this.source, path, at, at + n);
    child.dataView = this.dataView;
    return child;
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

  /**
   * The tag byte of the current record, called right after its tag was read, when the tag
   * is one byte (field < 16), else -1: runs of unpacked records are recognised by that byte.
   */
  private runTag(): number {
    return this.pos - this.tagAt === 1 ? this.bytes[this.tagAt] : -1;
  }

  /** Skips further records that repeat the current one-byte tag `tag` (after the value just read), counting them. */
  private skipRun(tag: number, valueBytes: number): number {
    const { bytes, end } = this;
    let n = 0;
    if (tag < 0) return 0;
    if (valueBytes > 0) {
      while (this.pos + 1 + valueBytes <= end && bytes[this.pos] === tag) {
        this.tagAt = this.pos;
        this.pos += 1 + valueBytes;
        n++;
      }
      return n;
    }
    while (this.pos < end && bytes[this.pos] === tag) {
      this.tagAt = this.pos;
      this.pos++;
      this.readVarint();
      n++;
    }
    return n;
  }

  /**
   * Counts the values of a repeated scalar field starting at the current record, and moves
   * past them: a packed record, or an unpacked record together with the records right after
   * it that repeat its tag (one record per value). `wire` is the field's unpacked wire type.
   * Nothing is decoded or allocated; read the same records again with floatsInto & co.
   */
  countRepeated(wire: WireType, name: string): number {
    const size = wire === WireType.FIXED32 ? 4 : wire === WireType.FIXED64 ? 8 : 0;
    if (this.wireType === WireType.LENGTH_DELIMITED) {
      const n = this.length();
      const at = this.advance(n, `packed ${name}`);
      if (size > 0) {
        if (n % size !== 0) throw this.error(`packed field ${this.field} (${name}) has ${n} bytes, not a multiple of ${size}`, at);
        return n / size;
      }
      // Packed varints: one value per byte without the continuation bit.
      let count = 0;
      for (let i = at; i < at + n; i++) if (this.bytes[i] < 0x80) count++;
      if (n > 0 && this.bytes[at + n - 1] >= 0x80) throw this.error(`packed field ${this.field} (${name}) ends inside a varint`, at + n - 1);
      return count;
    }
    this.expect(wire, name);
    const tag = this.runTag();
    if (size > 0) this.advance(size, name);
    else this.readVarint();
    return 1 + this.skipRun(tag, size);
  }

  /**
   * Decodes the values countRepeated counted at the current record into `out` from index
   * `at`; returns the index after the last. Throws if they do not fit (the counts disagree).
   */
  private repeatedInto(wire: WireType, name: string, length: number, at: number, put: (reader: ProtoReader, index: number) => void): number {
    const size = wire === WireType.FIXED32 ? 4 : wire === WireType.FIXED64 ? 8 : 0;
    const overflow = () => this.error(`field ${this.field} (${name}) has more values than counted (${length})`, this.tagAt);
    if (this.wireType === WireType.LENGTH_DELIMITED) {
      const packed = this.message(`${this.path}.${name}`);
      const n = packed.end - packed.start;
      if (size > 0 && n % size !== 0) throw this.error(`packed field ${this.field} (${name}) has ${n} bytes, not a multiple of ${size}`, packed.start);
      while (packed.pos < packed.end) {
        if (at >= length) throw overflow();
        put(packed, at++);
      }
      return at;
    }
    this.expect(wire, name);
    const tag = this.runTag();
    for (;;) {
      if (at >= length) throw overflow();
      put(this, at++);
      if (tag < 0 || this.pos >= this.end || this.bytes[this.pos] !== tag) return at;
      if (size > 0 && this.pos + 1 + size > this.end) return at; // let next() report the truncated record
      this.tagAt = this.pos;
      this.pos++;
    }
  }

  /**
   * A packed record of fixed-width values copied byte for byte into `out` from index `at`
   * (little-endian hosts only, where the wire order is the memory order); -1 otherwise.
   */
  private packedCopy(out: Float32Array | Float64Array, at: number, size: number, name: string): number {
    if (!littleEndianHost || this.wireType !== WireType.LENGTH_DELIMITED) return -1;
    const bytes = this.bytesView();
    if (bytes.byteLength % size !== 0) throw this.error(`packed field ${this.field} (${name}) has ${bytes.byteLength} bytes, not a multiple of ${size}`, this.tagAt);
    const n = bytes.byteLength / size;
    if (at + n > out.length) throw this.error(`field ${this.field} (${name}) has more values than counted (${out.length})`, this.tagAt);
    new Uint8Array(out.buffer, out.byteOffset + at * size, bytes.byteLength).set(bytes);
    return at + n;
  }

  /** FLOAT values (fixed32) of the current record and its run into `out` (see countRepeated). */
  floatsInto(out: Float32Array, at: number, name: string): number {
    return this.fixedFloatsInto(out, at, name, 4);
  }

  /** DOUBLE values (fixed64) of the current record and its run into `out`. */
  doublesInto(out: Float64Array, at: number, name: string): number {
    return this.fixedFloatsInto(out, at, name, 8);
  }

  /** FLOAT (size 4) or DOUBLE (size 8) values: a packed record copied byte for byte where it can be, else value by value. */
  private fixedFloatsInto(out: Float32Array | Float64Array, at: number, name: string, size: 4 | 8): number {
    const copied = this.packedCopy(out, at, size, name);
    if (copied >= 0) return copied;
    const view = this.view;
    const read = size === 4 ? (r: ProtoReader) => view.getFloat32(r.advance(4, 'float'), true) : (r: ProtoReader) => view.getFloat64(r.advance(8, 'double'), true);
    return this.repeatedInto(size === 4 ? WireType.FIXED32 : WireType.FIXED64, name, out.length, at, (r, i) => {
      out[i] = read(r);
    });
  }

  /** int32 varints (low 32 bits, signed) of the current record and its run into `out`. */
  int32sInto(out: Int32Array, at: number, name: string): number {
    return this.repeatedInto(WireType.VARINT, name, out.length, at, (r, i) => {
      r.readVarint();
      out[i] = r.lo | 0;
    });
  }

  /** 64-bit varints of the current record and its run into `out`, bit for bit (no BigInt per value on little-endian hosts). */
  int64sInto(out: BigInt64Array | BigUint64Array, at: number, name: string): number {
    const halves = littleEndianHost ? new Uint32Array(out.buffer, out.byteOffset, out.length * 2) : null;
    return this.repeatedInto(WireType.VARINT, name, out.length, at, (r, i) => {
      r.readVarint();
      if (halves) {
        halves[2 * i] = r.lo;
        halves[2 * i + 1] = r.hi;
      } else {
        const bits = (BigInt(r.hi) << 32n) | BigInt(r.lo);
        out[i] = out instanceof BigInt64Array ? BigInt.asIntN(64, bits) : bits;
      }
    });
  }
}
