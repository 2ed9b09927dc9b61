/*
 * Order statistics of the benchmarks' samples (latencies, per-call times), one definition for
 * every bench: the p-th percentile is the sample at index ⌊p/100 · n⌋ of the sorted samples
 * (the last one for p = 100), the median the 50th; NaN when there is no sample.
 */

/** The p-th percentile of samples already sorted ascending (several percentiles, one sort). */
export function percentileOfSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The p-th percentile of samples in any order (the samples are not reordered). */
export const percentile = (xs: readonly number[], p: number): number =>
  percentileOfSorted(
    [...xs].sort((a, b) => a - b),
    p,
  );

export const median = (xs: readonly number[]): number => percentile(xs, 50);
