// ONNX model reader (browser-safe, no protobuf dependency): decodes a
// ModelProto from bytes with the wire-format reader in protobuf.ts, keeping
// what an engine needs — opsets, nodes with attributes, initializers, graph
// inputs/outputs — and skipping the rest (doc strings, value_info, metadata,
// training info, functions).
//
// Field numbers follow onnx/onnx.proto (proto2): ModelProto {1 ir_version,
// 2 producer_name, 3 producer_version, 7 graph, 8 opset_import}; GraphProto
// {1 node, 2 name, 5 initializer, 11 input, 12 output}; NodeProto {1 input,
// 2 output, 3 name, 4 op_type, 5 attribute, 7 domain}; AttributeProto {1 name,
// 2 f, 3 i, 4 s, 5 t, 6 g, 7 floats, 8 ints, 9 strings, 10 tensors, 11 graphs,
// 20 type}; TensorProto {1 dims, 2 data_type, 3 segment, 4 float_data,
// 5 int32_data, 6 string_data, 7 int64_data, 8 name, 9 raw_data, 10
// double_data, 11 uint64_data, 13 external_data, 14 data_location};
// ValueInfoProto {1 name, 2 type}; TypeProto {1 tensor_type {1 elem_type,
// 2 shape {1 dim {1 dim_value, 2 dim_param}}}}.
//
// Tensor bytes stay where they are: raw_data is a view into the input buffer
// (no copy), so parsing a 30 MB model costs little beyond the node list.
// Every tensor's byte size is checked against dims × dtype at parse time.
// Typed data fields (float_data, int64_data…, packed or one record per value)
// are counted first and then decoded straight into a typed array of the
// checked size: parsing costs about the size of the tensors it returns.
// Over 500 lines as one job: one decoder per message above, each checking its
// fields; the wire format itself is protobuf.ts.

import { ProtoReader, WireType } from './protobuf.js';
import { f16BitsToF32 } from '../half.js';
import { intsFromBytes, type IntKind } from './int-bytes.js';

/** TensorProto.DataType names, indexed by enum value. */
const DATA_TYPES = [
  'UNDEFINED', 'FLOAT', 'UINT8', 'INT8', 'UINT16', 'INT16', 'INT32', 'INT64', 'STRING', 'BOOL', 'FLOAT16', 'DOUBLE', 'UINT32',
  'UINT64', 'COMPLEX64', 'COMPLEX128', 'BFLOAT16', 'FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2', 'FLOAT8E5M2FNUZ', 'UINT4',
  'INT4', 'FLOAT4E2M1', 'FLOAT8E8M0', 'UINT2', 'INT2',
] as const;
export type OnnxDataType = (typeof DATA_TYPES)[number];

/** Bits per element (0: no fixed width). Sub-byte types pack LSB first. */
const DATA_TYPE_BITS: Record<OnnxDataType, number> = {
  UNDEFINED: 0, STRING: 0,
  BOOL: 8, UINT8: 8, INT8: 8, FLOAT8E4M3FN: 8, FLOAT8E4M3FNUZ: 8, FLOAT8E5M2: 8, FLOAT8E5M2FNUZ: 8, FLOAT8E8M0: 8,
  UINT16: 16, INT16: 16, FLOAT16: 16, BFLOAT16: 16,
  FLOAT: 32, INT32: 32, UINT32: 32,
  INT64: 64, UINT64: 64, DOUBLE: 64, COMPLEX64: 64,
  COMPLEX128: 128,
  UINT4: 4, INT4: 4, FLOAT4E2M1: 4,
  UINT2: 2, INT2: 2,
};

/** Which data types each typed field may hold (onnx.proto's comments on the fields). */
const FLOAT_DATA_TYPES: readonly OnnxDataType[] = ['FLOAT', 'COMPLEX64'];
const DOUBLE_DATA_TYPES: readonly OnnxDataType[] = ['DOUBLE', 'COMPLEX128'];
const UINT64_DATA_TYPES: readonly OnnxDataType[] = ['UINT32', 'UINT64'];
const INT32_DATA_TYPES: readonly OnnxDataType[] = [
  'INT32', 'INT16', 'INT8', 'UINT16', 'UINT8', 'BOOL', 'FLOAT16', 'BFLOAT16', 'FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2',
  'FLOAT8E5M2FNUZ', 'FLOAT8E8M0', 'UINT4', 'INT4', 'FLOAT4E2M1', 'UINT2', 'INT2',
];

