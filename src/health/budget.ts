// Envoy's retry budget for failovers after an error: over the last 10 s, failovers may be at most a
// share of requests (plus a small floor per second for quiet services), so that when both stacks are
// overloaded, failing over never doubles the load. Ten one-second slots; time passed in; pure.

const SLOTS = 10;

export class RetryBudget {
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  readonly #stamp = new Float64Array(SLOTS).fill(-1);
  percent: number;
  minPerSecond: number;
  /** Failovers refused because the budget was spent. */
  exhausted = 0;

  constructor(percent: number, minPerSecond: number) {
    this.percent = percent;
    this.minPerSecond = minPerSecond;
  }

  #slot(now: number): number {
    const second = Math.floor(now / 1000);
    const i = second % SLOTS;
    if (this.#stamp[i] !== second) {
      this.#stamp[i] = second;
      this.#requests[i] = 0;
      this.#retries[i] = 0;
    }
    return i;
  }

  /** Every request that went upstream counts toward the budget's base. */
  request(now: number): void {
    this.#requests[this.#slot(now)]!++;
  }

  /** Take one failover from the budget: false (and counted) when it is spent. */
  take(now: number): boolean {
    const i = this.#slot(now);
    const second = Math.floor(now / 1000);
    let requests = 0;
    let retries = 0;
    for (let k = 0; k < SLOTS; k++) {
      if (this.#stamp[k]! <= second - SLOTS) continue;
      requests += this.#requests[k]!;
      retries += this.#retries[k]!;
    }
    const allowed = (requests * this.percent) / 100;
    if (retries >= allowed && this.#retries[i]! >= this.minPerSecond) {
      this.exhausted++;
      return false;
    }
    this.#retries[i]!++;
    return true;
  }
}
