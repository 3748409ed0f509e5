// Hostile PNG and JPEG files (issue 16): each is refused with an Error that
// names the file and the field, quickly and before a buffer of the declared
// size exists — a second IHDR, APNG chunks, a huge header over a few bytes
// of data, bad filter bytes, a zlib stream longer than the image, undefined
// JPEG tables and unknown scan components. CRC-32 and zlib come from
// node:zlib here, not from the decoders under test.

import { crc32, deflateSync } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';
import * as assert from 'uvu/assert';
import { MAX_PIXELS, decodeImage, encodePng } from '../src/io/image.js';
import { assertThrows, suite } from './util.js';

const test = suite('image-hostile');

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function ihdr(width: number, height: number, ctype = 0): Uint8Array {
  const d = new Uint8Array(13);
  const v = new DataView(d.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  d.set([8, ctype, 0, 0, 0], 8);
  return chunk('IHDR', d);
}

function png(...chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat([Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks, chunk('IEND', new Uint8Array(0))]));
}

/** Gray 8-bit scanlines (filter byte + width bytes per row), deflated. */
function grayIdat(width: number, height: number, filter = 0, extraRows = 0): Uint8Array {
  const raw = new Uint8Array((height + extraRows) * (width + 1));
  for (let r = 0; r < height + extraRows; r++) raw[r * (width + 1)] = filter;
  return chunk('IDAT', deflateSync(raw));
}

/** Refused quickly with a message naming the file and matching `pattern`. */
async function refused(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const t0 = performance.now();
  await assertThrows(() => decodeImage(bytes, 'hostile.img'), /decodeImage\(hostile\.img\)/, pattern);
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `refused in ${ms.toFixed(0)} ms (limit 500)`);
}

test('a well-formed gray PNG built here decodes (the builders are right)', () => {
  const img = decodeImage(png(ihdr(5, 3), grayIdat(5, 3)), 'ok.png');
  assert.equal([img.width, img.height, img.channels], [5, 3, 1]);
});

test('PNG: a second IHDR, APNG chunks, a bad filter byte and surplus zlib data are refused', async () => {
  await refused(png(ihdr(1, 1), ihdr(60000, 60000), grayIdat(1, 1)), /corrupt PNG: a second IHDR chunk at byte 33/);
  const actl = chunk('acTL', new Uint8Array(8));
  await refused(png(ihdr(2, 2), actl, grayIdat(2, 2)), /chunk acTL at byte 33: animated PNG \(APNG\) is not supported/);
  await refused(png(ihdr(2, 2), chunk('fcTL', new Uint8Array(26)), grayIdat(2, 2)), /chunk fcTL .*APNG/);
  await refused(png(ihdr(4, 2), grayIdat(4, 2, 7)), /scanline 0 has filter type 7; PNG defines 0 to 4/);
  await refused(png(ihdr(4, 2), grayIdat(4, 2, 0, 1000)), /the zlib stream inflates to more than the 10 bytes 4×2 pixels need/);
  await refused(png(ihdr(4, 8), grayIdat(4, 2)), /inflates to 10 bytes, 4×8 pixels need 40 \(truncated pixel data\)/);
});

test('PNG: sizes over the pixel limit, and a legal header over too few bytes, are refused from the header', async () => {
  await refused(png(ihdr(16384, 16384), grayIdat(1, 1)), new RegExp(`declares 16384×16384 = 268435456 pixels, more than the limit of ${MAX_PIXELS}`));
  await refused(png(ihdr(8192, 8192), chunk('IDAT', new Uint8Array(40))), /truncated PNG: 8192×8192 pixels need 67117056 bytes of scanlines, which 40 compressed bytes cannot hold/);
});

/** A small real baseline JPEG (jpeg-js's encoder) and the offsets of its segments. */
function sampleJpeg(): { bytes: Uint8Array; sof: number; sos: number } {
  const rgba = new Uint8Array(16 * 16 * 4).map((_, i) => (i * 37) & 255);
  const bytes = new Uint8Array(encodeJpeg({ data: rgba, width: 16, height: 16 }, 90).data);
  const find = (marker: number) => bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === marker);
  return { bytes, sof: find(0xc0), sos: find(0xda) };
}

test('JPEG: the sample decodes; a huge declared size, an undefined table or an unknown component is a named error', async () => {
  const { bytes, sof, sos } = sampleJpeg();
  assert.equal([decodeImage(bytes, 'ok.jpg').width, decodeImage(bytes, 'ok.jpg').height], [16, 16]);
  const withSize = (w: number, h: number) => {
    const b = bytes.slice();
    b.set([h >> 8, h & 255, w >> 8, w & 255], sof + 5);
    return b;
  };
  await refused(withSize(16384, 16384), /JPEG declares 16384×16384 = 268435456 pixels, more than the limit/);
  await refused(withSize(8000, 8000), /truncated JPEG: 8000×8000 pixels are 1000000 blocks of 8×8, at least one bit each, but the scans hold \d+ bytes/);
  const undefinedTable = bytes.slice();
  undefinedTable[sof + 2 + 7 + 3] = 3; // component 1's quantisation table: 3, never defined
  await refused(undefinedTable, /component 1 uses quantisation table 3, which no DQT segment before scan 1 defines/);
  const unknownComponent = bytes.slice();
  unknownComponent[sos + 5] = 9; // the scan's first component id
  await refused(unknownComponent, /scan 1 names component 9, which the frame header lacks \(it has 1, 2, 3\)/);
  // Found by scripts/fuzz.js (seed 17, input 1894): a scan header whose length says 2 bytes; jpeg-js read its component specs anyway.
  const shortScan = bytes.slice();
  shortScan.set([0, 2], sos + 2);
  await refused(shortScan, /corrupt JPEG: scan header at byte \d+ has length 2; 0 components \(1 to 4\) need 6/);
  const undefinedHuffman = bytes.slice();
  undefinedHuffman[sos + 6] = 0x33; // DC table 3 / AC table 3
  await refused(undefinedHuffman, /scan 1 uses Huffman DC table 3, which no DHT segment before it defines/);
});

test('encodePng output still round-trips through the hardened decoder (RGB and RGBA, odd sizes)', () => {
  for (const [w, h, alpha] of [[1, 1, 255], [7, 3, 255], [13, 5, 128]]) {
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? alpha : (i * 29) & 255));
    const back = decodeImage(encodePng(rgba, w, h), 'round.png');
    assert.equal(Array.from(back.data), Array.from(rgba), `${w}×${h}`);
  }
});

test.run();