/**
 * A tensor as stored: at most one of the data fields is set (none when it has
 * no elements). Values are little-endian in rawData; FLOAT16/BFLOAT16 in
 * int32Data are bit patterns; sub-byte types pack 2 (4-bit) or 4 (2-bit)
 * elements per byte of rawData or per int32Data entry.
 */
export interface OnnxTensor {
  name: string;
  dataType: OnnxDataType;
  dims: number[];
  /** A view into the parsed bytes (not a copy): copy before mutating or keeping past the input's lifetime. */
  rawData?: Uint8Array;
  /** FLOAT; COMPLEX64 as interleaved (re, im). */
  floatData?: Float32Array;
  /** INT32, INT16, INT8, UINT16, UINT8, BOOL, 16- and 8-bit float bit patterns, packed sub-byte types. */
  int32Data?: Int32Array;
  /** INT64. */
  int64Data?: BigInt64Array;
  /** DOUBLE; COMPLEX128 as interleaved (re, im). */
  doubleData?: Float64Array;
  /** UINT32, UINT64. */
  uint64Data?: BigUint64Array;
  /** STRING, each element's bytes. */
  stringData?: Uint8Array[];
}

/**
 * A node attribute. INT/INTS values beyond ±2^53 lose precision (ONNX uses
 * INT64_MAX as an "until the end" sentinel; it stays ≥ 2^63). SPARSE_TENSOR(S)
 * and TYPE_PROTO(S) are recognised but not decoded (value null).
 */
export type OnnxAttribute =
  | { type: 'FLOAT'; value: number }
  | { type: 'INT'; value: number }
  | { type: 'STRING'; value: string }
  | { type: 'TENSOR'; value: OnnxTensor }
  | { type: 'GRAPH'; value: OnnxGraph }
  | { type: 'FLOATS'; value: number[] }
  | { type: 'INTS'; value: number[] }
  | { type: 'STRINGS'; value: string[] }
  | { type: 'TENSORS'; value: OnnxTensor[] }
  | { type: 'GRAPHS'; value: OnnxGraph[] }
  | { type: 'SPARSE_TENSOR' | 'SPARSE_TENSORS' | 'TYPE_PROTO' | 'TYPE_PROTOS'; value: null };
export type OnnxAttributeType = OnnxAttribute['type'];

/** AttributeProto.AttributeType names, indexed by enum value (0 is UNDEFINED). */
const ATTRIBUTE_TYPES: readonly (OnnxAttributeType | undefined)[] = [
  undefined, 'FLOAT', 'INT', 'STRING', 'TENSOR', 'GRAPH', 'FLOATS', 'INTS', 'STRINGS', 'TENSORS', 'GRAPHS', 'SPARSE_TENSOR',
  'SPARSE_TENSORS', 'TYPE_PROTO', 'TYPE_PROTOS',
];

export interface OnnxNode {
  name: string;
  opType: string;
  /** '' is the default ai.onnx domain. */
  domain: string;
  /** '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

export interface ValueInfo {
  name: string;
  /** The tensor element type; 'UNDEFINED' for non-tensor values (sequences, maps, optionals). */
  elemType: OnnxDataType;
  /** Fixed sizes as numbers, symbolic ones by name, '?' for unknown; null when even the rank is unknown. */
  shape: (number | string)[] | null;
}

export interface OnnxGraph {
  name: string;
  /** In file order, which ONNX requires to be topological. */
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensor>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  /** '' is the default ai.onnx domain. */
  opsetImports: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graph: OnnxGraph;
}

/** Subgraph attributes (If/Loop/Scan bodies) nest; deeper than this is corrupt input, not a model. */
const MAX_GRAPH_DEPTH = 32;

const LEN = WireType.LENGTH_DELIMITED;

