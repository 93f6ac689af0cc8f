// Noise cancellation after Twitter's Diffy: the same request answered twice by the same backend shows
// which fields differ by themselves (timestamps, random ids). A field's difference between the two
// backends is real only when its rate clearly exceeds that noise rate. Pure counting.

export interface NoiseRule {
  /** Relative margin over the noise rate (Diffy: 0.2). */
  relative: number;
  /** Absolute margin, as a share of compared pairs (Diffy: 0.0003). */
  absolute: number;
}

export interface PathVerdict {
  path: string;
  /** Pairs in which this path differed between the backends. */
  count: number;
  rate: number;
  /** Share of replayed pairs in which it differed between two answers of the same backend. */
  noiseRate: number | null;
  noise: boolean;
}

/** Counts for one route: differences between the backends, and between a backend and itself. */
export class NoiseModel {
  pairs = 0;
  replays = 0;
  readonly raw = new Map<string, number>();
  readonly self = new Map<string, number>();
  /** Most distinct paths counted per side; differences on paths beyond it count as real. */
  readonly #maxPaths: number;

  constructor(maxPaths = Number.POSITIVE_INFINITY) {
    this.#maxPaths = maxPaths;
  }

  /** One compared pair: the normalised paths that differed (each counted once). */
  addPair(paths: Iterable<string>): void {
    this.pairs++;
    this.countPaths(paths);
  }

  /** The paths one compared pair differed on, when `pairs` is counted elsewhere (a SQL count). */
  countPaths(paths: Iterable<string>): void {
    bump(this.raw, paths, this.#maxPaths);
  }

  /** One replay: the paths that differed between two answers of the serving backend. */
  addReplay(paths: Iterable<string>): void {
    this.replays++;
    bump(this.self, paths, this.#maxPaths);
  }

  /** Whether differences on this path are noise under the rule. */
  isNoise(path: string, rule: NoiseRule): boolean {
    return this.verdict(path, rule).noise;
  }

  verdict(path: string, rule: NoiseRule): PathVerdict {
    const count = this.raw.get(path) ?? 0;
    const rate = this.pairs === 0 ? 0 : count / this.pairs;
    const noiseRate = this.replays === 0 ? null : (this.self.get(path) ?? 0) / this.replays;
    return { path, count, rate, noiseRate, noise: noiseRate !== null && !isRealDifference(rate, noiseRate, rule) };
  }

  /** Every path that differed, most frequent first. */
  verdicts(rule: NoiseRule): PathVerdict[] {
    return [...this.raw.keys()].map((p) => this.verdict(p, rule)).sort((a, b) => b.count - a.count || a.path.localeCompare(b.path));
  }

  /** Paths seen only between a backend and itself (noise that never showed between the backends). */
  noiseOnly(): string[] {
    return [...this.self.keys()].filter((p) => !this.raw.has(p)).sort();
  }
}

function bump(counts: Map<string, number>, paths: Iterable<string>, max: number): void {
  for (const p of new Set(paths)) {
    const n = counts.get(p);
    if (n !== undefined) counts.set(p, n + 1);
    else if (counts.size < max) counts.set(p, 1);
  }
}

/** Diffy's rule: real iff raw > noise * (1 + relative) and raw - noise > absolute. */
export function isRealDifference(rawRate: number, noiseRate: number, rule: NoiseRule): boolean {
  return rawRate > noiseRate * (1 + rule.relative) && rawRate - noiseRate > rule.absolute;
}
