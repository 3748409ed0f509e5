import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';
import * as assert from 'uvu/assert';
import { decodeImage, encodePng } from '../src/io/image.js';
import { assertThrows, NO_SHARED, rng, sharedPath, skip, suite } from './util.js';

const test = suite('image');
const busi3 = sharedPath('datasets', 'busi3');

// ---- PNGs built by hand (formats upng-js cannot write: gray, 16-bit, low-depth palette, interlaced, broken)

function chunk(type: string, data: Uint8Array | number[]): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), Buffer.from(data)]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(body.length - 4, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

function ihdr(width: number, height: number, depth: number, ctype: number, interlace = 0): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d.set([depth, ctype, 0, 0, interlace], 8);
  return chunk('IHDR', d);
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG from packed scanlines (no filter bytes: each row gets filter 0). */
function png(width: number, height: number, depth: number, ctype: number, rows: number[][], extra: Buffer[] = []): Uint8Array {
  const raw = Buffer.concat(rows.map((r) => Buffer.from([0, ...r])));
  return Buffer.concat([SIGNATURE, ihdr(width, height, depth, ctype), ...extra, chunk('IDAT', deflateSync(raw)), chunk('IEND', [])]);
}

/** An Adam7-interlaced 8-bit gray PNG of pixel(x, y). */
function interlacedGray(width: number, height: number, pixel: (x: number, y: number) => number, cut = 0): Uint8Array {
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  const bytes: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    if (x0 >= width || y0 >= height) continue;
    for (let y = y0; y < height; y += dy) {
      bytes.push(0);
      for (let x = x0; x < width; x += dx) bytes.push(pixel(x, y));
    }
  }
  const z = deflateSync(Buffer.from(bytes.slice(0, bytes.length - cut)));
  return Buffer.concat([SIGNATURE, ihdr(width, height, 8, 0, 1), chunk('IDAT', z), chunk('IEND', [])]);
}

function ctypeOf(pngBytes: Uint8Array): number {
  return pngBytes[25]; // IHDR data starts at 16: width, height, depth, then colour type
}

/**
 * A minimal PNG reader independent of src/io/image.ts (node:zlib and the
 * spec's five filters), for 8-bit non-interlaced RGB and RGBA only: checks
 * the signature, each chunk's CRC and the IHDR, and returns the samples.
 */
function readPng8(file: Uint8Array): { width: number; height: number; channels: number; samples: Uint8Array } {
  const buf = Buffer.from(file);
  assert.ok(buf.subarray(0, 8).equals(SIGNATURE), 'PNG signature');
  let at = 8;
  let header: Buffer | undefined;
  const idat: Buffer[] = [];
  for (;;) {
    assert.ok(at + 12 <= buf.length, `chunk at byte ${at} runs past the end`);
    const length = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const body = buf.subarray(at + 4, at + 8 + length);
    assert.is(buf.readUInt32BE(at + 8 + length), crc32(body), `CRC of chunk ${type}`);
    const data = buf.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') header = data;
    if (type === 'IDAT') idat.push(data);
    at += 12 + length;
    if (type === 'IEND') break;
  }
  assert.is(at, buf.length, 'nothing after IEND');
  assert.ok(header, 'an IHDR chunk');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  const [depth, ctype, compression, filter, interlace] = header.subarray(8, 13);
  assert.equal([depth, compression, filter, interlace], [8, 0, 0, 0], 'IHDR: 8-bit, deflate, adaptive filtering, not interlaced');
  const channels = { 2: 3, 6: 4 }[ctype as 2 | 6];
  assert.ok(channels, `colour type ${ctype}: expected 2 (RGB) or 6 (RGBA)`);
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(idat));
  assert.is(raw.length, height * (stride + 1), 'inflated size');
  const samples = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i];
      const a = i >= channels ? samples[y * stride + i - channels] : 0;
      const b = y > 0 ? samples[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? samples[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][type];
      assert.ok(predictor !== undefined, `row ${y}: filter type ${type}`);
      samples[y * stride + i] = (x + predictor) & 255;
    }
  }
  return { width, height, channels, samples };
}

function expectRgba(got: { width: number; height: number; data: Uint8Array }, width: number, height: number, pixel: (x: number, y: number) => number[], label: string) {
  assert.equal([got.width, got.height], [width, height], `${label}: size`);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = (y * width + x) * 4;
      assert.equal(Array.from(got.data.subarray(at, at + 4)), pixel(x, y), `${label}: pixel (${x}, ${y})`);
    }
  }
}

// ---- real files

