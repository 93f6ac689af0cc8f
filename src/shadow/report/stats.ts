// Statistics for comparing two latency samples, as Kayenta's Mann-Whitney judge does: the U test
// (normal approximation with tie correction) for "is one side shifted", and the Hodges-Lehmann
// estimate of the shift with its distribution-free confidence interval. Pure.

export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export interface MannWhitney {
  u: number;
  z: number;
  /** Two-sided p-value. */
  p: number;
}

/** Mann-Whitney U test of x against y (x's U), normal approximation with tie correction. */
export function mannWhitney(x: readonly number[], y: readonly number[]): MannWhitney | null {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return null;
  const all = [...x.map((v) => ({ v, g: 0 })), ...y.map((v) => ({ v, g: 1 }))].sort((a, b) => a.v - b.v);
  let rankSumX = 0;
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    const rank = (i + j) / 2 + 1;
    const t = j - i + 1;
    if (t > 1) tieTerm += t ** 3 - t;
    for (let k = i; k <= j; k++) if (all[k]!.g === 0) rankSumX += rank;
    i = j + 1;
  }
  const u = rankSumX - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return { u, z: 0, p: 1 };
  const z = (u - mean - Math.sign(u - mean) * 0.5) / Math.sqrt(variance); // continuity correction
  return { u, z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

/**
 * Mann-Whitney U of x against y from histograms over the same bins (each bin one tie group): the
 * guard's windows keep latency as log buckets, not samples. `greater` is the one-sided p-value that
 * x tends to be larger than y.
 */
export function mannWhitneyBinned(x: ArrayLike<number>, y: ArrayLike<number>): (MannWhitney & { greater: number }) | null {
  let n1 = 0;
  let n2 = 0;
  for (let i = 0; i < x.length; i++) n1 += x[i]!;
  for (let i = 0; i < y.length; i++) n2 += y[i]!;
  if (n1 === 0 || n2 === 0) return null;
  let below = 0; // values of both samples in lower bins
  let rankSumX = 0;
  let tieTerm = 0;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const t = (x[i] ?? 0) + (y[i] ?? 0);
    if (t === 0) continue;
    const rank = below + (t + 1) / 2; // the mean rank of the tie group
    rankSumX += (x[i] ?? 0) * rank;
    if (t > 1) tieTerm += t ** 3 - t;
    below += t;
  }
  const u = rankSumX - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return { u, z: 0, p: 1, greater: 1 };
  const z = (u - mean - Math.sign(u - mean) * 0.5) / Math.sqrt(variance);
  return { u, z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))), greater: 1 - normalCdf(z) };
}

export interface HodgesLehmann {
  /** Median of y - x over all pairs: how much y is shifted from x. */
  shift: number;
  low: number;
  high: number;
  /** Pairs used (samples are thinned to at most `maxPerSide` each). */
  n1: number;
  n2: number;
}

/** Hodges-Lehmann shift of y against x with a ~95 % confidence interval. */
export function hodgesLehmann(x: readonly number[], y: readonly number[], maxPerSide = 1500): HodgesLehmann | null {
  if (x.length === 0 || y.length === 0) return null;
  const xs = thin(x, maxPerSide);
  const ys = thin(y, maxPerSide);
  const diffs = new Float64Array(xs.length * ys.length);
  let k = 0;
  for (const b of ys) for (const a of xs) diffs[k++] = b - a;
  const m = diffs.length;
  const n1 = xs.length;
  const n2 = ys.length;
  // The k-th smallest and k-th largest differences bound the 95 % interval (normal approximation).
  const c = Math.floor((n1 * n2) / 2 - 1.96 * Math.sqrt((n1 * n2 * (n1 + n2 + 1)) / 12));
  const lo = Math.max(0, Math.min(m - 1, c));
  const hi = Math.max(0, Math.min(m - 1, m - 1 - c));
  // Order statistics by selection (linear time) instead of sorting millions of differences: the
  // median first, then each bound within the half the median's partition left it in.
  const upper = Math.floor(m / 2);
  const med = select(diffs, upper);
  const shift = m % 2 ? med : (select(diffs, upper - 1, 0, upper - 1) + med) / 2;
  const low = lo <= upper ? select(diffs, lo, 0, upper) : select(diffs, lo, upper, m - 1);
  const high = hi >= upper ? select(diffs, hi, upper, m - 1) : select(diffs, hi, 0, upper);
  return { shift, low, high, n1, n2 };
}

/**
 * The k-th smallest value (0-based), rearranging `a` around it: quickselect with Hoare's partition,
 * which splits runs of equal values (common: latencies are rounded) evenly instead of going quadratic.
 * Later calls on the same array stay correct: each only partitions further; `from`..`to` limits the
 * search to a range already known to hold the k-th value (after an earlier selection).
 */
export function select(a: Float64Array, k: number, from = 0, to = a.length - 1): number {
  let left = from;
  let right = to;
  while (left < right) {
    const x = a[left]!;
    const y = a[(left + right) >>> 1]!;
    const z = a[right]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y; // median of three
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i++] = a[j]!;
        a[j--] = t;
      }
    }
    // Now [left, j] <= pivot <= [i, right], and anything between j and i equals the pivot.
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k]!;
  }
  return a[left]!;
}

/** Every k-th value of the sorted sample, so at most `max` remain (deterministic). */
function thin(v: readonly number[], max: number): number[] {
  const sorted = [...v].sort((a, b) => a - b);
  if (sorted.length <= max) return sorted;
  const step = sorted.length / max;
  return Array.from({ length: max }, (_, i) => sorted[Math.floor(i * step)]!);
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 via erf). */
export function normalCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
