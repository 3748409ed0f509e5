import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  blobSource,
  bytesSource,
  openSafetensors,
  urlSource,
  writeSafetensors,
  type ByteSource,
  type SafetensorsEntry,
} from '../src/io/safetensors.js';
import { fileSource, openSafetensorsFile } from '../src/io/node-files.js';
import { assertThrows, NO_SHARED, randn, sharedPath, skip, suite } from './util.js';

const test = suite('safetensors');
/** null when ../shared is absent (that test skips); a missing file fails this file here. */
const fixture = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'weights.safetensors');
const fixtureIo = sharedPath('fixtures', 'clip', 'clip-tiny-p16', 'io.safetensors');
let tmp: string;

test.before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'safetensors-test-'));
});
test.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A file built by hand (independent of writeSafetensors): length prefix, header text as given, data bytes. */
function handBuilt(header: string, data: ArrayLike<number> = [], headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const open = (bytes: Uint8Array, name = 'corrupt.safetensors') => openSafetensors(bytesSource(bytes, name));

/** Two F32 tensors a [2] = [1, 2] and b [3, 2] = 0..5 plus metadata, via the writer. */
function smallFile(): Uint8Array {
  return writeSafetensors(
    [
      { name: 'a', dtype: 'F32', shape: [2], data: [1, 2] },
      { name: 'b', dtype: 'F32', shape: [3, 2], data: [0, 1, 2, 3, 4, 5] },
    ],
    { format: 'pt' },
  );
}

test('reads a hand-built file: values, absolute offsets, metadata, header order', async () => {
  // 1.0f = 00 00 80 3f; -2.0f = 00 00 00 c0; f16 1.5 = 0x3e00; bf16 -0.5 = 0xbf00; i32 7.
  const data = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x00, 0x3e, 0x00, 0xbf, 7, 0, 0, 0];
  const header =
    '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"},' +
    '"h":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[10,12]},' +
    '"i":{"dtype":"I32","shape":[],"data_offsets":[12,16]}}';
  const file = await open(handBuilt(header, data), 'hand.safetensors');
  const headerEnd = 8 + new TextEncoder().encode(header).length;
  assert.equal([...file.tensors.keys()], ['x', 'h', 'b', 'i']);
  assert.equal(file.metadata, { k: 'v' });
  assert.equal(file.info('h'), { name: 'h', dtype: 'F16', shape: [1], byteOffset: headerEnd + 8, byteLength: 2 });
  assert.equal(Array.from(await file.read('x')), [1, -2]);
  assert.equal(Array.from(await file.read('h')), [1.5]);
  assert.equal(Array.from(await file.read('b')), [-0.5]);
  assert.equal(Array.from(await file.readInt32('i')), [7]);
  assert.equal(Array.from(await file.readRaw('h')), [0x00, 0x3e]);
  await file.close();
});

test('writer layout: header padded with spaces to a multiple of 8, data contiguous in the given order', async () => {
  const bytes = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [1], data: [1] }]);
  const json = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'; // 54 bytes → padded to 56
  assert.is(Number(new DataView(bytes.buffer).getBigUint64(0, true)), 56);
  assert.is(new TextDecoder().decode(bytes.subarray(8, 64)), `${json}  `);
  assert.equal(Array.from(bytes.subarray(64)), [0, 0, 0x80, 0x3f]);
  assert.is(bytes.length, 68);
});