test('busi3 JPEGs and PNG masks: sizes as in manifest.json, gray expanded to RGB', async () => {
  if (!busi3) return skip(NO_SHARED);
  const root = busi3;
  const manifest = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')) as {
    path: string;
    width: number;
    height: number;
    mask_path: string;
    lesion_fraction: number;
  }[];
  const entries = manifest.filter((e) => e.path.startsWith('train/benign/')).slice(0, 4);
  assert.is(entries.length, 4, 'manifest has train/benign entries');
  for (const e of entries) {
    const img = decodeImage(readFileSync(join(root, e.path)), e.path);
    assert.equal([img.width, img.height, img.channels], [e.width, e.height, 1], `${e.path}: width, height, channels`);
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < img.data.length; i += 4) {
      const [r, g, b, a] = img.data.subarray(i, i + 4);
      if (r !== g || r !== b || a !== 255) assert.unreachable(`${e.path}: pixel ${i / 4} is ${[r, g, b, a]}, expected equal RGB and alpha 255`);
      lo = Math.min(lo, r);
      hi = Math.max(hi, r);
    }
    assert.ok(hi - lo > 100, `${e.path}: an ultrasound image has contrast (gray range ${lo}..${hi})`);

    const mask = decodeImage(readFileSync(join(root, e.mask_path)), e.mask_path);
    assert.equal([mask.width, mask.height, mask.channels], [e.width, e.height, 1], `${e.mask_path}: width, height, channels`);
    let lesion = 0;
    for (let i = 0; i < mask.data.length; i += 4) {
      const v = mask.data[i];
      if (v !== 0 && v !== 255) assert.unreachable(`${e.mask_path}: value ${v} at pixel ${i / 4}; masks are 0/255`);
      if (v === 255) lesion++;
    }
    assert.ok(Math.abs(lesion / (e.width * e.height) - e.lesion_fraction) < 1e-4, `${e.mask_path}: lesion fraction ${lesion / (e.width * e.height)} vs manifest ${e.lesion_fraction}`);
  }
  // A real JPEG cut in half is an Error, not a partly decoded image.
  const bytes = readFileSync(join(root, entries[0].path));
  await assertThrows(() => decodeImage(bytes.subarray(0, bytes.length >> 1), entries[0].path), /decodeImage\(train\/benign\/.*\.jpg\)/, /truncated JPEG/);
});

// ---- PNG

test('encodePng writes the source samples (checked by an independent reader) and decodeImage reads them back: RGBA and RGB, incompressible and flat', () => {
  const r = rng(7);
  const w = 37;
  const h = 23;
  // Noise does not compress: upng-js's own encode() cuts such RGBA files short.
  const noise = (alpha: boolean) => {
    const d = new Uint8Array(w * h * 4).map(() => Math.floor(r() * 256));
    if (!alpha) for (let i = 3; i < d.length; i += 4) d[i] = 255;
    return d;
  };
  const colours = [[255, 0, 0, 255], [0, 128, 255, 255], [10, 20, 30, 255], [250, 250, 250, 255]];
  const flat = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) flat.set(colours[(i * 7) % 4], i * 4);
  const flatAlpha = flat.slice();
  flatAlpha.set([1, 2, 3, 128], 4 * 5);
  const cases: [string, Uint8Array, number, number][] = [
    // label, pixels, colour type written, channels decoded
    ['RGBA noise', noise(true), 6, 4],
    ['RGB noise', noise(false), 2, 3],
    ['4 opaque colours', flat, 2, 3],
    ['4 colours, one pixel translucent', flatAlpha, 6, 4],
  ];
  for (const [label, rgba, ctype, channels] of cases) {
    const file = encodePng(rgba, w, h);
    assert.is(ctypeOf(file), ctype, `${label}: colour type written`);
    // The file itself, read without src/io/image.ts: the source's samples (alpha dropped when opaque).
    const read = readPng8(file);
    assert.equal([read.width, read.height, read.channels], [w, h, channels], `${label}: IHDR`);
    const want = channels === 4 ? rgba : rgba.filter((_, i) => i % 4 !== 3);
    assert.ok(Buffer.from(read.samples).equals(Buffer.from(want)), `${label}: the file's samples differ from the source`);
    const back = decodeImage(file, `${label}.png`);
    assert.equal([back.width, back.height, back.channels], [w, h, channels], label);
    assert.ok(Buffer.from(back.data).equals(Buffer.from(rgba)), `${label}: pixels differ after the round trip`);
  }
});