function stringField(r: ProtoReader, name: string): string {
  r.expect(LEN, name);
  return r.string();
}

function int64Field(r: ProtoReader, name: string): number {
  r.expect(WireType.VARINT, name);
  return r.int64();
}

function dataTypeName(r: ProtoReader, value: number, at: number): OnnxDataType {
  const name = DATA_TYPES[value];
  if (name === undefined) throw r.error(`unknown data type ${value} (known: 0..${DATA_TYPES.length - 1})`, at);
  return name;
}

/** Element count of `dims`; throws unless every dim is a non-negative integer and the product is exact. */
function elementCount(dims: readonly number[], fail: (problem: string) => Error): number {
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw fail(`dims [${dims.join(', ')}] contain ${d}, not a non-negative integer`);
    count *= d;
  }
  if (!Number.isSafeInteger(count)) throw fail(`dims [${dims.join(', ')}] have more than 2^53 elements`);
  return count;
}

/** TensorProto field numbers of the typed data fields, by name. */
const DATA_FIELDS = { float_data: 4, int32_data: 5, string_data: 6, int64_data: 7, double_data: 10, uint64_data: 11 } as const;
type DataField = keyof typeof DATA_FIELDS | 'raw_data';

/**
 * A TensorProto in two passes. The first reads the small fields and only counts the values
 * of the typed data fields (packed or unpacked, see ProtoReader.countRepeated); once the
 * counts are checked against dims × data_type, the second pass decodes the one data field
 * straight into a typed array of that size. No JS value per element, so an unpacked
 * float_data of millions of values costs its Float32Array and nothing more.
 */
