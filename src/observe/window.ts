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

export class WindowStats {
  readonly #fine = new Ring(10_000, 31);
  readonly #coarse = new Ring(60_000, 61);
  #first = -1;

  record(ms: number, error: boolean, now: number): void {
    if (this.#first < 0) this.#first = now;
    const b = bucketOf(ms);
    for (const slot of [this.#fine.slotFor(now), this.#coarse.slotFor(now)]) {
      slot.count++;
      if (error) slot.errors++;
      (slot.hist ??= new Uint32Array(BUCKETS))[b]!++;
    }
  }

  summary(window: WindowName, now: number): WindowSummary {
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
