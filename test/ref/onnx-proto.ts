// A small ONNX protobuf reader and rewriter for the tests, written from
// onnx.proto (ModelProto / GraphProto / NodeProto / TensorProto field numbers)
// and the protobuf wire format, sharing no code with src/io (protobuf.ts,
// onnx.ts): references built on it (test/ref/tinyvit-onnx.ts reads its
// weights through it; patched copies of sam.onnx run in onnxruntime-node) do
// not go through the engine's loader.
//
// Only what the MobileSAM files use: FLOAT and INT64 tensors in raw_data (or
// the typed fields), node names / op types / inputs / outputs, INT, INTS,
// FLOAT and TENSOR attributes.

/** One field of a message: its number, wire type and where its payload is. */
interface Field {
  no: number;
  wire: number;
  /** varint value (wire 0) as a signed int64, exact within ±2^53 */
  value: number;
  /** payload start / end (wire 2: the bytes; wire 1, 5: the fixed bytes) */
  at: number;
  end: number;
  /** the whole record, tag included */
  start: number;
}

function varint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let mul = 1;
  for (let k = 0; k < 10; k++) {
    if (pos >= buf.length) throw new Error(`onnx-proto: varint runs past the end at ${pos}`);
    const b = buf[pos++];
    if (k === 7 && b >= 0x80) return bigVarint(buf, pos - 8);
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) return [value, pos];
  }
  throw new Error(`onnx-proto: varint longer than 10 bytes at ${pos}`);
}

/** A varint of 9 or 10 bytes (a negative int64, or ≥ 2^56) read as a signed int64. */
function bigVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0n;
  for (let k = 0; k < 10; k++) {
    if (pos >= buf.length) throw new Error(`onnx-proto: varint runs past the end at ${pos}`);
    const b = buf[pos++];
    value |= BigInt(b & 0x7f) << BigInt(7 * k);
    if (b < 0x80) return [Number(BigInt.asIntN(64, value)), pos];
  }
  throw new Error(`onnx-proto: varint longer than 10 bytes at ${pos}`);
}

/** The fields of the message in buf[from, to). */
function fields(buf: Uint8Array, from = 0, to = buf.length): Field[] {
  const out: Field[] = [];
  let pos = from;
  while (pos < to) {
    const start = pos;
    let tag: number;
    [tag, pos] = varint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    let value = 0;
    let at = pos;
    if (wire === 0) [value, pos] = varint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let len: number;
      [len, at] = varint(buf, pos);
      pos = at + len;
    } else throw new Error(`onnx-proto: wire type ${wire} (field ${no}) at ${start}`);
    if (pos > to) throw new Error(`onnx-proto: field ${no} at ${start} runs past its message`);
    out.push({ no, wire, value, at: wire === 0 ? pos : at, end: pos, start });
  }
  return out;
}

/** The payload of f (buf may be a Node Buffer, a view into a larger pool). */
const viewOf = (buf: Uint8Array, f: Field) => new DataView(buf.buffer, buf.byteOffset + f.at, f.end - f.at);

const text = (buf: Uint8Array, f: Field) => new TextDecoder().decode(buf.subarray(f.at, f.end));

/** Repeated int64 (packed or one per record); beyond ±2^53 only approximately. */
function int64s(buf: Uint8Array, fs: Field[]): number[] {
  const out: number[] = [];
  for (const f of fs) {
    if (f.wire === 0) out.push(f.value);
    else for (let p = f.at; p < f.end; ) {
      let v: number;
      [v, p] = varint(buf, p);
      out.push(v);
    }
  }
  return out;
}

export const FLOAT = 1;
export const INT64 = 7;

export interface ProtoTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** FLOAT: the values; INT64: the values as numbers */
  data: Float64Array;
}