function parseTensor(r: ProtoReader): OnnxTensor {
  const dims: number[] = [];
  let dataType = 0;
  let dataTypeAt = r.start;
  let name = '';
  let rawData: Uint8Array | undefined;
  const counts: Record<Exclude<DataField, 'raw_data'>, number> = { float_data: 0, int32_data: 0, string_data: 0, int64_data: 0, double_data: 0, uint64_data: 0 };
  let external = false;
  const present = new Set<DataField>();
  while (r.next()) {
    switch (r.field) {
      case 1: r.repeated(WireType.VARINT, 'dims', (p) => dims.push(p.int64())); break;
      case 2: r.expect(WireType.VARINT, 'data_type'); dataTypeAt = r.pos; dataType = r.int32(); break;
      case 3: throw r.error('segmented tensors (TensorProto.segment) are not supported');
      case 4: present.add('float_data'); counts.float_data += r.countRepeated(WireType.FIXED32, 'float_data'); break;
      case 5: present.add('int32_data'); counts.int32_data += r.countRepeated(WireType.VARINT, 'int32_data'); break;
      case 6: present.add('string_data'); r.expect(LEN, 'string_data'); r.skip(); counts.string_data++; break;
      case 7: present.add('int64_data'); counts.int64_data += r.countRepeated(WireType.VARINT, 'int64_data'); break;
      case 8: name = stringField(r, 'name'); break;
      case 9: present.add('raw_data'); r.expect(LEN, 'raw_data'); rawData = r.bytesView(); break;
      case 10: present.add('double_data'); counts.double_data += r.countRepeated(WireType.FIXED64, 'double_data'); break;
      case 11: present.add('uint64_data'); counts.uint64_data += r.countRepeated(WireType.VARINT, 'uint64_data'); break;
      case 13: r.expect(LEN, 'external_data'); r.skip(); external = true; break;
      case 14: r.expect(WireType.VARINT, 'data_location'); if (r.int32() === 1) external = true; break;
      default: r.skip();
    }
  }
  const fail = (problem: string) => r.error(`tensor "${name}": ${problem}`, r.start);
  if (external) {
    throw fail('data is stored externally (data_location = EXTERNAL), which is not supported: save the model with its weights embedded');
  }
  const type = dataTypeName(r, dataType, dataTypeAt);
  if (type === 'UNDEFINED') throw fail('data_type is missing or UNDEFINED');
  const count = elementCount(dims, fail);
  const tensor: OnnxTensor = { name, dataType: type, dims };
  if (present.size > 1) throw fail(`data is in more than one field (${[...present].join(', ')})`);
  const [field] = present;
  const bits = DATA_TYPE_BITS[type];
  const shapeText = `${type} dims [${dims.join(', ')}] (${count} elements)`;
  const checkCount = (length: number, expected: number, allowed: readonly OnnxDataType[]) => {
    if (!allowed.includes(type)) throw fail(`${field} cannot hold ${type} values (it holds ${allowed.join(', ')})`);
    if (length !== expected) throw fail(`${shapeText} need ${expected} ${field} entries, got ${length}`);
  };
  switch (field) {
    case undefined:
      if (count !== 0) throw fail(`${shapeText} but no data`);
      return tensor;
    case 'raw_data': {
      if (type === 'STRING') throw fail('STRING tensors must use string_data, not raw_data');
      const expected = Math.ceil((count * bits) / 8);
      if (rawData!.byteLength !== expected) throw fail(`${shapeText} need ${expected} bytes, raw_data has ${rawData!.byteLength}`);
      tensor.rawData = rawData;
      return tensor;
    }
    case 'float_data': checkCount(counts.float_data, type === 'COMPLEX64' ? 2 * count : count, FLOAT_DATA_TYPES); break;
    case 'double_data': checkCount(counts.double_data, type === 'COMPLEX128' ? 2 * count : count, DOUBLE_DATA_TYPES); break;
    case 'int32_data': checkCount(counts.int32_data, bits < 8 ? Math.ceil((count * bits) / 8) : count, INT32_DATA_TYPES); break;
    case 'int64_data': checkCount(counts.int64_data, count, ['INT64']); break;
    case 'uint64_data': checkCount(counts.uint64_data, count, UINT64_DATA_TYPES); break;
    case 'string_data': checkCount(counts.string_data, count, ['STRING']); break;
  }
  // Second pass: the counts match the dims, so the typed array is allocated at its final size.
  const n = counts[field];
  const fieldNumber = DATA_FIELDS[field];
  const again = new ProtoReader(r.bytes, r.source, r.path, r.start, r.end);
  let filled = 0;
  let decode: () => void;
  switch (field) {
    case 'float_data': { const out = (tensor.floatData = new Float32Array(n)); decode = () => { filled = again.floatsInto(out, filled, field); }; break; }
    case 'double_data': { const out = (tensor.doubleData = new Float64Array(n)); decode = () => { filled = again.doublesInto(out, filled, field); }; break; }
    case 'int32_data': { const out = (tensor.int32Data = new Int32Array(n)); decode = () => { filled = again.int32sInto(out, filled, field); }; break; }
    case 'int64_data': { const out = (tensor.int64Data = new BigInt64Array(n)); decode = () => { filled = again.int64sInto(out, filled, field); }; break; }
    case 'uint64_data': { const out = (tensor.uint64Data = new BigUint64Array(n)); decode = () => { filled = again.int64sInto(out, filled, field); }; break; }
    case 'string_data': { const out: Uint8Array[] = (tensor.stringData = []); decode = () => { out.push(again.bytesView()); filled++; }; break; }
  }
  while (again.next()) {
    if (again.field === fieldNumber) decode();
    else again.skip();
  }
  if (filled !== n) throw fail(`${field} decoded to ${filled} values, but ${n} were counted (internal error)`);
  return tensor;
}

function parseValueInfo(r: ProtoReader): ValueInfo {
  const info: ValueInfo = { name: '', elemType: 'UNDEFINED', shape: null };
  while (r.next()) {
    if (r.field === 1) info.name = stringField(r, 'name');
    else if (r.field === 2) {
      r.expect(LEN, 'type');
      const type = r.message(`${r.path}.type`);
      while (type.next()) {
        if (type.field !== 1) {
          type.skip(); // sequence/map/optional/sparse types: not a dense tensor
          continue;
        }
        type.expect(LEN, 'tensor_type');
        const tensorType = type.message(`${type.path}.tensor_type`);
        while (tensorType.next()) {
          if (tensorType.field === 1) {
            tensorType.expect(WireType.VARINT, 'elem_type');
            const at = tensorType.pos;
            info.elemType = dataTypeName(tensorType, tensorType.int32(), at);
          } else if (tensorType.field === 2) {
            tensorType.expect(LEN, 'shape');
            info.shape = parseShape(tensorType.message(`${tensorType.path}.shape`));
          } else tensorType.skip();
        }
      }
    } else r.skip();
  }
  return info;
}

