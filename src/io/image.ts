// Image decoding to RGBA8 (PNG through upng-js, JPEG through jpeg-js) and PNG
// encoding; no Node built-ins, so it runs in browsers as well.
//
// Neither library rejects broken files reliably: upng-js returns an image
// without pixels when IEND is missing and zero-fills short zlib streams, and
// jpeg-js may throw strings. So the container is checked here first: PNG chunk
// lengths, CRCs, IHDR and IEND, and the inflated size; JPEG segment lengths,
// the frame header and the end-of-image marker. A truncated file is always an
// Error, never a partly decoded image. Corruption inside JPEG entropy-coded
// data that still parses cannot be detected (JPEG has no checksum). EXIF
// orientation is not applied (PIL's Image.open, as CLIP uses it, does not
// either); jpeg-js's IDCT and chroma upsampling differ slightly from libjpeg's.

import { decode as decodeJpegData } from 'jpeg-js';
import pako from 'pako';
import UPNG from 'upng-js';

export interface DecodedImage {
  width: number;
  height: number;
  /** RGBA8, row-major, width·height·4 bytes. Gray and palette sources are expanded to RGB; alpha is 255 where the source has none. */
  data: Uint8Array;
  /**
   * The source's channels: 1 gray, 3 colour (RGB, palette, colour JPEG), 4
   * when it carries alpha (an alpha channel, or a PNG tRNS entry that some
   * pixel uses).
   */
  channels: 1 | 3 | 4;
}

/** Largest accepted width or height: an RGBA8 image of 16384² is already 1 GiB. */
const MAX_SIDE = 16384;
/**
 * Largest accepted pixel count (width × height), checked from the header
 * before any pixel buffer exists: 2²⁶ pixels (e.g. 8192²) is 256 MiB as RGBA8,
 * far above any image a few-shot folder holds.
 */
