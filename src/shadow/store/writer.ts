// Comparison records in an embedded SQLite file (node:sqlite): the one connection that writes. It runs
// in the store's worker thread (see worker.ts), never on the proxy's event loop; tests and benches use
// it directly. What is stored is already redacted (see ../redact.ts).
//
// Retention that means what it says: sizes are measured after a WAL checkpoint (the WAL a delete
// leaves behind is not data), freed pages are given back (incremental vacuum) after deleting by age as
// well as by size, the size path deletes only what brings the file back under its limit, and every
// delete goes in small batches so the worker can take new records in between.
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

export const COLUMNS = ["ts", "req_id", "feature", "route", "method", "path", "primary_backend", "legacy_status", "new_status", "legacy_ms", "new_ms", "legacy_bytes", "new_bytes", "verdict", "diffs", "replay_diffs", "presets", "body_compared", "error"] as const;

/** A record as a row: its values in COLUMNS order. Records travel to the store's worker (and from
 * cluster workers to the primary) as rows: a list of values copies for a fraction of what an object
 * with nineteen named fields does, and binds to the insert as it is. */
type RowOf<C extends readonly (keyof PairRecord)[]> = { -readonly [I in keyof C]: PairRecord[C[I]] };
export type PairRow = RowOf<typeof COLUMNS>;

export function pairRow(r: PairRecord): PairRow {
  // Written out, not COLUMNS.map(c => r[c]): a fixed read per field, not a lookup by name.
  return [r.ts, r.req_id, r.feature, r.route, r.method, r.path, r.primary_backend, r.legacy_status, r.new_status, r.legacy_ms, r.new_ms, r.legacy_bytes, r.new_bytes, r.verdict, r.diffs, r.replay_diffs, r.presets, r.body_compared, r.error];
}

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

/** The oldest and newest record: two subqueries, since min() and max() in one SELECT scan the table instead of the index. */
export const EDGES_SQL = "SELECT (SELECT min(ts) FROM pairs) AS oldest, (SELECT max(ts) FROM pairs) AS newest";

/** Rows deleted per statement while pruning: a few milliseconds each, so new records interleave. */
export const PRUNE_BATCH = 2000;

export interface RetentionOptions {
  /** The file (data and WAL) is kept under this many bytes; 0 = no limit. */
  maxBytes: number;
  /** Records older than this go; 0 = keep by size only. */
  maxAgeMs: number;
  now?: () => number;
}

export interface StoreStats {
  path: string;
  /** Bytes on disk: the database file and its WAL. */
  bytes: number;
  records: number;
  /** Epoch ms of the oldest record, null when empty. */
  oldest: number | null;
  newest: number | null;
}

/** One counter increment: (minute, feature, name) += value. */
export type CounterDelta = [minute: number, feature: string, name: string, value: number];

export class StoreWriter {
  readonly path: string;
  readonly db: DatabaseSync;
  readonly #opts: Required<RetentionOptions>;
  readonly #insert: StatementSync;
  readonly #bump: StatementSync;
  #trimming = false;
  /** Records in the table, counted once and then kept by inserts and deletes (this is the only writer). */
  #records: number | null = null;

  constructor(path: string, opts: RetentionOptions) {
    this.path = path;
    this.#opts = { now: Date.now, ...opts };
    mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.db.exec(SCHEMA);
    this.#insert = this.db.prepare(`INSERT INTO pairs (${COLUMNS.join(", ")}) VALUES (${COLUMNS.map(() => "?").join(", ")})`);
    this.#bump = this.db.prepare("INSERT INTO counters (minute, feature, name, value) VALUES (?, ?, ?, ?) ON CONFLICT (minute, feature, name) DO UPDATE SET value = value + excluded.value");
  }

  /** Records and counter increments in one transaction. */
  write(records: readonly PairRecord[], counters: readonly CounterDelta[] = []): void {
    this.writeRows(records.map(pairRow), counters);
  }

  /** Rows (records in COLUMNS order) and counter increments in one transaction. */
  writeRows(rows: readonly PairRow[], counters: readonly CounterDelta[] = []): void {
    if (rows.length === 0 && counters.length === 0) return;
    this.db.exec("BEGIN");
    try {
      for (const r of rows) this.#insert.run(...r);
      for (const c of counters) this.#bump.run(...c);
      this.db.exec("COMMIT");
      if (this.#records !== null) this.#records += rows.length;
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }

  /**
   * One step of retention, at most PRUNE_BATCH rows: true while there is more to do. Records past
   * max_age go first, then, while the file is over max_size, the oldest records, only as many as
   * bring it back under the limit (90 % of it, so a busy store does not trim every minute).
   */
  pruneStep(): boolean {
    const cutoff = this.#opts.maxAgeMs > 0 ? this.#opts.now() - this.#opts.maxAgeMs : 0;
    if (cutoff > 0) {
      const aged = this.db.prepare("DELETE FROM pairs WHERE id IN (SELECT id FROM pairs WHERE ts < ? ORDER BY ts LIMIT ?)").run(cutoff, PRUNE_BATCH);
      this.db.prepare("DELETE FROM counters WHERE minute < ?").run(Math.floor(cutoff / 60_000));
      this.#deleted(aged.changes);
      if (Number(aged.changes) > 0) {
        this.#reclaim();
        return true;
      }
    }
    const max = this.#opts.maxBytes;
    if (max === 0) return false;
    this.#reclaim();
    const bytes = this.sizeBytes();
    // Once over the limit, trim to 90 % of it, so a busy store does not trim a little every minute.
    if (bytes <= (this.#trimming ? max * 0.9 : max)) {
      this.#trimming = false;
      return false;
    }
    this.#trimming = true;
    const records = this.#count();
    if (records === 0) return false;
    // Bytes per record from the file itself, then just enough of the oldest to land at 90 %.
    const excess = Math.ceil(((bytes - max * 0.9) / bytes) * records);
    const drop = Math.max(1, Math.min(PRUNE_BATCH, excess));
    this.#deleted(this.db.prepare("DELETE FROM pairs WHERE id IN (SELECT id FROM pairs ORDER BY ts LIMIT ?)").run(drop).changes);
    this.#reclaim();
    return true;
  }

  /** Every retention step now (tests, benches; the worker spreads steps over its event loop). */
  prune(): void {
    for (let i = 0; i < 100_000 && this.pruneStep(); i++);
  }

  /** Move the WAL into the database and give freed pages back to the file system. */
  #reclaim(): void {
    this.db.exec("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum;");
    this.db.exec("PRAGMA wal_checkpoint(TRUNCATE);");
  }

  /** How many records there are: counted (a scan of the table) only the first time. */
  #count(): number {
    this.#records ??= (this.db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n;
    return this.#records;
  }

  #deleted(changes: number | bigint): void {
    if (this.#records !== null) this.#records -= Number(changes);
  }

  /** Bytes on disk: the database pages plus whatever the WAL holds now. */
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

  /** Size, records, oldest and newest: index lookups, no scan (the worker reports them after every retention step). */
  stats(): StoreStats {
    const r = this.db.prepare(EDGES_SQL).get() as { oldest: number | null; newest: number | null };
    return { path: this.path, bytes: this.sizeBytes(), records: this.#count(), oldest: r.oldest, newest: r.newest };
  }

  close(): void {
    this.db.close();
  }
}