function parseShape(r: ProtoReader): (number | string)[] {
  const shape: (number | string)[] = [];
  while (r.next()) {
    if (r.field !== 1) {
      r.skip();
      continue;
    }
    r.expect(LEN, 'dim');
    const dim = r.message(`${r.path}.dim[${shape.length}]`);
    let value: number | string = '?';
    while (dim.next()) {
      if (dim.field === 1) value = int64Field(dim, 'dim_value');
      else if (dim.field === 2) value = stringField(dim, 'dim_param');
      else dim.skip();
    }
    shape.push(value);
  }
  return shape;
}

function parseAttribute(r: ProtoReader, depth: number): [string, OnnxAttribute] {
  let name = '';
  let typeCode = 0;
  let typeAt = r.start;
  let f = 0;
  let i = 0;
  let s = '';
  let t: OnnxTensor | undefined;
  let g: OnnxGraph | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  const strings: string[] = [];
  const tensors: OnnxTensor[] = [];
  const graphs: OnnxGraph[] = [];
  while (r.next()) {
    switch (r.field) {
      case 1: name = stringField(r, 'name'); break;
      case 2: r.expect(WireType.FIXED32, 'f'); f = r.float(); break;
      case 3: i = int64Field(r, 'i'); break;
      case 4: s = stringField(r, 's'); break;
      case 5: r.expect(LEN, 't'); t = parseTensor(r.message(`${r.path}.t`)); break;
      case 6: r.expect(LEN, 'g'); g = parseGraph(r.message(`${r.path}.g`), depth + 1); break;
      case 7: r.repeated(WireType.FIXED32, 'floats', (p) => floats.push(p.float())); break;
      case 8: r.repeated(WireType.VARINT, 'ints', (p) => ints.push(p.int64())); break;
      case 9: strings.push(stringField(r, 'strings')); break;
      case 10: r.expect(LEN, 'tensors'); tensors.push(parseTensor(r.message(`${r.path}.tensors[${tensors.length}]`))); break;
      case 11: r.expect(LEN, 'graphs'); graphs.push(parseGraph(r.message(`${r.path}.graphs[${graphs.length}]`), depth + 1)); break;
      case 20: r.expect(WireType.VARINT, 'type'); typeAt = r.pos; typeCode = r.int32(); break;
      default: r.skip();
    }
  }
  const type = ATTRIBUTE_TYPES[typeCode];
  const where = `attribute "${name}"`;
  if (typeCode === 0) throw r.error(`${where} has no type (IR version 1 models are not supported)`, r.start);
  if (type === undefined) throw r.error(`${where} has unknown type ${typeCode}`, typeAt);
  const missing = (field: string) => r.error(`${where} is ${type} but has no ${field}`, r.start);
  switch (type) {
    case 'FLOAT': return [name, { type, value: f }];
    case 'INT': return [name, { type, value: i }];
    case 'STRING': return [name, { type, value: s }];
    case 'TENSOR':
      if (!t) throw missing('t');
      return [name, { type, value: t }];
    case 'GRAPH':
      if (!g) throw missing('g');
      return [name, { type, value: g }];
    case 'FLOATS': return [name, { type, value: floats }];
    case 'INTS': return [name, { type, value: ints }];
    case 'STRINGS': return [name, { type, value: strings }];
    case 'TENSORS': return [name, { type, value: tensors }];
    case 'GRAPHS': return [name, { type, value: graphs }];
    default: return [name, { type, value: null }];
  }
}