export const MAX_PIXELS = 1 << 26;
/** deflate's largest compression ratio (about 1032:1): fewer compressed bytes cannot hold the declared pixels. */
const DEFLATE_MAX_RATIO = 1032;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function hex(bytes: Uint8Array, at: number, count: number): string {
  return Array.from(bytes.subarray(at, at + count), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Libraries throw strings as well as Errors. */
function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkDimensions(where: string, format: string, width: number, height: number): void {
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
    throw new Error(`${where}: ${format} declares ${width}×${height} pixels; each side must be 1 to ${MAX_SIDE}`);
  }
  if (width * height > MAX_PIXELS) {
    throw new Error(`${where}: ${format} declares ${width}×${height} = ${width * height} pixels, more than the limit of ${MAX_PIXELS} (MAX_PIXELS)`);
  }
}

/**
 * Decodes PNG or JPEG bytes (sniffed by their magic numbers) to RGBA8.
 * `name` (a file name) only labels errors. 16-bit PNG samples keep their high
 * byte, as PIL does for 16-bit RGB.
 */
export function decodeImage(bytes: Uint8Array, name?: string): DecodedImage {
  const where = name === undefined ? 'decodeImage' : `decodeImage(${name})`;
  if (!(bytes instanceof Uint8Array)) throw new Error(`${where}: expected the file's bytes as a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  if (bytes.length === 0) throw new Error(`${where}: the file is empty (0 bytes)`);
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return decodePng(bytes, where);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return decodeJpeg(bytes, where);
  throw new Error(
    `${where}: unknown image format (first bytes ${hex(bytes, 0, 8)}${bytes.length > 8 ? ' …' : ''}, ${bytes.length} bytes in all); only PNG and JPEG are supported`,
  );
}

// ---------------------------------------------------------------- PNG

interface PngHeader {
  width: number;
  height: number;
  depth: number;
  ctype: number;
  interlaced: boolean;
  hasTrns: boolean;
  idat: Uint8Array[];
}

const PNG_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Walks the chunks: lengths within the file, CRCs, IHDR first and valid, PLTE for palettes, IDAT present, IEND reached. */
function readPngHeader(bytes: Uint8Array, where: string): PngHeader {
  const truncated = (what: string) => new Error(`${where}: truncated PNG: ${what} (the file has ${bytes.length} bytes; is it cut short?)`);
  const corrupt = (what: string) => new Error(`${where}: corrupt PNG: ${what}`);
  let header: Omit<PngHeader, 'hasTrns' | 'idat'> | undefined;
  let hasPalette = false;
  let hasTrns = false;
  const idat: Uint8Array[] = [];
  for (let at = 8; ; ) {
    if (at + 8 > bytes.length) throw truncated(`no IEND chunk; the data ends at byte ${at}`);
    const length = readU32(bytes, at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) throw corrupt(`bad chunk type (bytes ${hex(bytes, at + 4, 4)}) at byte ${at + 4}`);
    if (at + 12 + length > bytes.length) throw truncated(`chunk ${type} at byte ${at} declares ${length} data bytes, past the end of the file`);
    const stored = readU32(bytes, at + 8 + length);
    if ((UPNG.crc.crc(bytes, at + 4, length + 4) >>> 0) !== stored) throw corrupt(`CRC mismatch in chunk ${type} at byte ${at}`);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (!header) {
      if (type !== 'IHDR' || length !== 13) throw corrupt(`the first chunk must be a 13-byte IHDR, got ${type} of ${length} bytes`);
      const [depth, ctype, compression, filter, interlace] = data.subarray(8);
      header = { width: readU32(data, 0), height: readU32(data, 4), depth, ctype, interlaced: interlace === 1 };
      if (!(ctype in PNG_DEPTHS)) throw corrupt(`colour type ${ctype} is not one of 0, 2, 3, 4, 6`);
      if (!PNG_DEPTHS[ctype].includes(depth)) throw corrupt(`bit depth ${depth} is not allowed with colour type ${ctype} (allowed: ${PNG_DEPTHS[ctype].join(', ')})`);
      if (compression !== 0 || filter !== 0 || interlace > 1) {
        throw corrupt(`IHDR compression ${compression}, filter ${filter}, interlace ${interlace}; PNG defines only 0, 0 and 0 or 1`);
      }
      checkDimensions(where, 'PNG', header.width, header.height);
    } else if (type === 'IHDR') throw corrupt(`a second IHDR chunk at byte ${at}`);
    else if (type === 'acTL' || type === 'fcTL' || type === 'fdAT') throw corrupt(`chunk ${type} at byte ${at}: animated PNG (APNG) is not supported`);
    else if (type === 'PLTE') hasPalette = true;
    else if (type === 'tRNS') hasTrns = true;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + length;
  }
  if (!header) throw corrupt('no IHDR chunk');
  if (idat.length === 0) throw corrupt('no IDAT chunk (no pixel data)');
  if (header.ctype === 3 && !hasPalette) throw corrupt('a palette image without a PLTE chunk');
  return { ...header, hasTrns, idat };
}

/** Bytes of the filtered scanlines (one filter byte per row), per Adam7 pass when interlaced. */
function pngRawSize(h: PngHeader): number {
  const bitsPerPixel = PNG_SAMPLES[h.ctype] * h.depth;
  const rows = (w: number, n: number) => (w > 0 && n > 0 ? n * (1 + Math.ceil((w * bitsPerPixel) / 8)) : 0);
  if (!h.interlaced) return rows(h.width, h.height);
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) total += rows(Math.ceil((h.width - x0) / dx), Math.ceil((h.height - y0) / dy));
  return total;
}

/**
 * The IDAT stream inflated into a buffer of exactly `size` bytes (the
 * filtered scanlines the header implies): a stream that would give more is
 * refused as soon as it passes the size, one that gives less is truncated.
 */
function inflateExactly(header: PngHeader, size: number, where: string): Uint8Array {
  const compressed = header.idat.reduce((n, d) => n + d.length, 0);
  if (compressed * DEFLATE_MAX_RATIO < size) {
    throw new Error(`${where}: truncated PNG: ${header.width}×${header.height} pixels need ${size} bytes of scanlines, which ${compressed} compressed bytes cannot hold`);
  }
  const out = new Uint8Array(size);
  let at = 0;
  const inflator = new pako.Inflate({ chunkSize: 1 << 16 });
  inflator.onData = (chunk) => {
    if (at + chunk.length > size) throw new Error(`${where}: corrupt PNG: the zlib stream inflates to more than the ${size} bytes ${header.width}×${header.height} pixels need`);
    out.set(chunk, at);
    at += chunk.length;
  };
  inflator.onEnd = () => {};
  for (let i = 0; i < header.idat.length; i++) {
    if (!inflator.push(header.idat[i], i === header.idat.length - 1) && inflator.err) throw new Error(`${where}: corrupt PNG: zlib: ${inflator.msg || `error ${inflator.err}`}`);
  }
  if (at < size) throw new Error(`${where}: corrupt PNG: the zlib stream inflates to ${at} bytes, ${header.width}×${header.height} pixels need ${size} (truncated pixel data)`);
  return out;
}

/** Every scanline starts with a filter type 0–4 (per Adam7 pass when interlaced); another value is corruption, not an image. */
function checkFilterBytes(h: PngHeader, raw: Uint8Array, where: string): void {
  const bitsPerPixel = PNG_SAMPLES[h.ctype] * h.depth;
  const passes = h.interlaced ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] : [[0, 0, 1, 1]];
  let at = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((h.width - x0) / dx);
    const rows = Math.ceil((h.height - y0) / dy);
    if (w <= 0 || rows <= 0) continue;
    const stride = 1 + Math.ceil((w * bitsPerPixel) / 8);
    for (let r = 0; r < rows; r++, at += stride) {
      if (raw[at] > 4) throw new Error(`${where}: corrupt PNG: scanline ${r}${h.interlaced ? ' of an Adam7 pass' : ''} has filter type ${raw[at]}; PNG defines 0 to 4`);
    }
  }
}

function decodePng(bytes: Uint8Array, where: string): DecodedImage {
  const header = readPngHeader(bytes, where);
  // Bounded first: the header's size, the compressed bytes, the inflated size and every filter byte, before upng-js sees the file.
  checkFilterBytes(header, inflateExactly(header, pngRawSize(header), where), where);
  let rgba: Uint8Array;
  try {
    rgba = new Uint8Array(UPNG.toRGBA8(UPNG.decode(bytes))[0]);
  } catch (e) {
    throw new Error(`${where}: corrupt PNG: the decoder failed (${messageOf(e)})`);
  }
  const { width, height, ctype } = header;
  let channels: 1 | 3 | 4 = ctype === 0 ? 1 : ctype === 2 || ctype === 3 ? 3 : 4;
  if (header.hasTrns && channels !== 4) {
    for (let i = 3; i < rgba.length; i += 4) {
      if (rgba[i] !== 255) {
        channels = 4;
        break;
      }
    }
  }
  return { width, height, data: rgba, channels };
}

// ---------------------------------------------------------------- JPEG

interface JpegFrame {
  width: number;
  height: number;
  components: number;
}

/**
 * Walks the segments from SOI to EOI (through the entropy-coded data after
 * each SOS) and returns the frame header. Throws when the file ends first, and
 * before jpeg-js allocates or dereferences anything, when a frame component
 * uses a quantisation table never defined, a scan names a component the frame
 * lacks or a Huffman table never defined, or the entropy-coded data is too
 * short for the declared size (every 8×8 block costs at least one bit).
 */
function readJpegFrame(bytes: Uint8Array, where: string): JpegFrame {
  const n = bytes.length;
  const truncated = (what: string) => new Error(`${where}: truncated JPEG: ${what} (the file has ${n} bytes; is it cut short?)`);
  const corrupt = (what: string) => new Error(`${where}: corrupt JPEG: ${what}`);
  let frame: JpegFrame | undefined;
  let scans = 0;
  let progressive = false;
  let entropyBytes = 0;
  const quantTables = new Set<number>();
  const huffmanTables = new Set<string>(); // 'dc0', 'ac1', …
  const componentTables = new Map<number, number>(); // component id → quantisation table
  const payload = (at: number, length: number) => bytes.subarray(at + 2, at + length);
  for (let at = 2; ; ) {
    if (at >= n) throw truncated(`no end-of-image marker; the data ends at byte ${n}`);
    if (bytes[at] !== 0xff) throw corrupt(`expected a marker at byte ${at}, found 0x${hex(bytes, at, 1)}`);
    while (at < n && bytes[at] === 0xff) at++; // fill bytes
    if (at >= n) throw truncated(`no end-of-image marker; the data ends at byte ${n}`);
    const marker = bytes[at++];
    if (marker === 0xd9) break; // EOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no payload
    const name = `FF${marker.toString(16).toUpperCase()}`;
    if (at + 2 > n) throw truncated(`segment ${name} at byte ${at - 2} has no length`);
    const length = (bytes[at] << 8) | bytes[at + 1];
    if (length < 2) throw corrupt(`segment ${name} at byte ${at - 2} has length ${length}`);
    if (at + length > n) throw truncated(`segment ${name} at byte ${at - 2} declares ${length} bytes, past the end of the file`);
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (marker > 0xc2) throw corrupt(`frame type ${name} (lossless or arithmetic-coded) is not supported; only baseline and progressive Huffman JPEG are`);
      if (length < 8) throw corrupt(`frame header ${name} has length ${length}`);
      if (bytes[at + 2] !== 8) throw corrupt(`${bytes[at + 2]}-bit samples are not supported, only 8-bit`);
      if (frame) throw corrupt(`a second frame header ${name} at byte ${at - 2}`);
      frame = { height: (bytes[at + 3] << 8) | bytes[at + 4], width: (bytes[at + 5] << 8) | bytes[at + 6], components: bytes[at + 7] };
      progressive = marker === 0xc2;
      checkDimensions(where, 'JPEG', frame.width, frame.height);
      if (![1, 3, 4].includes(frame.components)) throw corrupt(`${frame.components} colour components; 1 (gray), 3 (YCbCr/RGB) or 4 (CMYK) are supported`);
      if (length < 8 + 3 * frame.components) throw corrupt(`frame header ${name} has length ${length}, ${frame.components} components need ${8 + 3 * frame.components}`);
      for (let c = 0; c < frame.components; c++) {
        const [id, sampling, table] = bytes.subarray(at + 8 + 3 * c, at + 11 + 3 * c);
        const h = sampling >> 4;
        const v = sampling & 15;
        if (h < 1 || h > 4 || v < 1 || v > 4) throw corrupt(`component ${id} has sampling factors ${h}×${v}; each must be 1 to 4`);
        if (table > 3) throw corrupt(`component ${id} uses quantisation table ${table}; JPEG defines 0 to 3`);
        if (componentTables.has(id)) throw corrupt(`component id ${id} appears twice in the frame header`);
        componentTables.set(id, table);
      }
    } else if (marker === 0xdb) {
      // DQT: one or more tables, each a Pq/Tq byte and 64 values of 8 or 16 bits.
      const p = payload(at, length);
      for (let i = 0; i < p.length; ) {
        const precision = p[i] >> 4;
        const id = p[i] & 15;
        const size = 1 + 64 * (precision === 0 ? 1 : 2);
        if (precision > 1 || id > 3 || i + size > p.length) throw corrupt(`quantisation table segment at byte ${at - 2}: table ${id}, precision ${precision}, ${p.length - i} bytes left of the ${size} it needs`);
        quantTables.add(id);
        i += size;
      }
    } else if (marker === 0xc4) {
      // DHT: one or more tables, each a Tc/Th byte, 16 code counts and that many symbols.
      const p = payload(at, length);
      for (let i = 0; i < p.length; ) {
        const kind = p[i] >> 4;
        const id = p[i] & 15;
        if (kind > 1 || id > 3 || i + 17 > p.length) throw corrupt(`Huffman table segment at byte ${at - 2}: class ${kind}, table ${id}, ${p.length - i} bytes left`);
        let symbols = 0;
        for (let k = 1; k <= 16; k++) symbols += p[i + k];
        if (i + 17 + symbols > p.length) throw corrupt(`Huffman table ${kind ? 'AC' : 'DC'} ${id} at byte ${at - 2} declares ${symbols} symbols, past the segment's end`);
        huffmanTables.add(`${kind ? 'ac' : 'dc'}${id}`);
        i += 17 + symbols;
      }
    }
    at += length;
    if (marker === 0xda) {
      if (!frame) throw corrupt(`a scan at byte ${at - length - 2} before any frame header`);
      const sos = bytes.subarray(at - length + 2, at);
      const count = sos.length > 0 ? sos[0] : 0;
      // Ls = 6 + 2·Ns exactly: the decoder reads Ns component specs whatever the length says.
      if (count < 1 || count > 4 || sos.length !== 1 + 2 * count + 3) throw corrupt(`scan header at byte ${at - length - 2} has length ${length}; ${count} components (1 to 4) need ${6 + 2 * count}`);
      const [ss, , approx] = sos.subarray(1 + 2 * count, 4 + 2 * count);
      const ah = approx >> 4;
      for (let c = 0; c < count; c++) {
        const id = sos[1 + 2 * c];
        const dc = sos[2 + 2 * c] >> 4;
        const ac = sos[2 + 2 * c] & 15;
        if (!componentTables.has(id)) throw corrupt(`scan ${scans + 1} names component ${id}, which the frame header lacks (it has ${[...componentTables.keys()].join(', ')})`);
        const table = componentTables.get(id)!;
        if (!quantTables.has(table)) throw corrupt(`component ${id} uses quantisation table ${table}, which no DQT segment before scan ${scans + 1} defines`);
        // Baseline scans use both tables; progressive: DC first scans the DC table, AC scans the AC table, DC refinement none.
        const needsDc = !progressive || (ss === 0 && ah === 0);
        const needsAc = !progressive ? true : ss > 0;
        if (needsDc && !huffmanTables.has(`dc${dc}`)) throw corrupt(`scan ${scans + 1} uses Huffman DC table ${dc}, which no DHT segment before it defines`);
        if (needsAc && !huffmanTables.has(`ac${ac}`)) throw corrupt(`scan ${scans + 1} uses Huffman AC table ${ac}, which no DHT segment before it defines`);
      }
      scans++;
      const scanStart = at;
      // Entropy-coded data runs to the next marker; FF00 is a stuffed byte, FFD0–FFD7 restart markers.
      for (;;) {
        if (at + 1 >= n) throw truncated(`the file ends inside the entropy-coded data of scan ${scans}`);
        if (bytes[at] === 0xff) {
          const next = bytes[at + 1];
          if (next !== 0 && next !== 0xff && !(next >= 0xd0 && next <= 0xd7)) break;
        }
        at++;
      }
      entropyBytes += at - scanStart;
    }
  }
  if (!frame) throw corrupt('no frame header (SOF marker)');
  if (scans === 0) throw corrupt('no scan (SOS marker): the file has no pixel data');
  const blocks = Math.ceil(frame.width / 8) * Math.ceil(frame.height / 8);
  if (entropyBytes * 8 < blocks) {
    throw truncated(`${frame.width}×${frame.height} pixels are ${blocks} blocks of 8×8, at least one bit each, but the scans hold ${entropyBytes} bytes`);
  }
  return frame;
}