test('hand-built PNGs: gray 1/8/16-bit, gray+alpha, RGB 16-bit, 4-bit palette, tRNS, interlaced', () => {
  const g8 = png(3, 2, 8, 0, [[0, 100, 255], [7, 8, 9]]);
  const v8 = [0, 100, 255, 7, 8, 9];
  let img = decodeImage(g8, 'gray8.png');
  assert.is(img.channels, 1);
  expectRgba(img, 3, 2, (x, y) => [v8[y * 3 + x], v8[y * 3 + x], v8[y * 3 + x], 255], 'gray 8-bit');

  // 16-bit samples keep the high byte.
  img = decodeImage(png(2, 1, 16, 0, [[0x12, 0x34, 0xff, 0xff]]), 'gray16.png');
  expectRgba(img, 2, 1, (x) => (x === 0 ? [0x12, 0x12, 0x12, 255] : [255, 255, 255, 255]), 'gray 16-bit');

  img = decodeImage(png(10, 1, 1, 0, [[0b10110000, 0b01000000]]), 'gray1.png');
  const bits = [1, 0, 1, 1, 0, 0, 0, 0, 0, 1];
  expectRgba(img, 10, 1, (x) => [255 * bits[x], 255 * bits[x], 255 * bits[x], 255], 'gray 1-bit');

  img = decodeImage(png(2, 1, 8, 4, [[50, 0, 60, 200]]), 'gray-alpha.png');
  assert.is(img.channels, 4);
  expectRgba(img, 2, 1, (x) => (x === 0 ? [50, 50, 50, 0] : [60, 60, 60, 200]), 'gray + alpha');

  img = decodeImage(png(1, 1, 16, 2, [[0xab, 1, 0xcd, 2, 0xef, 3]]), 'rgb16.png');
  assert.is(img.channels, 3);
  expectRgba(img, 1, 1, () => [0xab, 0xcd, 0xef, 255], 'RGB 16-bit');

  const plte = chunk('PLTE', [9, 8, 7, 100, 110, 120, 200, 210, 220]);
  img = decodeImage(png(3, 1, 4, 3, [[0x21, 0x00]], [plte]), 'palette4.png');
  assert.is(img.channels, 3);
  expectRgba(img, 3, 1, (x) => [[200, 210, 220, 255], [100, 110, 120, 255], [9, 8, 7, 255]][x], '4-bit palette');
  img = decodeImage(png(3, 1, 8, 3, [[2, 1, 0]], [plte, chunk('tRNS', [255, 128])]), 'palette8-trns.png');
  assert.is(img.channels, 4);
  expectRgba(img, 3, 1, (x) => [[200, 210, 220, 255], [100, 110, 120, 128], [9, 8, 7, 255]][x], '8-bit palette with tRNS');

  // A gray tRNS value that a pixel uses makes the source 4-channel; one that none uses does not.
  img = decodeImage(png(2, 1, 8, 0, [[5, 6]], [chunk('tRNS', [0, 6])]), 'gray-trns.png');
  assert.is(img.channels, 4);
  expectRgba(img, 2, 1, (x) => (x === 0 ? [5, 5, 5, 255] : [6, 6, 6, 0]), 'gray tRNS');
  assert.is(decodeImage(png(2, 1, 8, 0, [[5, 6]], [chunk('tRNS', [0, 99])]), 'gray-trns-unused.png').channels, 1);

  const pixel = (x: number, y: number) => (x * 31 + y * 17) & 255;
  img = decodeImage(interlacedGray(13, 11, pixel), 'adam7.png');
  expectRgba(img, 13, 11, (x, y) => [pixel(x, y), pixel(x, y), pixel(x, y), 255], 'interlaced');
});

