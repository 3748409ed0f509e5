// Float64 reference for CLIP preprocessing, written from PIL's Resample.c and
// torchvision's Resize / CenterCrop / ToTensor / Normalize with plain loops:
// the whole image is resized (no crop-restricted tables), then cropped.
// Like the kernel it keeps float intermediates (PIL rounds to 8 bits between
// its passes) but clips to [0, 255] after each pass as PIL does.

export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function triangle(x: number): number {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

/** Python's round() on a multiple of 0.5: ties to even. */
export function pythonRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision Resize(size) with an int: the shorter side becomes size, the longer int(size * long / short). */
export function resizedSize(width: number, height: number, size: number): [number, number] {
  if (width <= height) return [size, Math.trunc((size * height) / width)];
  return [Math.trunc((size * width) / height), size];
}

/** Resamples one line of `inSize` samples (read by get) to `outSize`, PIL style. */
function resampleLine(get: (i: number) => number, inSize: number, outSize: number, mode: 'bicubic' | 'bilinear'): Float64Array {
  const filter = mode === 'bicubic' ? bicubic : triangle;
  const scale = inSize / outSize;
  const filterScale = scale > 1 ? scale : 1;
  const support = (mode === 'bicubic' ? 2 : 1) * filterScale;
  const out = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    let total = 0;
    let acc = 0;
    for (let i = lo; i < hi; i++) {
      const w = filter((i - center + 0.5) / filterScale);
      total += w;
      acc += w * get(i);
    }
    const v = total !== 0 ? acc / total : acc;
    out[o] = Math.min(255, Math.max(0, v));
  }
  return out;
}

/** CLIP's transform of one image: [3, size, size] (planar RGB), float64. */
export function clipPreprocessRef(
  img: RgbaImage,
  size: number,
  mean: readonly number[],
  std: readonly number[],
  mode: 'bicubic' | 'bilinear',
): Float64Array {
  const { width: w, height: h, data } = img;
  const [rw, rh] = resizedSize(w, h, size);
  // Horizontal pass: [h][rw][3].
  const horiz = new Float64Array(h * rw * 3);
  for (let y = 0; y < h; y++) {
    for (let c = 0; c < 3; c++) {
      const line = resampleLine((i) => data[(y * w + i) * 4 + c], w, rw, mode);
      for (let x = 0; x < rw; x++) horiz[(y * rw + x) * 3 + c] = line[x];
    }
  }
  // Vertical pass: [rh][rw][3].
  const resized = new Float64Array(rh * rw * 3);
  for (let x = 0; x < rw; x++) {
    for (let c = 0; c < 3; c++) {
      const line = resampleLine((i) => horiz[(i * rw + x) * 3 + c], h, rh, mode);
      for (let y = 0; y < rh; y++) resized[(y * rw + x) * 3 + c] = line[y];
    }
  }
  const top = pythonRound((rh - size) / 2);
  const left = pythonRound((rw - size) / 2);
  const out = new Float64Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        out[(c * size + y) * size + x] = (resized[((y + top) * rw + x + left) * 3 + c] / 255 - mean[c]) / std[c];
      }
    }
  }
  return out;
}