function parseNode(r: ProtoReader, depth: number): OnnxNode {
  const node: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: {} };
  let attributeCount = 0;
  while (r.next()) {
    switch (r.field) {
      case 1: node.inputs.push(stringField(r, 'input')); break;
      case 2: node.outputs.push(stringField(r, 'output')); break;
      case 3: node.name = stringField(r, 'name'); break;
      case 4: node.opType = stringField(r, 'op_type'); break;
      case 7: node.domain = stringField(r, 'domain'); break;
      case 5: {
        r.expect(LEN, 'attribute');
        const at = r.pos;
        const [name, attribute] = parseAttribute(r.message(`${r.path}.attribute[${attributeCount++}]`), depth);
        if (Object.hasOwn(node.attributes, name)) throw r.error(`duplicate attribute "${name}"`, at);
        // defineProperty, so an attribute named "__proto__" stays a plain key
        Object.defineProperty(node.attributes, name, { value: attribute, enumerable: true, writable: true, configurable: true });
        break;
      }
      default: r.skip();
    }
  }
  if (node.opType === '') throw r.error(`node "${node.name}" has no op_type`, r.start);
  return node;
}

function parseGraph(r: ProtoReader, depth: number): OnnxGraph {
  if (depth > MAX_GRAPH_DEPTH) throw r.error(`subgraphs nested deeper than ${MAX_GRAPH_DEPTH} levels`, r.start);
  const graph: OnnxGraph = { name: '', nodes: [], initializers: new Map(), inputs: [], outputs: [] };
  let initializerCount = 0;
  while (r.next()) {
    switch (r.field) {
      case 1: r.expect(LEN, 'node'); graph.nodes.push(parseNode(r.message(`${r.path}.node[${graph.nodes.length}]`), depth)); break;
      case 2: graph.name = stringField(r, 'name'); break;
      case 5: {
        r.expect(LEN, 'initializer');
        const at = r.pos;
        const tensor = parseTensor(r.message(`${r.path}.initializer[${initializerCount++}]`));
        if (graph.initializers.has(tensor.name)) throw r.error(`duplicate initializer "${tensor.name}"`, at);
        graph.initializers.set(tensor.name, tensor);
        break;
      }
      case 11: r.expect(LEN, 'input'); graph.inputs.push(parseValueInfo(r.message(`${r.path}.input[${graph.inputs.length}]`))); break;
      case 12: r.expect(LEN, 'output'); graph.outputs.push(parseValueInfo(r.message(`${r.path}.output[${graph.outputs.length}]`))); break;
      default: r.skip();
    }
  }
  return graph;
}

/**
 * Parses an ONNX model (a serialized ModelProto). `name` (a file name)
 * prefixes every error, which also gives the byte offset and field path.
 * The result's tensors view `bytes` (no copy): keep it unchanged while using them.
 */
export function parseOnnx(bytes: Uint8Array, name = 'ONNX model'): OnnxModel {
  if (!(bytes instanceof Uint8Array)) throw new Error(`${name}: expected the bytes of an ONNX model as a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`);
  // A plain view: Node's Buffer.slice shares memory, and tensors' rawData must behave like Uint8Array.
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new ProtoReader(plain, name, 'model');
  let irVersion: number | undefined;
  let graph: OnnxGraph | undefined;
  const model = { opsetImports: [] as OnnxModel['opsetImports'], producerName: '', producerVersion: '' };
  while (r.next()) {
    switch (r.field) {
      case 1: irVersion = int64Field(r, 'ir_version'); break;
      case 2: model.producerName = stringField(r, 'producer_name'); break;
      case 3: model.producerVersion = stringField(r, 'producer_version'); break;
      case 7: r.expect(LEN, 'graph'); graph = parseGraph(r.message('graph'), 0); break;
      case 8: {
        r.expect(LEN, 'opset_import');
        const opset = r.message(`opset_import[${model.opsetImports.length}]`);
        const entry = { domain: '', version: 0 };
        while (opset.next()) {
          if (opset.field === 1) entry.domain = stringField(opset, 'domain');
          else if (opset.field === 2) entry.version = int64Field(opset, 'version');
          else opset.skip();
        }
        model.opsetImports.push(entry);
        break;
      }
      default: r.skip();
    }
  }
  if (graph === undefined) throw new Error(`${name}: not an ONNX model: the ModelProto has no graph (field 7)`);
  if (irVersion === undefined) throw new Error(`${name}: not an ONNX model: the ModelProto has no ir_version (field 1)`);
  return { irVersion, ...model, graph };
}