test('PNG errors name the file and the problem', async () => {
  const good = encodePng(new Uint8Array(64 * 48 * 4).map((_, i) => (i * 37) & 255), 64, 48);
  await assertThrows(() => decodeImage(good.subarray(0, good.length >> 1), 'half.png'), /decodeImage\(half\.png\)/, /truncated PNG/);
  await assertThrows(() => decodeImage(good.subarray(0, 20), 'head.png'), /head\.png/, /truncated PNG/, /IHDR/);
  const flipped = good.slice();
  flipped[flipped.length - 30] ^= 0x55; // inside the IDAT data
  await assertThrows(() => decodeImage(flipped, 'flip.png'), /flip\.png/, /corrupt PNG/, /CRC mismatch in chunk IDAT/);
  // Valid chunks around a zlib stream that ends early (upng-js would zero-fill it).
  const rows = Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => x * y));
  const raw = Buffer.concat(rows.map((r) => Buffer.from([0, ...r])));
  const short = Buffer.concat([SIGNATURE, ihdr(8, 8, 8, 0), chunk('IDAT', deflateSync(raw.subarray(0, 40))), chunk('IEND', [])]);
  await assertThrows(() => decodeImage(short, 'short.png'), /short\.png/, /truncated pixel data/, /72/);
  await assertThrows(() => decodeImage(interlacedGray(13, 11, () => 1, 9), 'short-adam7.png'), /short-adam7\.png/, /truncated pixel data/);
  const garbage = Buffer.concat([SIGNATURE, ihdr(8, 8, 8, 0), chunk('IDAT', [1, 2, 3, 4, 5, 6]), chunk('IEND', [])]);
  await assertThrows(() => decodeImage(garbage, 'zlib.png'), /zlib\.png/, /corrupt PNG/);
  await assertThrows(() => decodeImage(png(0, 5, 8, 0, []), 'zero.png'), /zero\.png/, /0×5/, /1 to 16384/);
  await assertThrows(() => decodeImage(png(20000, 10, 8, 0, []), 'huge.png'), /huge\.png/, /20000×10/, /1 to 16384/);
  await assertThrows(() => decodeImage(png(2, 1, 4, 2, [[0]]), 'depth.png'), /depth\.png/, /bit depth 4/, /colour type 2/);
  await assertThrows(() => decodeImage(png(2, 1, 8, 3, [[0, 0]]), 'noplte.png'), /noplte\.png/, /PLTE/);
  const noEnd = Buffer.concat([SIGNATURE, ihdr(1, 1, 8, 0), chunk('IDAT', deflateSync(Buffer.from([0, 1])))]);
  await assertThrows(() => decodeImage(noEnd, 'noend.png'), /noend\.png/, /truncated PNG/, /no IEND/);
});

// ---- JPEG

function testJpeg(width: number, height: number): { rgba: Uint8Array; file: Uint8Array } {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) rgba.set([(x * 4) & 255, (y * 6) & 255, 128, 255], (y * width + x) * 4);
  }
  return { rgba, file: new Uint8Array(encodeJpeg({ width, height, data: rgba }, 95).data) };
}

test('JPEG: colour decode close to the source (lossy), truncation and header errors', async () => {
  const { rgba, file } = testJpeg(120, 90);
  const img = decodeImage(file, 'ramp.jpg');
  assert.equal([img.width, img.height, img.channels], [120, 90, 3]);
  let err = 0;
  for (let i = 0; i < rgba.length; i++) err += Math.abs(img.data[i] - rgba[i]);
  // Quality 95 on ramps (with a few wrap-around edges): a mean error of a grey level or two.
  assert.ok(err / rgba.length < 2, `mean abs error ${err / rgba.length}`);

  await assertThrows(() => decodeImage(file.subarray(0, file.length >> 1), 'half.jpg'), /decodeImage\(half\.jpg\)/, /truncated JPEG/, /entropy-coded data of scan 1/);
  await assertThrows(() => decodeImage(file.subarray(0, 30), 'head.jpg'), /head\.jpg/, /truncated JPEG/);
  await assertThrows(() => decodeImage(file.subarray(0, file.length - 2), 'noeoi.jpg'), /noeoi\.jpg/, /truncated JPEG/);

  const sof = Buffer.from(file).indexOf(Buffer.from([0xff, 0xc0]));
  const zeroWidth = file.slice();
  zeroWidth.set([0, 0], sof + 7);
  await assertThrows(() => decodeImage(zeroWidth, 'zero.jpg'), /zero\.jpg/, /0×90/, /1 to 16384/);
  const lossless = file.slice();
  lossless[sof + 1] = 0xc3;
  await assertThrows(() => decodeImage(lossless, 'sof3.jpg'), /sof3\.jpg/, /FFC3/, /not supported/);
  // A well-formed segment with a reserved marker: jpeg-js itself rejects it.
  const reserved = Buffer.concat([file.subarray(0, 2), Buffer.from([0xff, 0x02, 0, 4, 0, 0]), file.subarray(2)]);
  await assertThrows(() => decodeImage(reserved, 'reserved.jpg'), /reserved\.jpg/, /corrupt JPEG/, /marker/);
});

test('empty input, unknown formats, bad encodePng arguments', async () => {
  await assertThrows(() => decodeImage(new Uint8Array(0), 'empty.png'), /decodeImage\(empty\.png\)/, /empty/);
  await assertThrows(() => decodeImage(Buffer.from('GIF89a\x01\x00\x01\x00'), 'anim.gif'), /anim\.gif/, /unknown image format/, /47 49 46 38 39 61 01 00/, /PNG and JPEG/);
  await assertThrows(() => decodeImage(Buffer.from([0x89, 0x50])), /^decodeImage: unknown image format/, /89 50/);
  await assertThrows(() => encodePng(new Uint8Array(10), 2, 2), /encodePng/, /16 bytes/, /10 bytes/);
  await assertThrows(() => encodePng(new Uint8Array(0), 0, 2), /encodePng/, /0×2/);
});

test.run();
