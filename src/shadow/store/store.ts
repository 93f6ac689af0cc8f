// The shadow store as the proxy sees it: records and counters are buffered here (bounded; overflow is
// counted, never queued) and handed to the store's worker thread once per flush interval. Nothing on
// the request path touches SQLite, and neither does retention: both run in the worker (worker.ts).
import { Worker } from "node:worker_threads";
import type { FromWorker, StoreWorkerData, ToWorker } from "./worker.ts";
import type { CounterDelta, PairRow, StoreStats } from "./writer.ts";
import { moduleBeside } from "../../runtime.ts";

export type { PairRecord, PairRow, StoreStats } from "./writer.ts";
export { pairRow } from "./writer.ts";

export interface StoreOptions {
  maxBytes: number;
  maxAgeMs: number;
  flushIntervalMs: number;
  /** Most records waiting for a flush; more are dropped and counted. */
  maxPending?: number;
  /** How often retention runs in the worker. Default 60 s. */
  pruneIntervalMs?: number;
  now?: () => number;
}

/** Where compared pairs go: the store itself, or (in a worker) a forwarder to the primary's store. */
export interface PairSink {
  /** A compared pair, as a row (pairRow). */
  add(row: PairRow): void;
  count(feature: string, name: string, n?: number): void;
  close(): Promise<void>;
}

export class ShadowStore implements PairSink {
  readonly path: string;
  /** Records dropped because the buffer was full, and records a failed write lost. */
  readonly losses = { overflow: 0, failedWrites: 0 };
  /** The store as the worker last reported it (size, records, oldest), null until it has. */
  stats: StoreStats | null = null;
  readonly #worker: Worker;
  readonly #maxPending: number;
  readonly #now: () => number;
  readonly #onError: (err: Error) => void;
  #pending: PairRow[] = [];
  /** This minute's counters, by feature then name (no key string built per count). */
  #counters = new Map<string, Map<string, number>>();
  #minute = -1;
  /** Counters of minutes that ended since the last send. */
  #earlier: CounterDelta[] = [];
  #timer: NodeJS.Timeout;
  #nextId = 0;
  readonly #waiting = new Map<number, (stats: StoreStats) => void>();
  #closed: Promise<void> | null = null;

  constructor(path: string, opts: StoreOptions, onError: (err: Error) => void = () => {}) {
    this.path = path;
    this.#maxPending = opts.maxPending ?? 10_000;
    this.#now = opts.now ?? Date.now;
    this.#onError = onError;
    const data: StoreWorkerData = { path, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs, pruneIntervalMs: opts.pruneIntervalMs ?? 60_000 };
    this.#worker = new Worker(moduleBeside(import.meta.url, "worker"), { workerData: data });
    this.#worker.unref(); // a store left open never keeps the process alive; close() waits for it
    this.#worker.on("message", (m: FromWorker) => this.#onMessage(m));
    this.#worker.on("error", (err) => this.#onError(err));
    this.#worker.on("exit", () => {
      for (const resolve of this.#waiting.values()) resolve(this.stats ?? { path, bytes: 0, records: 0, oldest: null, newest: null });
      this.#waiting.clear();
    });
    this.#timer = setInterval(() => this.#send(), opts.flushIntervalMs);
    this.#timer.unref();
  }

  add(row: PairRow): void {
    if (this.#pending.length >= this.#maxPending) {
      this.losses.overflow++;
      return;
    }
    this.#pending.push(row);
  }

  /** Per-minute counters (mirrored, skipped by reason, ...) for effective sample rates in reports. */
  count(feature: string, name: string, n = 1): void {
    const minute = Math.floor(this.#now() / 60_000);
    if (minute !== this.#minute) {
      this.#endMinute();
      this.#minute = minute;
    }
    let names = this.#counters.get(feature);
    if (names === undefined) this.#counters.set(feature, (names = new Map()));
    names.set(name, (names.get(name) ?? 0) + n);
  }

  /** This minute's counters join those waiting to be sent. */
  #endMinute(): void {
    for (const [feature, names] of this.#counters) for (const [name, value] of names) this.#earlier.push([this.#minute, feature, name, value]);
    this.#counters.clear();
  }

  /** Everything buffered so far is written (a report started after this sees it); resolves with fresh stats. */
  flush(): Promise<StoreStats> {
    this.#send();
    return this.#ask();
  }

  /** Write what is buffered, then close the worker and the file. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#timer);
      this.#send();
      const id = this.#nextId++;
      const done = new Promise<void>((resolve) => this.#waiting.set(id, () => resolve()));
      this.#post({ type: "close", id });
      await done;
      await this.#worker.terminate();
    })();
    return this.#closed;
  }

  #send(): void {
    this.#endMinute();
    if (this.#pending.length === 0 && this.#earlier.length === 0) return;
    const rows = this.#pending;
    const counters = this.#earlier;
    this.#pending = [];
    this.#earlier = [];
    this.#post({ type: "write", rows, counters });
  }

  #ask(): Promise<StoreStats> {
    const id = this.#nextId++;
    return new Promise<StoreStats>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#post({ type: "sync", id });
    });
  }

  #post(m: ToWorker): void {
    try {
      this.#worker.postMessage(m);
    } catch (err) {
      this.#onError(err as Error);
    }
  }

  #onMessage(m: FromWorker): void {
    if (m.type === "error") {
      this.losses.failedWrites += m.lost;
      this.#onError(new Error(m.message));
      return;
    }
    this.stats = m.stats;
    if (m.type === "ack") {
      const resolve = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      resolve?.(m.stats);
    }
  }
}
