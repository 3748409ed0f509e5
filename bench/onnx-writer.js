// A minimal ONNX writer for benchmark graphs: one ModelProto (IR 8, opset 17)
// holding a single node, its graph inputs/outputs (f32 tensors of fixed
// shape) and optional f32 initializers. Enough for onnxruntime to run one op.
//
// Protobuf wire format: each field is a varint key (field << 3 | wire type),
// then a varint (type 0), 4 little-endian bytes (type 5) or a varint length
// and the bytes (type 2). Field numbers from onnx/onnx.proto (the same ones
// src/io/onnx.ts reads): ModelProto {1 ir_version, 2 producer_name, 7 graph,
// 8 opset_import}; OperatorSetIdProto {1 domain, 2 version}; GraphProto
// {1 node, 2 name, 5 initializer, 11 input, 12 output}; NodeProto {1 input,
// 2 output, 3 name, 4 op_type, 5 attribute}; AttributeProto {1 name, 2 f,
// 3 i, 8 ints, 20 type}; TensorProto {1 dims, 2 data_type, 8 name,
// 9 raw_data}; ValueInfoProto {1 name, 2 type}; TypeProto {1 tensor_type
// {1 elem_type, 2 shape {1 dim {1 dim_value}}}}.

const IR_VERSION = 8;
const OPSET = 17;
const FLOAT = 1; // TensorProto.DataType
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 }; // AttributeProto.AttributeType

const utf8 = new TextEncoder();

function varint(value) {
  let v = BigInt(value);
  if (v < 0n) v += 1n << 64n; // negative int64: two's complement, 10 bytes
  const out = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

/** A message as an array of byte chunks, with typed field appenders. */
class Message {
  chunks = [];
  int(field, value) {
    this.chunks.push(Uint8Array.from([...varint(field << 3), ...varint(value)]));
    return this;
  }
  float(field, value) {
    const b = new Uint8Array(5);
    b[0] = (field << 3) | 5;
    new DataView(b.buffer).setFloat32(1, value, true);
    this.chunks.push(b);
    return this;
  }
  bytes(field, data) {
    this.chunks.push(Uint8Array.from([...varint((field << 3) | 2), ...varint(data.length)]), data);
    return this;
  }
  string(field, text) {
    return this.bytes(field, utf8.encode(text));
  }
  message(field, msg) {
    return this.bytes(field, msg.encode());
  }
  encode() {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function valueInfo(name, shape) {
  const dims = new Message();
  for (const d of shape) dims.message(1, new Message().int(1, d));
  const tensorType = new Message().int(1, FLOAT).message(2, dims);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

function attribute(name, value) {
  const a = new Message().string(1, name);
  if (Array.isArray(value)) {
    for (const v of value) a.int(8, v);
    return a.int(20, ATTR.INTS);
  }
  if (Number.isInteger(value)) return a.int(3, value).int(20, ATTR.INT);
  return a.float(2, value).int(20, ATTR.FLOAT);
}

/**
 * The bytes of an ONNX model with one node.
 *   op          op_type in the default domain, e.g. 'MatMul'
 *   inputs      [[name, shape], ...] graph inputs (f32), in the node's input order
 *   initializers  [[name, shape, Float32Array], ...] constant inputs, after the graph inputs
 *   outputs     [[name, shape], ...] (f32)
 *   attributes  { name: integer | float | integer[] } (a whole number is an INT attribute,
 *               any other number a FLOAT, an array INTS)
 */
export function singleOpModel({ op, inputs, initializers = [], outputs, attributes = {} }) {
  const node = new Message();
  for (const [name] of [...inputs, ...initializers]) node.string(1, name);
  for (const [name] of outputs) node.string(2, name);
  node.string(3, op).string(4, op);
  for (const [name, value] of Object.entries(attributes)) node.message(5, attribute(name, value));
  const graph = new Message().message(1, node).string(2, `${op}-bench`);
  for (const [name, shape, data] of initializers) {
    const t = new Message();
    for (const d of shape) t.int(1, d);
    t.int(2, FLOAT).string(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    graph.message(5, t);
  }
  for (const [name, shape] of inputs) graph.message(11, valueInfo(name, shape));
  for (const [name, shape] of outputs) graph.message(12, valueInfo(name, shape));
  return new Message()
    .int(1, IR_VERSION)
    .string(2, 'medfocus-bench')
    .message(7, graph)
    .message(8, new Message().string(1, '').int(2, OPSET))
    .encode();
}
