// Context lines of the model cases: planned GPU memory of a compiled graph.
/** Bytes as MiB, one decimal below 16 MiB. */
export const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 24 ? 1 : 0)} MiB`;

/** The context line of a compiled graph's Graph.stats(). */
export const memoryLine = (s) => `planned peak GPU memory ${mib(s.plannedPeakBytes)} of intermediates (${mib(s.unplannedBytes)} without the plan) + ${mib(s.weightBytes)} weights`;