test('round trip: F32, F16 and BF16 (exactly representable), F64, integers, metadata, empty and scalar tensors', async () => {
  const f32 = randn(6 * 7 * 5, 1);
  const f16 = Float32Array.from({ length: 301 }, (_, i) => (i - 150) / 64); // multiples of 2^-6 below 2^2: exact in f16
  f16.set([65504, -(2 ** -24), 2 ** -14, Infinity, -Infinity], 0);
  const bf16 = Float32Array.from({ length: 97 }, (_, i) => ((i - 48) * 2 ** (i % 40 - 20)) / 64); // ≤ 7 significant bits: exact in bf16
  bf16.set([3e38, -1e-38], 0); // chosen below: their bf16 roundings, so exact too
  const bf16Exact = Float32Array.from(bf16);
  const entries: SafetensorsEntry[] = [
    { name: 'f32', dtype: 'F32', shape: [6, 7, 5], data: f32 },
    { name: 'f16', dtype: 'F16', shape: [301], data: f16 },
    { name: 'bf16', dtype: 'BF16', shape: [97], data: bf16 },
    { name: 'f64', dtype: 'F64', shape: [2], data: [0.1, -1e300] },
    { name: 'scalar', dtype: 'F32', shape: [], data: [3.25] },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: [] },
    { name: 'i64', dtype: 'I64', shape: [3], data: [-2147483648, 2147483647, 0] },
    { name: 'i32', dtype: 'I32', shape: [2], data: [-5, 49407] },
    { name: 'u8', dtype: 'U8', shape: [3], data: [0, 128, 255] },
    { name: 'i8', dtype: 'I8', shape: [2], data: [-128, 127] },
    { name: 'bool', dtype: 'BOOL', shape: [2], data: [1, 0] },
    { name: 'u16', dtype: 'U16', shape: [1], data: [65535] },
  ];
  const bytes = writeSafetensors(entries, { config: '{"a":1}', note: 'ünïcödé' });
  assert.is((Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8), 0, 'header length is a multiple of 8');
  const file = await open(bytes, 'roundtrip.safetensors');
  assert.equal(file.metadata, { config: '{"a":1}', note: 'ünïcödé' });
  assert.equal([...file.tensors.keys()], entries.map((e) => e.name));
  for (const e of entries) assert.equal(file.info(e.name).shape, e.shape, `${e.name} shape`);
  assert.equal(Array.from(await file.read('f32')), Array.from(f32));
  assert.equal(Array.from(await file.read('f16')), Array.from(f16));
  // 3e38 and -1e-38 round to the nearest bf16; compare against that rounding done by bit arithmetic here.
  const roundBf16 = (v: number) => {
    const u = new Uint32Array(new Float32Array([v]).buffer)[0];
    const r = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
    return new Float32Array(new Uint32Array([r]).buffer)[0];
  };
  bf16Exact[0] = roundBf16(3e38);
  bf16Exact[1] = roundBf16(-1e-38);
  assert.ok(bf16Exact[0] !== Math.fround(3e38), 'the bf16 rounding test case must actually round');
  assert.equal(Array.from(await file.read('bf16')), Array.from(bf16Exact));
  assert.equal(Array.from(await file.read('f64')), [Math.fround(0.1), -Infinity]);
  assert.equal(Array.from(await file.read('scalar')), [3.25]);
  assert.is((await file.read('empty')).length, 0);
  assert.equal(Array.from(await file.readInt32('i64')), [-2147483648, 2147483647, 0]);
  assert.equal(Array.from(await file.readInt32('i32')), [-5, 49407]);
  assert.equal(Array.from(await file.readInt32('u8')), [0, 128, 255]);
  assert.equal(Array.from(await file.readInt32('i8')), [-128, 127]);
  assert.equal(Array.from(await file.readInt32('bool')), [1, 0]);
  assert.equal(Array.from(await file.readInt32('u16')), [65535]);
  await file.close();
});

test('BF16 and F16 writing round to nearest even', async () => {
  const file = await open(
    writeSafetensors([
      { name: 'bf', dtype: 'BF16', shape: [3], data: [1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20] },
      { name: 'h', dtype: 'F16', shape: [2], data: [1 + 2 ** -11, 1 + 3 * 2 ** -11] },
    ]),
  );
  // bf16 has 7 fraction bits: 1+2^-8 is a tie → 1 (even); 1+3·2^-8 tie → 1+2^-6 (even); above the tie rounds up.
  assert.equal(Array.from(await file.read('bf')), [1, 1 + 2 ** -6, 1 + 2 ** -7]);
  assert.equal(Array.from(await file.read('h')), [1, 1 + 2 ** -9]);
});

