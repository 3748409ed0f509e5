// Positional-embedding interpolation for image sizes other than the
// checkpoint's: the G×G grid of patch positions (the class token's row is
// kept as is) is resampled to gh×gw with bicubic filtering, as
// torch.nn.functional.interpolate(mode='bicubic', align_corners=False) does
// it. The resampling is linear, so it is one matrix M [gh·gw, G·G] (the
// Kronecker product of the row and column matrices) applied to the grid rows
// of the embedding; the model multiplies by it on the GPU, so the result is
// differentiable and no weight is read back.
//
// Two flavours:
// - 'bicubic-antialias': OpenCLIP's resize_pos_embed (antialias=True, its
//   default since 2023): PyTorch's antialiased kernel, PIL's bicubic (a = −0.5)
//   with the support widened by the scale when shrinking, window clipped at
//   the borders and the weights renormalised.
// - 'bicubic': F.interpolate without antialias (Hugging Face
//   interpolate_pos_encoding, older OpenCLIP): Keys' cubic with a = −0.75,
//   4 taps, source index (o + 0.5)·scale − 0.5, border samples replicated.

export type PosInterpolation = 'bicubic-antialias' | 'bicubic';

export const POS_INTERPOLATIONS: readonly PosInterpolation[] = ['bicubic-antialias', 'bicubic'];

function cubic(x: number, a: number): number {
  const t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** The 1-D resampling matrix [outSize, inSize] (row o holds output o's weights), float64. */
export function bicubicResizeMatrix(inSize: number, outSize: number, mode: PosInterpolation): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const row = m.subarray(o * inSize, (o + 1) * inSize);
    if (mode === 'bicubic') {
      const src = (o + 0.5) * scale - 0.5;
      const base = Math.floor(src);
      const t = src - base;
      for (let k = -1; k <= 2; k++) row[Math.min(Math.max(base + k, 0), inSize - 1)] += cubic(t - k, -0.75);
    } else {
      const support = 2 * Math.max(scale, 1);
      const invScale = 1 / Math.max(scale, 1);
      const center = scale * (o + 0.5);
      // Truncation toward zero as in PyTorch's (int) casts; both arguments are >= 0 here except near the left border.
      const first = Math.max(Math.trunc(center - support + 0.5), 0);
      const last = Math.min(Math.trunc(center + support + 0.5), inSize);
      let total = 0;
      for (let j = first; j < last; j++) total += (row[j] = cubic((j - center + 0.5) * invScale, -0.5));
      for (let j = first; j < last; j++) row[j] /= total;
    }
  }
  return m;
}

/** M [gh·gw, grid²] (f32) taking the row-major grid rows of the embedding to the gh×gw grid. */
export function posInterpolationMatrix(grid: number, gh: number, gw: number, mode: PosInterpolation): Float32Array {
  const rows = bicubicResizeMatrix(grid, gh, mode);
  const cols = bicubicResizeMatrix(grid, gw, mode);
  const m = new Float32Array(gh * gw * grid * grid);
  for (let oy = 0; oy < gh; oy++) {
    for (let ox = 0; ox < gw; ox++) {
      const out = (oy * gw + ox) * grid * grid;
      for (let iy = 0; iy < grid; iy++) {
        const wy = rows[oy * grid + iy];
        if (wy === 0) continue;
        for (let ix = 0; ix < grid; ix++) m[out + iy * grid + ix] = wy * cols[ox * grid + ix];
      }
    }
  }
  return m;
}
