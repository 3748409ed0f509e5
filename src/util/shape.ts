// Shape equality, the one copy the graph ops, kernels and model loaders share
// (a shape here is any list of dimensions: a Tensor's, a Value's, a file's).

/** Whether a and b have the same rank and the same dimensions. */
export const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