function decodeJpeg(bytes: Uint8Array, where: string): DecodedImage {
  const frame = readJpegFrame(bytes, where);
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = decodeJpegData(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      // Strict: a missing block is an error, not a silently skipped one.
      tolerantDecoding: false,
      maxResolutionInMP: MAX_PIXELS / 1e6,
      maxMemoryUsageInMB: 1024,
    });
  } catch (e) {
    throw new Error(`${where}: corrupt JPEG: the decoder failed (${messageOf(e)})`);
  }
  if (decoded.width !== frame.width || decoded.height !== frame.height || decoded.data.length !== frame.width * frame.height * 4) {
    throw new Error(`${where}: corrupt JPEG: the frame header says ${frame.width}×${frame.height}, the decoder produced ${decoded.width}×${decoded.height}`);
  }
  return { width: frame.width, height: frame.height, data: decoded.data, channels: frame.components === 1 ? 1 : 3 };
}

// ---------------------------------------------------------------- encoding

/**
 * Lossless 8-bit PNG of an RGBA8 image: RGB when every alpha is 255, else
 * RGBA. upng-js's own encode() sizes its output buffer as raw size + 100
 * bytes and silently cuts off PNGs of poorly compressible RGBA images, so
 * only its scanline filtering + deflate step is used and the chunks are
 * written here.
 */
