// Sliding-window request statistics (rate, error rate, latency quantiles) kept in process without
// storing samples: each window is a ring of time slots, each slot a log-bucketed latency histogram
// (buckets 7 % wide, so a quantile is within ±3.5 % of the true value) plus request and error counts.
// 10-second slots serve the 1 m and 5 m windows, 1-minute slots the 1 h window. Time is passed in.

const MIN_MS = 0.01;
const GROWTH = 1.07;
const LOG_GROWTH = Math.log(GROWTH);
/** 0.01 ms .. ~2.7 min; slower answers count in the last bucket. */
export const BUCKETS = 250;

export function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH);
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** A representative value of bucket i: the geometric middle of its bounds. */
export function bucketValue(i: number): number {
  return i === 0 ? MIN_MS : MIN_MS * GROWTH ** (i - 0.5);
}

class Slot {
  start = -1;
  count = 0;
  errors = 0;
  hist: Uint32Array | null = null;

  reset(start: number): void {
    this.start = start;
    this.count = 0;
    this.errors = 0;
    this.hist?.fill(0);
  }
}

class Ring {
  readonly slots: Slot[];
  readonly slotMs: number;

  constructor(slotMs: number, n: number) {
    this.slotMs = slotMs;
    this.slots = Array.from({ length: n }, () => new Slot());
  }

  slotFor(now: number): Slot {
    const start = now - (now % this.slotMs);
    const slot = this.slots[Math.floor(start / this.slotMs) % this.slots.length]!;
    if (slot.start !== start) slot.reset(start);
    return slot;
  }

  /** The slot for a past time, or null when the ring has already moved past it (too old to keep). */
  slotForPast(at: number): Slot | null {
    const start = at - (at % this.slotMs);
    const slot = this.slots[Math.floor(start / this.slotMs) % this.slots.length]!;
    if (slot.start > start) return null;
    if (slot.start !== start) slot.reset(start);
    return slot;
  }

  /** Slots whose span overlaps (now - windowMs, now]. */
  *within(now: number, windowMs: number): Iterable<Slot> {
    for (const s of this.slots) if (s.start >= 0 && s.start + this.slotMs > now - windowMs && s.start <= now) yield s;
  }
}

export interface WindowSummary {
  requests: number;
  /** Requests per second over the window (or over the time since the first request, if shorter). */
  rate: number;
  errors: number;
  /** errors / requests, 0..1; null without requests. */
  error_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

export const WINDOWS = { "1m": 60_000, "5m": 300_000, "1h": 3_600_000 } as const;
export type WindowName = keyof typeof WINDOWS;

/**
 * What one process recorded in one 10-second slot since it last handed its numbers over: a worker
 * sends these to the primary, which merges them into windows over every worker.
 */
export interface WindowDelta {
  /** Start of the 10-second slot (ms since the epoch). */
  at: number;
  count: number;
  errors: number;
  /** Latency buckets as flat pairs: bucket index, count, bucket index, count, ... */
  hist: number[];
}

const DELTA_SLOT_MS = 10_000;

export class WindowStats {
  readonly #fine = new Ring(DELTA_SLOT_MS, 31);
  readonly #coarse = new Ring(60_000, 61);
  #first = -1;
  /** Records not yet handed over, by 10 s slot start; null unless deltas are tracked (workers, fleets). */
  #pending: Map<number, Slot> | null = null;

  record(ms: number, error: boolean, now: number): void {
    if (this.#first < 0) this.#first = now;
    const b = bucketOf(ms);
    for (const slot of [this.#fine.slotFor(now), this.#coarse.slotFor(now)]) {
      slot.count++;
      if (error) slot.errors++;
      (slot.hist ??= new Uint32Array(BUCKETS))[b]!++;
    }
    if (this.#pending !== null) {
      const p = this.#pendingAt(this.#pending, now - (now % DELTA_SLOT_MS));
      p.count++;
      if (error) p.errors++;
      p.hist![b]!++;
    }
  }

  #pendingAt(pending: Map<number, Slot>, at: number): Slot {
    let p = pending.get(at);
    if (p === undefined) {
      pending.set(at, (p = new Slot()));
      p.start = at;
      p.hist = new Uint32Array(BUCKETS);
    }
    return p;
  }

  /** Keep what is recorded from now on for drainDeltas() as well. */
  trackDeltas(): this {
    this.#pending ??= new Map();
    return this;
  }

  /** What was recorded since the last call (empty when nothing was, or deltas are not tracked). */
  drainDeltas(): WindowDelta[] {
    if (this.#pending === null || this.#pending.size === 0) return [];
    const out = [...this.#pending].map(([at, p]) => {
      const hist: number[] = [];
      p.hist!.forEach((n, b) => n > 0 && hist.push(b, n));
      return { at, count: p.count, errors: p.errors, hist };
    });
    this.#pending.clear();
    return out;
  }

  /**
   * Add another process's records (a worker's delta); slots the windows have moved past are ignored.
   * Tracked deltas include merged ones: a primary hands its workers' records on to the fleet.
   */
  merge(d: WindowDelta): void {
    if (d.count === 0) return;
    if (this.#first < 0 || d.at < this.#first) this.#first = d.at;
    const into = [this.#fine.slotForPast(d.at), this.#coarse.slotForPast(d.at), this.#pending && this.#pendingAt(this.#pending, d.at)];
    for (const slot of into) {
      if (slot === null) continue;
      slot.count += d.count;
      slot.errors += d.errors;
      const hist = (slot.hist ??= new Uint32Array(BUCKETS));
      for (let i = 0; i + 1 < d.hist.length; i += 2) {
        const b = d.hist[i]!;
        if (b >= 0 && b < BUCKETS) hist[b]! += d.hist[i + 1]!;
      }
    }
  }

  /** Latency buckets over the window (bucketValue(i) is bucket i's representative), with the counts. */
  histogram(window: WindowName, now: number): { hist: Uint32Array; requests: number; errors: number } {
    const windowMs = WINDOWS[window];
    const ring = windowMs <= 300_000 ? this.#fine : this.#coarse;
    const hist = new Uint32Array(BUCKETS);
    let requests = 0;
    let errors = 0;
    for (const s of ring.within(now, windowMs)) {
      requests += s.count;
      errors += s.errors;
      if (s.hist) for (let i = 0; i < BUCKETS; i++) hist[i]! += s.hist[i]!;
    }
    return { hist, requests, errors };
  }

  summary(window: WindowName, now: number): WindowSummary {
    const windowMs = WINDOWS[window];
    const { hist, requests, errors } = this.histogram(window, now);
    const span = this.#first < 0 ? windowMs : Math.min(windowMs, Math.max(1000, now - this.#first));
    return {
      requests,
      rate: requests / (span / 1000),
      errors,
      error_rate: requests === 0 ? null : errors / requests,
      p50_ms: quantile(hist, requests, 0.5),
      p95_ms: quantile(hist, requests, 0.95),
      p99_ms: quantile(hist, requests, 0.99),
    };
  }
}

function quantile(hist: Uint32Array, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return Math.round(bucketValue(i) * 1000) / 1000;
  }
  return Math.round(bucketValue(hist.length - 1) * 1000) / 1000;
}
