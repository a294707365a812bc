/** Small statistics over measured samples, shared by the scenarios and their tests. */

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Least-squares slope of y over x (units of y per unit of x); 0 with fewer than two distinct x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num_ = 0;
  let den = 0;
  for (const [x, y] of points) {
    num_ += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den > 0 ? num_ / den : 0;
}