export function encodePng(rgba: Uint8Array, width: number, height: number): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
    throw new Error(`encodePng: width and height must be integers from 1 to ${MAX_SIDE}, got ${width}×${height}`);
  }
  if (!(rgba instanceof Uint8Array) || rgba.length !== width * height * 4) {
    const got = rgba instanceof Uint8Array ? `${rgba.length} bytes` : Object.prototype.toString.call(rgba);
    throw new Error(`encodePng: a ${width}×${height} RGBA8 image needs a Uint8Array of ${width * height * 4} bytes, got ${got}`);
  }
  let opaque = true;
  for (let i = 3; i < rgba.length && opaque; i += 4) opaque = rgba[i] === 255;
  const bpp = opaque ? 3 : 4;
  let pixels = rgba;
  if (opaque) {
    pixels = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; j < pixels.length; i += 4, j += 3) pixels.set(rgba.subarray(i, i + 3), j);
  }
  const idat = UPNG.encode._filterZero(pixels, height, bpp, width * bpp, new Uint8Array(height * (width * bpp + 1)));
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, opaque ? 2 : 6, 0, 0, 0], 8);
  const chunks: [string, Uint8Array][] = [
    ['IHDR', ihdr],
    ['IDAT', idat],
    ['IEND', new Uint8Array(0)],
  ];
  const out = new Uint8Array(8 + chunks.reduce((n, [, d]) => n + 12 + d.length, 0));
  out.set(PNG_SIGNATURE);
  const outView = new DataView(out.buffer);
  let at = 8;
  for (const [type, data] of chunks) {
    outView.setUint32(at, data.length);
    for (let i = 0; i < 4; i++) out[at + 4 + i] = type.charCodeAt(i);
    out.set(data, at + 8);
    outView.setUint32(at + 8 + data.length, UPNG.crc.crc(out, at + 4, data.length + 4) >>> 0);
    at += 12 + data.length;
  }
  return out;
}