function tensor(buf: Uint8Array, from: number, to: number): ProtoTensor {
  const fs = fields(buf, from, to);
  const dims = int64s(buf, fs.filter((f) => f.no === 1));
  const dataType = fs.find((f) => f.no === 2)?.value ?? 0;
  const name = fs.filter((f) => f.no === 8).map((f) => text(buf, f))[0] ?? '';
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = fs.find((f) => f.no === 9);
  let data: Float64Array;
  if (raw) {
    const bytes = raw.end - raw.at;
    if ((dataType === FLOAT || dataType === INT64) && bytes !== count * (dataType === FLOAT ? 4 : 8)) {
      throw new Error(`onnx-proto: tensor ${name} has ${bytes} raw bytes for dims [${dims}]`);
    }
    if (dataType === FLOAT) {
      // an aligned copy (buf may be a view into a Node Buffer pool), read as little-endian f32 like every host this runs on
      const copy = new Uint8Array(bytes);
      copy.set(buf.subarray(raw.at, raw.end));
      data = Float64Array.from(new Float32Array(copy.buffer));
    } else if (dataType === INT64) {
      const view = viewOf(buf, raw);
      data = Float64Array.from({ length: count }, (_, i) => Number(view.getBigInt64(8 * i, true)));
    } else data = new Float64Array(0);
  } else if (dataType === FLOAT) {
    const values: number[] = [];
    for (const f of fs.filter((g) => g.no === 4)) {
      const view = viewOf(buf, f);
      for (let i = 0; i < view.byteLength; i += 4) values.push(view.getFloat32(i, true));
    }
    data = Float64Array.from(values);
  } else if (dataType === INT64) data = Float64Array.from(int64s(buf, fs.filter((f) => f.no === 7)));
  else data = new Float64Array(0);
  return { name, dims, dataType, data };
}

export interface ProtoAttribute {
  i?: number;
  f?: number;
  ints?: number[];
  t?: ProtoTensor;
}

export interface ProtoNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes: Map<string, ProtoAttribute>;
}

export interface ProtoModel {
  nodes: ProtoNode[];
  /** initializers and Constant-node values, by the name that consumers use */
  tensors: Map<string, ProtoTensor>;
  /** names of initializers (a subset of tensors' keys) */
  initializers: Set<string>;
}

function attribute(buf: Uint8Array, from: number, to: number): [string, ProtoAttribute] {
  const fs = fields(buf, from, to);
  const a: ProtoAttribute = {};
  let name = '';
  for (const f of fs) {
    if (f.no === 1) name = text(buf, f);
    else if (f.no === 2) a.f = viewOf(buf, f).getFloat32(0, true);
    else if (f.no === 3) a.i = int64s(buf, [f])[0];
    else if (f.no === 5) a.t = tensor(buf, f.at, f.end);
  }
  const ints = fs.filter((f) => f.no === 8);
  if (ints.length > 0) a.ints = int64s(buf, ints);
  return [name, a];
}

/** The graph record of a ModelProto (field 7). */
function graphField(buf: Uint8Array): Field {
  const g = fields(buf).find((f) => f.no === 7);
  if (!g) throw new Error('onnx-proto: no graph in the model');
  return g;
}

/** Nodes, initializers and Constant values of an ONNX model. */
export function readOnnxModel(buf: Uint8Array): ProtoModel {
  const g = graphField(buf);
  const nodes: ProtoNode[] = [];
  const tensors = new Map<string, ProtoTensor>();
  const initializers = new Set<string>();
  for (const f of fields(buf, g.at, g.end)) {
    if (f.no === 5) {
      const t = tensor(buf, f.at, f.end);
      tensors.set(t.name, t);
      initializers.add(t.name);
    } else if (f.no === 1) {
      const n: ProtoNode = { name: '', opType: '', inputs: [], outputs: [], attributes: new Map() };
      for (const nf of fields(buf, f.at, f.end)) {
        if (nf.no === 1) n.inputs.push(text(buf, nf));
        else if (nf.no === 2) n.outputs.push(text(buf, nf));
        else if (nf.no === 3) n.name = text(buf, nf);
        else if (nf.no === 4) n.opType = text(buf, nf);
        else if (nf.no === 5) n.attributes.set(...attribute(buf, nf.at, nf.end));
      }
      nodes.push(n);
      const value = n.attributes.get('value')?.t;
      if (n.opType === 'Constant' && value) tensors.set(n.outputs[0], { ...value, name: n.outputs[0] });
    }
  }
  return { nodes, tensors, initializers };
}

