// A protobuf/ONNX writer for building test inputs by hand, independent of
// src/io/protobuf.ts (field numbers from onnx/onnx.proto): varints, tagged
// fields, TensorProto, ValueInfoProto, NodeProto and a ModelProto around a graph.

export type Bytes = number[] | Uint8Array;
export const concat = (...parts: Bytes[]): Uint8Array => new Uint8Array(Buffer.concat(parts.map((p) => Uint8Array.from(p))));
/** Base-128 varint of the 64-bit two's complement of v. */
export function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    const low = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? low | 0x80 : low);
  } while (x);
  return out;
}
export const vField = (field: number, v: number | bigint) => concat(varint(field * 8), varint(v));
export const lenField = (field: number, ...body: Bytes[]) => {
  const b = concat(...body);
  return concat(varint(field * 8 + 2), varint(b.length), b);
};
export const sField = (field: number, s: string) => lenField(field, new TextEncoder().encode(s));
export const f32Field = (field: number, v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return concat(varint(field * 8 + 5), b);
};
export const leBytes = (values: ArrayLike<number>, Typed: Float32ArrayConstructor | Float64ArrayConstructor) => new Uint8Array(Typed.from(values).buffer);

/** TensorProto.DataType values used by the tests. */
export const DT = { FLOAT: 1, INT32: 6, INT64: 7, STRING: 8, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, BFLOAT16: 16, INT4: 22 };
/** TensorProto from parts (dims, data_type, name, then any data fields given). */
export const tensorProto = (name: string, dataType: number, dims: number[], ...data: Bytes[]) =>
  concat(...dims.map((d) => vField(1, d)), vField(2, dataType), sField(8, name), ...data);
export const valueInfo = (name: string, elemType: number, dims: (number | string)[]) =>
  concat(sField(1, name), lenField(2, lenField(1, vField(1, elemType), lenField(2, ...dims.map((d) => lenField(1, typeof d === 'number' ? vField(1, d) : sField(2, d)))))));
export const node = (opType: string, inputs: string[], outputs: string[], ...attributes: Bytes[]) =>
  concat(...inputs.map((i) => sField(1, i)), ...outputs.map((o) => sField(2, o)), sField(4, opType), ...attributes.map((a) => lenField(5, a)));
/** ModelProto (IR 8, opset 17) around the given GraphProto fields. */
export const modelBytes = (...graph: Bytes[]) => concat(vField(1, 8), lenField(8, vField(2, 17)), sField(2, 'hand'), lenField(7, ...graph));
