// Float64 references for SAM2's preprocessing: PyTorch's antialiased bilinear
// resize (F.interpolate(mode='bilinear', align_corners=False, antialias=True)),
// written as a dense 2-D sum Σ wy(oy, iy)·wx(ox, ix)·x[iy, ix] over the whole
// source, with the weights taken straight from ATen's _compute_weights_aa.

/** The normalized AA weights of output index o over ALL source indices (zeros outside the support). */
export function aaWeightRow(inLen: number, outLen: number, o: number): Float64Array {
  const scale = inLen / outLen;
  const support = scale >= 1 ? scale : 1.0; // (interp_size / 2) · scale, interp_size = 2
  const invScale = scale >= 1 ? 1 / scale : 1.0;
  const center = scale * (o + 0.5);
  const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
  const xmax = Math.min(Math.trunc(center + support + 0.5), inLen);
  const row = new Float64Array(inLen);
  let total = 0;
  for (let j = xmin; j < xmax; j++) {
    const t = Math.abs((j - center + 0.5) * invScale);
    row[j] = t < 1 ? 1 - t : 0;
    total += row[j];
  }
  if (total !== 0) for (let j = xmin; j < xmax; j++) row[j] /= total;
  return row;
}

/** x [N, C, H, W] → [N, C, Ho, Wo], optionally (v − mean[c]) / std[c]. */
export function antialiasResizeRef(
  x: ArrayLike<number>,
  shape: readonly [number, number, number, number],
  size: readonly [number, number],
  norm?: { mean: readonly number[]; std: readonly number[] },
): Float64Array {
  const [n, c, h, w] = shape;
  const [oh, ow] = size;
  const wy = Array.from({ length: oh }, (_, o) => aaWeightRow(h, oh, o));
  const wx = Array.from({ length: ow }, (_, o) => aaWeightRow(w, ow, o));
  const out = new Float64Array(n * c * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const plane = (b * c + ch) * h * w;
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let acc = 0;
          for (let iy = 0; iy < h; iy++) {
            if (wy[oy][iy] === 0) continue;
            for (let ix = 0; ix < w; ix++) acc += wy[oy][iy] * wx[ox][ix] * x[plane + iy * w + ix];
          }
          if (norm) acc = (acc - norm.mean[ch]) / norm.std[ch];
          out[((b * c + ch) * oh + oy) * ow + ox] = acc;
        }
      }
    }
  }
  return out;
}

/** RGBA8 [H, W, 4] → the RGB planes /255 as [1, 3, H, W] (ToTensor, alpha dropped). */
export function rgbaToPlanes(data: Uint8Array, width: number, height: number): Float64Array {
  const out = new Float64Array(3 * width * height);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) out[c * width * height + i] = data[4 * i + c] / 255;
  return out;
}
