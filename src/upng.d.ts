// upng-js ships no types: the part of its API that src/io/image.ts uses.
// It is a CommonJS module whose exports object is UPNG, so it is a default import.
declare module 'upng-js' {
  interface UpngImage {
    width: number;
    height: number;
    /** Bits per channel: 1, 2, 4, 8 or 16. */
    depth: number;
    /** PNG colour type: 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA. */
    ctype: number;
    /** Ancillary chunks by name (PLTE, tRNS, ...). */
    tabs: Record<string, unknown>;
    /** Inflated, unfiltered scanlines; undefined when the file had no IEND. */
    data: Uint8Array | undefined;
  }
  const UPNG: {
    /** One RGBA8 ArrayBuffer per frame (16-bit samples keep their high byte). */
    toRGBA8(img: UpngImage): ArrayBuffer[];
    encode: {
      /**
       * Filters the scanlines (bpp bytes per pixel, bpl per row) with each PNG
       * filter type, deflates them (pako) and returns the smallest stream.
       * `scratch` holds height·(bpl + 1) bytes.
       */
      _filterZero(pixels: Uint8Array, height: number, bpp: number, bpl: number, scratch: Uint8Array): Uint8Array;
    };
    decode: {
      /** Throws strings (not Errors) on some malformed input. */
      (png: ArrayBuffer | Uint8Array): UpngImage;
    };
    crc: {
      /** CRC-32 of bytes [offset, offset + length), as PNG chunks use. */
      crc(bytes: Uint8Array, offset: number, length: number): number;
    };
  };
  export default UPNG;
}
