// Rounding to IEEE 754 binary16 in float64 arithmetic, for references that
// see what an f16 tensor holds. Independent of src/half.ts (which works on
// the f32 bit pattern): here the value is scaled by the spacing of halves at
// its magnitude and rounded to the nearest integer, ties to even.

/** The binary16 value nearest to x (ties to even); ±Infinity past 65504 and the halfway point above it. */
export function roundToF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const mag = Math.abs(x);
  // Spacing of halves around mag: 2^(e - 10) for normal numbers (e = floor(log2 mag) ≥ -14), 2^-24 below.
  let e = Math.floor(Math.log2(mag));
  if (2 ** e > mag) e--; // log2 rounding just below a power of two
  if (2 ** (e + 1) <= mag) e++;
  const spacing = 2 ** (Math.max(e, -14) - 10);
  const scaled = mag / spacing;
  let n = Math.floor(scaled);
  const rest = scaled - n;
  if (rest > 0.5 || (rest === 0.5 && n % 2 === 1)) n++;
  const r = n * spacing;
  // 65504 is the largest half; from 65520 (halfway to 2^16) up, round to infinity.
  return Math.sign(x) * (r > 65504 ? Infinity : r);
}

/** roundToF16 of every element. */
export function roundArrayToF16(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values, roundToF16);
}