// ---- writing ----

function putVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

function record(no: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const head: number[] = [];
  putVarint(head, no * 8 + 2);
  putVarint(head, bytes.length);
  return concat([Uint8Array.from(head), bytes]);
}

function varintRecord(no: number, v: number): Uint8Array {
  const out: number[] = [];
  putVarint(out, no * 8);
  putVarint(out, v);
  return Uint8Array.from(out);
}

/** TensorProto FLOAT with raw_data. */
function floatTensor(name: string, dims: number[], data: ArrayLike<number>): Uint8Array {
  const raw = new Uint8Array(new Float32Array(Array.from(data)).buffer);
  return concat([...dims.map((d) => varintRecord(1, d)), varintRecord(2, FLOAT), record(8, name), record(9, raw)]);
}

/** ValueInfoProto of a FLOAT tensor with fixed dims. */
function floatValueInfo(name: string, dims: number[]): Uint8Array {
  const shape = concat(dims.map((d) => record(1, varintRecord(1, d))));
  const tensorType = concat([varintRecord(1, FLOAT), record(2, shape)]);
  return concat([record(1, name), record(2, record(1, tensorType))]);
}

export interface OnnxPatch {
  /** graph inputs re-declared as FLOAT with these dims */
  inputDims?: Record<string, number[]>;
  /** Constant nodes (by output name) given a new FLOAT value; `check` sees the value replaced (and may throw) */
  constants?: Record<string, { dims: number[]; data: ArrayLike<number>; check?: (old: ProtoTensor) => void }>;
}

/**
 * A copy of the model with some graph inputs re-declared and some Constant
 * values replaced; every other record is copied byte for byte. Throws when a
 * named input or Constant is not found.
 */
export function patchOnnxModel(buf: Uint8Array, patch: OnnxPatch): Uint8Array {
  const g = graphField(buf);
  const inputDims = new Map(Object.entries(patch.inputDims ?? {}));
  const constants = new Map(Object.entries(patch.constants ?? {}));
  const seen = new Set<string>();
  const graphParts: Uint8Array[] = [];
  for (const f of fields(buf, g.at, g.end)) {
    let replaced: Uint8Array | undefined;
    if (f.no === 11) {
      const name = fields(buf, f.at, f.end).filter((v) => v.no === 1).map((v) => text(buf, v))[0];
      const dims = inputDims.get(name);
      if (dims) {
        replaced = record(11, floatValueInfo(name, dims));
        seen.add(`input ${name}`);
      }
    } else if (f.no === 1) {
      const nf = fields(buf, f.at, f.end);
      const output = nf.filter((v) => v.no === 2).map((v) => text(buf, v))[0];
      const opType = nf.filter((v) => v.no === 4).map((v) => text(buf, v))[0];
      const value = opType === 'Constant' ? constants.get(output) : undefined;
      if (value) {
        const old = nf.find((v) => v.no === 5);
        if (value.check) value.check(old ? attribute(buf, old.at, old.end)[1].t ?? tensor(buf, 0, 0) : tensor(buf, 0, 0));
        const name = nf.filter((v) => v.no === 3).map((v) => text(buf, v))[0] ?? '';
        const attr = concat([record(1, 'value'), record(5, floatTensor(output, value.dims, value.data)), varintRecord(20, 4)]);
        replaced = record(1, concat([record(2, output), record(3, name), record(4, 'Constant'), record(5, attr)]));
        seen.add(`constant ${output}`);
      }
    }
    graphParts.push(replaced ?? buf.subarray(f.start, f.end));
  }
  for (const name of inputDims.keys()) if (!seen.has(`input ${name}`)) throw new Error(`patchOnnxModel: no graph input ${name}`);
  for (const name of constants.keys()) if (!seen.has(`constant ${name}`)) throw new Error(`patchOnnxModel: no Constant node with output ${name}`);
  const top = fields(buf).map((f) => (f.no === 7 ? record(7, concat(graphParts)) : buf.subarray(f.start, f.end)));
  return concat(top);
}
