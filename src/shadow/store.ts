// Comparison records in an embedded SQLite file (node:sqlite). Records are buffered in memory and
// written in one transaction per flush interval, never per request; the buffer is bounded (overflow is
// counted, not queued). Old records go by age, and by size when the file outgrows its limit. What is
// stored is already redacted (see redact.ts).
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";

export interface PairRecord {
  ts: number;
  req_id: string;
  feature: string;
  route: string | null;
  method: string;
  path: string;
  primary_backend: string;
  legacy_status: number | null;
  new_status: number | null;
  legacy_ms: number | null;
  new_ms: number | null;
  legacy_bytes: number | null;
  new_bytes: number | null;
  /** match | mismatch | shadow_error | primary_error */
  verdict: string;
  /** JSON: [{path, kind, legacy, new}], redacted and capped. */
  diffs: string;
  /** JSON: paths that differed between two answers of the serving backend; null without a replay. */
  replay_diffs: string | null;
  /** JSON: presets that equated something in this pair. */
  presets: string;
  body_compared: number;
  error: string | null;
}

const COLUMNS = ["ts", "req_id", "feature", "route", "method", "path", "primary_backend", "legacy_status", "new_status", "legacy_ms", "new_ms", "legacy_bytes", "new_bytes", "verdict", "diffs", "replay_diffs", "presets", "body_compared", "error"] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pairs (
  id INTEGER PRIMARY KEY,
  ${COLUMNS.map((c) => `${c} ${c === "ts" ? "INTEGER NOT NULL" : /_status|_bytes|body_compared/.test(c) ? "INTEGER" : /_ms$/.test(c) ? "REAL" : "TEXT"}`).join(",\n  ")}
);
CREATE INDEX IF NOT EXISTS pairs_ts ON pairs (ts);
CREATE INDEX IF NOT EXISTS pairs_feature_ts ON pairs (feature, ts);
CREATE TABLE IF NOT EXISTS counters (
  minute INTEGER NOT NULL,
  feature TEXT NOT NULL,
  name TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (minute, feature, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export interface StoreOptions {
  maxBytes: number;
  maxAgeMs: number;
  flushIntervalMs: number;
  /** Most records waiting for a flush; more are dropped and counted. */
  maxPending?: number;
  now?: () => number;
}

export class ShadowStore {
  readonly path: string;
  readonly db: DatabaseSync;
  /** Records dropped because the buffer was full, and flushes that failed. */
  readonly losses = { overflow: 0, failedFlushes: 0 };
  #pending: PairRecord[] = [];
  #counters = new Map<string, number>();
  #insert: StatementSync;
  #bump: StatementSync;
  #timer: NodeJS.Timeout;
  #lastPrune = 0;
  #opts: Required<StoreOptions>;
  #onError: (err: Error) => void;

  constructor(path: string, opts: StoreOptions, onError: (err: Error) => void = () => {}) {
    this.path = path;
    this.#opts = { maxPending: 10_000, now: Date.now, ...opts };
    this.#onError = onError;
    mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    this.db.exec(SCHEMA);
    this.#insert = this.db.prepare(`INSERT INTO pairs (${COLUMNS.join(", ")}) VALUES (${COLUMNS.map(() => "?").join(", ")})`);
    this.#bump = this.db.prepare("INSERT INTO counters (minute, feature, name, value) VALUES (?, ?, ?, ?) ON CONFLICT (minute, feature, name) DO UPDATE SET value = value + excluded.value");
    this.#timer = setInterval(() => this.flush(), this.#opts.flushIntervalMs);
    this.#timer.unref();
  }

  add(record: PairRecord): void {
    if (this.#pending.length >= this.#opts.maxPending) {
      this.losses.overflow++;
      return;
    }
    this.#pending.push(record);
  }

  /** Per-minute counters (mirrored, skipped by reason, ...) for effective sample rates in reports. */
  count(feature: string, name: string, n = 1): void {
    const key = `${Math.floor(this.#opts.now() / 60_000)}\u0000${feature}\u0000${name}`;
    this.#counters.set(key, (this.#counters.get(key) ?? 0) + n);
  }

  setMeta(key: string, value: unknown): void {
    this.db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, JSON.stringify(value));
  }

  /** Write everything buffered in one transaction; then prune by age and size now and then. */
  flush(): void {
    if (this.#pending.length === 0 && this.#counters.size === 0) return this.#maybePrune();
    const records = this.#pending;
    const counters = this.#counters;
    this.#pending = [];
    this.#counters = new Map();
    try {
      this.db.exec("BEGIN");
      for (const r of records) this.#insert.run(...COLUMNS.map((c) => r[c]));
      for (const [key, value] of counters) {
        const [minute, feature, name] = key.split("\u0000") as [string, string, string];
        this.#bump.run(Number(minute), feature, name, value);
      }
      this.db.exec("COMMIT");
    } catch (err) {
      this.losses.failedFlushes++;
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // no transaction open
      }
      this.#onError(err as Error);
    }
    this.#maybePrune();
  }

  #maybePrune(): void {
    const now = this.#opts.now();
    if (now - this.#lastPrune < 60_000) return;
    this.#lastPrune = now;
    this.prune();
  }

  /** Delete records past max_age, then the oldest tenth while the file is over max_size. */
  prune(): void {
    try {
      const cutoff = this.#opts.now() - this.#opts.maxAgeMs;
      this.db.prepare("DELETE FROM pairs WHERE ts < ?").run(cutoff);
      this.db.prepare("DELETE FROM counters WHERE minute < ?").run(Math.floor(cutoff / 60_000));
      // Over the size limit: drop the oldest share that brings the file to 90 % of it, reclaim the pages.
      for (let round = 0, size = this.sizeBytes(); round < 5 && size > this.#opts.maxBytes; round++, size = this.sizeBytes()) {
        const n = (this.db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n;
        if (n === 0) break;
        const drop = Math.max(1, Math.ceil(n * Math.min(1, 1 - (this.#opts.maxBytes * 0.9) / size)));
        this.db.prepare("DELETE FROM pairs WHERE id IN (SELECT id FROM pairs ORDER BY ts LIMIT ?)").run(drop);
        this.db.exec("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);");
      }
    } catch (err) {
      this.#onError(err as Error);
    }
  }

  sizeBytes(): number {
    const pages = this.db.prepare("PRAGMA page_count").get() as { page_count: number };
    const size = this.db.prepare("PRAGMA page_size").get() as { page_size: number };
    let wal = 0;
    try {
      wal = statSync(`${this.path}-wal`).size;
    } catch {
      // no WAL file
    }
    return pages.page_count * size.page_size + wal;
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
    this.db.close();
  }
}
