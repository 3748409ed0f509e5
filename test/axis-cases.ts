// The shapes and axes the single-axis ops (softmax, argmax) are checked on:
// axes of length 1, short and prime rows, rows longer than a workgroup's
// lanes (up to 50,000), and strided axes (the first, a middle one, negative).

export interface AxisCase {
  shape: number[];
  /** Defaults to the last axis. */
  axis?: number;
}

export const AXIS_CASES: AxisCase[] = [
  { shape: [1] },
  { shape: [7] },
  { shape: [13, 1] },
  { shape: [37, 5] },
  { shape: [3, 97] },
  { shape: [300, 8] },
  { shape: [5, 257] },
  { shape: [4, 768] },
  { shape: [5, 1000] },
  { shape: [4, 4096] },
  { shape: [2, 50000] },
  { shape: [3, 50000] },
  { shape: [37, 5], axis: 0 },
  { shape: [1000, 3], axis: 0 },
  { shape: [1000, 3], axis: -2 },
  { shape: [2, 3, 5, 7], axis: 1 },
  { shape: [2, 3, 5, 7], axis: -2 },
  { shape: [3, 300, 40], axis: 1 },
  { shape: [2, 12, 7, 7], axis: -1 },
];

/** The case's element count and its axis resolved (the last by default, a negative one from the end). */
export function axisCaseSizes({ shape, axis }: AxisCase): { n: number; ax: number } {
  const n = shape.reduce((a, b) => a * b, 1);
  return { n, ax: axis === undefined ? shape.length - 1 : axis < 0 ? axis + shape.length : axis };
}