function tensorError(t: OnnxTensor, problem: string): Error {
  return new Error(`tensor "${t.name}" (${t.dataType} [${t.dims.join(', ')}]): ${problem}`);
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function rawView(raw: Uint8Array): DataView {
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** The values of a FLOAT, FLOAT16, BFLOAT16 or DOUBLE tensor as a fresh Float32Array (DOUBLE narrowed). */
export function tensorToFloat32(t: OnnxTensor): Float32Array {
  const { rawData: raw } = t;
  switch (t.dataType) {
    case 'FLOAT':
      if (raw) {
        if (littleEndianHost) {
          const out = new Float32Array(raw.byteLength / 4);
          new Uint8Array(out.buffer).set(raw);
          return out;
        }
        const view = rawView(raw);
        return Float32Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(4 * i, true));
      }
      return Float32Array.from(t.floatData ?? []);
    case 'DOUBLE':
      if (raw) {
        const view = rawView(raw);
        return Float32Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getFloat64(8 * i, true));
      }
      return Float32Array.from(t.doubleData ?? []);
    case 'FLOAT16':
    case 'BFLOAT16': {
      let bits: Uint16Array;
      if (raw) {
        const view = rawView(raw);
        bits = new Uint16Array(raw.byteLength / 2);
        for (let i = 0; i < bits.length; i++) bits[i] = view.getUint16(2 * i, true);
      } else bits = Uint16Array.from(t.int32Data ?? []); // bit patterns, one per int32
      if (t.dataType === 'FLOAT16') return Float32Array.from(bits, f16BitsToF32);
      const out = new Float32Array(bits.length);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16; // bf16 is the upper half of an f32
      return out;
    }
    default:
      throw tensorError(t, 'tensorToFloat32 converts FLOAT, FLOAT16, BFLOAT16 and DOUBLE tensors only');
  }
}

/** Integer and BOOL dtypes tensorToInt32 converts, and how their raw bytes read. */
const ONNX_INT_KINDS = { INT32: 'i32', INT64: 'i64', INT16: 'i16', INT8: 'i8', UINT8: 'u8', UINT16: 'u16', UINT32: 'u32', UINT64: 'u64', BOOL: 'u8' } as const satisfies Partial<Record<OnnxDataType, IntKind>>;
const INT32_CONVERTIBLE = Object.keys(ONNX_INT_KINDS) as OnnxDataType[];

/**
 * The values of an integer or BOOL tensor as a fresh Int32Array. 64-bit and
 * UINT32 values must fit in int32 (shape tensors, axes, indices) unless
 * `saturate` is set, which clamps them to [-2^31, 2^31 - 1] — for Slice/Range
 * bounds, where ONNX exporters write INT64_MAX/MIN to mean "to the end".
 */
export function tensorToInt32(t: OnnxTensor, options: { saturate?: boolean } = {}): Int32Array {
  if (!INT32_CONVERTIBLE.includes(t.dataType)) {
    throw tensorError(t, `tensorToInt32 converts ${INT32_CONVERTIBLE.join(', ')} tensors only`);
  }
  const narrow = (i: number, v: bigint | number): number => {
    if (v >= -2147483648 && v <= 2147483647) return Number(v);
    if (options.saturate) return v < 0 ? -2147483648 : 2147483647;
    throw tensorError(t, `element ${i} is ${v}, which does not fit in int32 (pass { saturate: true } to clamp)`);
  };
  const raw = t.rawData;
  if (!raw) {
    const values = t.int64Data ?? t.uint64Data ?? t.int32Data ?? [];
    const out = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = narrow(i, values[i]);
    return out;
  }
  return intsFromBytes(raw, ONNX_INT_KINDS[t.dataType as keyof typeof ONNX_INT_KINDS], narrow);
}

/** Size in bytes of the tensor's values as stored in raw_data form (sub-byte types packed). */
export function tensorByteLength(t: OnnxTensor): number {
  const count = t.dims.reduce((p, d) => p * d, 1);
  return Math.ceil((count * DATA_TYPE_BITS[t.dataType]) / 8);
}