test('byte sources: unaligned memory, Blob, temp file, HTTP with and without Range support', async () => {
  const big = randn(1000, 2);
  const bytes = writeSafetensors([
    { name: 'big', dtype: 'F32', shape: [1000], data: big },
    { name: 'half', dtype: 'F16', shape: [3], data: [0.5, -1, 2] },
  ]);
  const check = async (source: ByteSource, label: string) => {
    const file = await openSafetensors(source);
    assert.equal(Array.from(await file.read('big')), Array.from(big), label);
    assert.equal(Array.from(await file.read('half')), [0.5, -1, 2], label);
    await file.close();
  };
  const unaligned = new Uint8Array(bytes.length + 3);
  unaligned.set(bytes, 3);
  await check(bytesSource(unaligned.subarray(3)), 'memory at an odd offset');
  await check(blobSource(new Blob([bytes])), 'blob');
  const path = join(tmp, 'sources.safetensors');
  await writeFile(path, bytes);
  await check(await fileSource(path), 'file');

  const ranges: Array<string | undefined> = [];
  let honourRanges = true;
  const server: Server = createServer((req, res) => {
    ranges.push(req.headers.range);
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (honourRanges && m) {
      const [a, b] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${bytes.length}`, 'Content-Length': b - a + 1 });
      res.end(bytes.subarray(a, b + 1));
    } else {
      res.writeHead(200, { 'Content-Length': bytes.length });
      res.end(bytes);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as { port: number };
    const url = `http://127.0.0.1:${port}/w.safetensors`;
    await check(await urlSource(url), 'http with ranges');
    assert.ok(ranges.length >= 4 && ranges.every((r) => r !== undefined), `every request is a range request: ${ranges.join(', ')}`);
    ranges.length = 0;
    honourRanges = false;
    await check(await urlSource(url), 'http without ranges');
    assert.is(ranges.length, 1, 'a server that ignores Range is asked once (one full download)');
    honourRanges = true;
    await assertThrows(() => urlSource(`http://127.0.0.1:${port}/missing`, { fetch: async () => new Response('no', { status: 404, statusText: 'Not Found' }) }), /missing/, /HTTP 404 Not Found/);
  } finally {
    server.close();
  }
});

test('openSafetensorsFile on a temp file; reads after close throw; unknown names and wrong readers are explained', async () => {
  const path = join(tmp, 'small.safetensors');
  await writeFile(path, smallFile());
  const file = await openSafetensorsFile(path);
  assert.equal(Array.from(await file.read('b')), [0, 1, 2, 3, 4, 5]);
  await assertThrows(() => file.read('c'), /small\.safetensors/, /no tensor "c"/, /"a", "b"/);
  await assertThrows(() => file.readInt32('a'), /tensor "a" is F32/, /readInt32\(\) takes I32/);
  await file.close();
  await file.close();
  await assertThrows(() => file.read('a'), /small\.safetensors/, /closed/);
  const ints = await open(writeSafetensors([{ name: 'ids', dtype: 'I64', shape: [2], data: [1, 2 ** 40] }]), 'ints.safetensors');
  await assertThrows(() => ints.read('ids'), /ints\.safetensors/, /"ids" is I64/, /read\(\) takes F32, F16, BF16/);
  await assertThrows(() => ints.readInt32('ids'), /ints\.safetensors/, /element 1 is 1099511627776/, /int32/);
});

test('truncated files: every cut point gives an Error naming the file and the problem', async () => {
  const bytes = smallFile();
  const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const cuts = [0, 1, 7, 8, 9, headerEnd - 1, headerEnd, headerEnd + 7, headerEnd + 8, headerEnd + 12, bytes.length - 1];
  for (const cut of cuts) {
    const patterns =
      cut < 8 ? [/fewer than the 8-byte header length/, new RegExp(`has ${cut} bytes`)]
      : cut < headerEnd ? [/header length \d+ bytes runs past the end of the file/, /truncated/]
      : cut < headerEnd + 8 ? [new RegExp(`truncated: tensor "a" needs bytes \\[0, 8\\) but the file has only ${cut - headerEnd} data bytes`)]
      : [new RegExp(`truncated: tensor "b" needs bytes \\[8, 32\\) but the file has only ${cut - headerEnd} data bytes`)];
    await assertThrows(() => open(bytes.slice(0, cut), `cut-at-${cut}.safetensors`), new RegExp(`^cut-at-${cut}\\.safetensors: `), ...patterns);
  }
  const path = join(tmp, 'truncated.safetensors');
  await writeFile(path, bytes.slice(0, bytes.length - 1));
  await assertThrows(() => openSafetensorsFile(path), /truncated\.safetensors: truncated: tensor "b" needs bytes \[8, 32\) but the file has only 31 data bytes/);
});

test('corrupt headers: each problem is named with the file', async () => {
  const t = (dtype: string, shape: string, offsets: string) => `{"dtype":${dtype},"shape":${shape},"data_offsets":${offsets}}`;
  const data = new Array(64).fill(0);
  const cases: Array<[string, Uint8Array, RegExp[]]> = [
    ['absurd length', handBuilt('{}', [], 2n ** 40n), [/header length 1099511627776 bytes is absurd/]],
    ['over 100 MB', handBuilt('{}', [], 100_000_001n), [/absurd \(limit 100000000\)/]],
    ['invalid JSON', handBuilt('{"a": {"dtype": "F32",', data), [/header is not valid JSON/]],
    ['invalid UTF-8', (() => { const b = handBuilt('{"a":1}'); b[10] = 0xff; return b; })(), [/not valid UTF-8/]],
    ['array header', handBuilt('[1,2]'), [/header must be a JSON object, got an array/]],
    ['number header', handBuilt('42'), [/header must be a JSON object, got 42/]],
    ['entry not an object', handBuilt('{"w":"F32"}'), [/tensor "w": entry must be an object/]],
    ['missing dtype', handBuilt('{"w":{"shape":[1],"data_offsets":[0,4]}}', data), [/tensor "w": missing "dtype"/]],
    ['missing shape', handBuilt('{"w":{"dtype":"F32","data_offsets":[0,4]}}', data), [/tensor "w": missing "shape"/]],
    ['missing offsets', handBuilt('{"w":{"dtype":"F32","shape":[1]}}', data), [/tensor "w": missing "data_offsets"/]],
    ['dtype not a string', handBuilt(`{"w":${t('4', '[1]', '[0,4]')}}`, data), [/tensor "w": dtype must be a string, got 4/]],
    ['unknown dtype', handBuilt(`{"w":${t('"F17"', '[1]', '[0,4]')}}`, data), [/tensor "w": unknown dtype "F17"/, /known: BOOL, U8/, /BF16/, /read\(\) takes F32, F16, BF16, F64/, /readInt32\(\) takes I32/]],
    ['negative dim', handBuilt(`{"w":${t('"F32"', '[2,-1]', '[0,4]')}}`, data), [/tensor "w": shape must be an array of non-negative integers, got \[2,-1\]/]],
    ['fractional dim', handBuilt(`{"w":${t('"F32"', '[1.5]', '[0,4]')}}`, data), [/shape must be an array of non-negative integers, got \[1.5\]/]],
    ['shape not array', handBuilt(`{"w":${t('"F32"', '"2x2"', '[0,4]')}}`, data), [/shape must be an array/]],
    ['offsets reversed', handBuilt(`{"w":${t('"F32"', '[1]', '[8,4]')}}`, data), [/data_offsets must be \[begin, end\]/, /got \[8,4\]/]],
    ['offsets length 3', handBuilt(`{"w":${t('"F32"', '[1]', '[0,4,8]')}}`, data), [/data_offsets must be \[begin, end\]/]],
    ['length mismatch', handBuilt(`{"w":${t('"F32"', '[2,3]', '[0,20]')}}`, data), [/tensor "w": byte length mismatch: dtype F32 \(4 bytes\) × shape \[2, 3\] needs 24 bytes, but data_offsets \[0, 20\] span 20/]],
    ['overlap', handBuilt(`{"p":${t('"F32"', '[4]', '[0,16]')},"q":${t('"F32"', '[2]', '[12,20]')}}`, data), [/tensors "p" \[0, 16\) and "q" \[12, 20\) overlap/]],
    ['overlap, listed out of order', handBuilt(`{"q":${t('"F16"', '[2]', '[30,34]')},"p":${t('"F32"', '[8]', '[4,36]')}}`, data), [/tensors "p" \[4, 36\) and "q" \[30, 34\) overlap/]],
    ['metadata value not a string', handBuilt('{"__metadata__":{"epoch":3}}'), [/__metadata__ value of "epoch" must be a string, got 3/]],
    ['metadata not an object', handBuilt('{"__metadata__":"x"}'), [/__metadata__ must be an object of strings/]],
  ];
  for (const [label, bytes, patterns] of cases) {
    await assertThrows(() => open(bytes, `${label}.safetensors`), new RegExp(`^${label.replace(/[()]/g, '\\$&')}\\.safetensors: `), ...patterns);
  }
  // Not an error: gaps between tensors, empty tensors inside another's span, a "__proto__" name.
  const ok = await open(handBuilt(`{"__proto__":${t('"F32"', '[1]', '[0,4]')},"z":${t('"F32"', '[0]', '[2,2]')},"g":${t('"F32"', '[1]', '[8,12]')}}`, data));
  assert.equal([...ok.tensors.keys()], ['__proto__', 'z', 'g']);
});

test('a failed open closes the source and returns nothing partial', async () => {
  let closes = 0;
  const inner = bytesSource(handBuilt(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"X","shape":[1],"data_offsets":[4,8]}}`, new Array(8).fill(0)));
  await assertThrows(() => openSafetensors({ ...inner, read: inner.read, close: async () => void closes++ }, 'closing.safetensors'), /closing\.safetensors: tensor "b": unknown dtype "X"/);
  assert.is(closes, 1);
  const short: ByteSource = { size: 100, read: async () => new Uint8Array(3) };
  await assertThrows(() => openSafetensors(short, 'short-source'), /short-source: asked the source for bytes \[0, 8\), got 3 bytes/);
});

test('writer input checks', async () => {
  const w = (entries: SafetensorsEntry[], metadata?: Record<string, string>) => () => writeSafetensors(entries, metadata);
  const cases: Array<[() => unknown, RegExp[]]> = [
    [w([{ name: 'a', dtype: 'F32', shape: [2, 2], data: [1, 2, 3] }]), [/tensor "a": shape \[2, 2\] has 4 elements, data has 3/]],
    [w([{ name: 'a', dtype: 'F32', shape: [1], data: [1] }, { name: 'a', dtype: 'F32', shape: [1], data: [1] }]), [/tensor "a": duplicate name/]],
    [w([{ name: '__metadata__', dtype: 'F32', shape: [1], data: [1] }]), [/reserved or empty name/]],
    [w([{ name: 'a', dtype: 'F8_E4M3' as 'F32', shape: [1], data: [1] }]), [/cannot write dtype "F8_E4M3"/, /writable: BOOL/]],
    [w([{ name: 'a', dtype: 'F32', shape: [-1], data: [] }]), [/shape must be non-negative integers, got \[-1\]/]],
    [w([{ name: 'a', dtype: 'U8', shape: [1], data: [256] }]), [/tensor "a": element 0 is 256, not an integer in \[0, 255\]/]],
    [w([{ name: 'a', dtype: 'I32', shape: [1], data: [0.5] }]), [/element 0 is 0.5/]],
    [w([], { epoch: 3 as unknown as string }), [/metadata value of "epoch" must be a string, got 3/]],
  ];
  for (const [fn, patterns] of cases) await assertThrows(fn, /^writeSafetensors: /, ...patterns);
});

test('CLIP fixture (clip-tiny-p16 weights) from ../shared', async () => {
  if (!fixture || !fixtureIo) return skip(NO_SHARED);
  const file = await openSafetensorsFile(fixture);
  try {
    const config = JSON.parse(file.metadata.config) as { clip_constructor_args: Record<string, number> };
    assert.is(config.clip_constructor_args.embed_dim, 32);
    assert.is(file.tensors.size, 62);
    assert.equal(file.info('visual.conv1.weight').shape, [64, 3, 16, 16]);
    assert.equal(file.info('token_embedding.weight').shape, [49408, 64]);
    assert.equal(file.info('logit_scale').shape, []);
    const conv = await file.read('visual.conv1.weight');
    assert.is(conv.length, 64 * 3 * 16 * 16);
    // First values, read independently with numpy from the same file.
    const expected = [-0.00754611, -0.02458388, 0.02571182, -0.02431345];
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(conv[i] - expected[i]) < 1e-8, `conv1[${i}] = ${conv[i]}, expected ${expected[i]}`);
    assert.is((await file.read('logit_scale'))[0], Math.fround(3.3));
  } finally {
    await file.close();
  }
  const io = await openSafetensorsFile(fixtureIo);
  const ids = await io.readInt32('text_tokens');
  assert.equal([ids.length, ids[0], ids[13]], [3 * 77, 49406, 49407]); // SOT first; row 0 has its EOT at 13
  await io.close();
});

test.run();
