// Admission to one backend pool: at most `limit` exchanges hold a connection, the rest wait in arrival
// order for at most `queueTimeoutMs` and are then refused (503), so a pool held by slow or stalled
// requests costs later clients a clear answer, never a hang. undici's own queue has no deadline and
// cannot give a waiting request back; this one can.

/** An exchange waiting for (or holding) a slot. */
export interface Waiter {
  /** A slot is this waiter's now: send the request. */
  startUpstream(): void;
  /** The queue deadline passed before a slot freed: answer without sending anything. */
  queueExpired(waitedMs: number): void;
}

interface Entry {
  readonly waiter: Waiter;
  readonly since: number;
  timer: NodeJS.Timeout | null;
  done: boolean;
}

export class PoolGate {
  readonly limit: number;
  readonly queueTimeoutMs: number;
  /** Exchanges holding a slot now. */
  active = 0;
  /** Exchanges refused because the queue deadline passed (for the metric). */
  timeouts = 0;
  #queue: Entry[] = [];
  #head = 0;
  #waiting = 0;

  readonly #onTimeout: () => void;

  constructor(limit: number, queueTimeoutMs: number, onTimeout: () => void = () => {}) {
    this.limit = limit;
    this.queueTimeoutMs = queueTimeoutMs;
    this.#onTimeout = onTimeout;
  }

  /** Exchanges waiting for a slot now. */
  get queued(): number {
    return this.#waiting;
  }

  /**
   * Start the waiter now when a slot is free and nobody waits before it; otherwise queue it. Returns a
   * function that takes a queued waiter out (client gone), or null when it started at once.
   */
  enter(waiter: Waiter): (() => void) | null {
    if (this.active < this.limit && this.#waiting === 0) {
      this.active++;
      waiter.startUpstream();
      return null;
    }
    const entry: Entry = { waiter, since: performance.now(), timer: null, done: false };
    if (this.queueTimeoutMs > 0) entry.timer = setTimeout(() => this.#expire(entry), this.queueTimeoutMs);
    this.#queue.push(entry);
    this.#waiting++;
    return () => this.#remove(entry);
  }

  /** A slot holder finished: the next waiter, if any, takes the slot. */
  leave(): void {
    this.active--;
    this.#next();
  }

  #next(): void {
    while (this.active < this.limit && this.#waiting > 0) {
      const entry = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (entry.done) continue;
      this.#settle(entry);
      this.active++;
      entry.waiter.startUpstream();
    }
    if (this.#waiting === 0 && this.#head > 0) {
      this.#queue = [];
      this.#head = 0;
    }
  }

  #settle(entry: Entry): void {
    entry.done = true;
    this.#waiting--;
    if (entry.timer !== null) clearTimeout(entry.timer);
  }

  #remove(entry: Entry): void {
    if (!entry.done) this.#settle(entry);
  }

  #expire(entry: Entry): void {
    if (entry.done) return;
    this.#settle(entry);
    this.timeouts++;
    this.#onTimeout();
    entry.waiter.queueExpired(performance.now() - entry.since);
  }
}
