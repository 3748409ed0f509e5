// Summary statistics over repeated runs (e.g. one value per seed): mean and
// sample standard deviation, and the paired difference of two lists with its
// 95 % Student's t interval. No Node built-ins: runs in browsers too.

/** Mean and sample standard deviation (n − 1 denominator; 0 for a single value), e.g. over seeds. */
export function meanStd(values: number[]): { mean: number; std: number } {
  if (values.length === 0) throw new Error('meanStd: no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length === 1) return { mean, std: 0 };
  const sq = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(sq / (values.length - 1)) };
}

/** Two-sided 95 % quantiles of Student's t for 1–30 degrees of freedom (beyond, the normal's 1.96 is within 2 % of them). */
const T_975 = [
  12.7062, 4.30265, 3.18245, 2.77645, 2.57058, 2.44691, 2.36462, 2.306, 2.26216, 2.22814, 2.20099, 2.17881, 2.16037, 2.14479, 2.13145, 2.11991, 2.10982, 2.10092,
  2.09302, 2.08596, 2.07961, 2.07387, 2.06866, 2.0639, 2.05954, 2.05553, 2.05183, 2.04841, 2.04523, 2.04227,
];

export interface PairedDifference {
  /** Mean of a[i] − b[i]. */
  mean: number;
  /** The 95 % confidence interval of that mean (Student's t on n − 1 degrees of freedom); [mean, mean] for one pair. */
  low: number;
  high: number;
  n: number;
}

/**
 * The paired difference a − b, e.g. a focus mode minus no focus per seed on
 * the same training images: its mean and 95 % t-interval. Pairing removes
 * the spread that the seed's draw of training images puts into both.
 */
export function pairedDifference(a: number[], b: number[]): PairedDifference {
  if (a.length !== b.length || a.length === 0) throw new Error(`pairedDifference: expected two equally long, non-empty lists, got ${a.length} and ${b.length} values`);
  const d = a.map((v, i) => v - b[i]);
  const { mean, std } = meanStd(d);
  const n = d.length;
  const df = n - 1;
  const t = df === 0 ? 0 : df <= T_975.length ? T_975[df - 1] : 1.96;
  const half = (t * std) / Math.sqrt(n);
  return { mean, low: mean - half, high: mean + half, n };
}
