// The comparison store on a real file: the proxy-side buffer and its worker thread, and the writer's
// retention (age, size, WAL and freed pages accounted for, never below the limit, oldest first).
import { mkdtempSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ShadowStore } from "../../../src/shadow/store/store.ts";
import { COLUMNS, EDGES_SQL, pairRow, PRUNE_BATCH, StoreWriter, type PairRecord } from "../../../src/shadow/store/writer.ts";

const record = (ts: number, i = 0): PairRecord => ({
  ts, req_id: `r${i}`, feature: "f", route: "/f", method: "GET", path: "/f", primary_backend: "legacy", legacy_status: 200, new_status: 200,
  legacy_ms: 1, new_ms: 1, legacy_bytes: 10, new_bytes: 10, verdict: "match", diffs: "[]", replay_diffs: null, presets: "[]", body_compared: 1, error: null,
});
const fat = (ts: number, i: number) => ({ ...record(ts, i), diffs: JSON.stringify([{ path: "$.x", kind: "value", legacy: "y".repeat(1000), new: "z".repeat(1000) }]) });
const file = () => join(mkdtempSync(join(tmpdir(), "sy-store-")), "s.db");
const count = (db: DatabaseSync) => (db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n;

describe("ShadowStore (the proxy's side)", () => {
  it("buffers, then hands everything to its worker on flush; counts per minute", async () => {
    const now = 1_800_000_000_000;
    const path = file();
    const s = new ShadowStore(path, { maxBytes: 1e9, maxAgeMs: 0, flushIntervalMs: 60_000, now: () => now });
    for (let i = 0; i < 100; i++) s.add(pairRow(record(now, i)));
    s.count("f", "mirrored", 100);
    s.count("f", "skipped_cap", 3);
    const stats = await s.flush();
    expect(stats).toMatchObject({ path, records: 100, oldest: now, newest: now });
    expect(stats.bytes).toBeGreaterThan(0);
    expect(s.stats).toEqual(stats);
    s.count("f", "mirrored", 5);
    await s.close();
    const db = new DatabaseSync(path, { readOnly: true });
    expect(db.prepare("SELECT name, value FROM counters ORDER BY name").all().map((r) => ({ ...r }))).toEqual([{ name: "mirrored", value: 105 }, { name: "skipped_cap", value: 3 }]);
    db.close();
  });

  it("keeps each minute's counters apart when counts straddle a minute", async () => {
    let now = 1_800_000_059_000; // one second before a minute ends
    const path = file();
    const s = new ShadowStore(path, { maxBytes: 1e9, maxAgeMs: 0, flushIntervalMs: 60_000, now: () => now });
    s.count("f", "mirrored", 2);
    s.count("g", "mirrored");
    now += 2000;
    s.count("f", "mirrored", 7);
    await s.flush();
    s.count("f", "mirrored"); // the same minute again, after a send
    await s.close();
    const db = new DatabaseSync(path, { readOnly: true });
    const minute = Math.floor(1_800_000_059_000 / 60_000);
    expect(db.prepare("SELECT minute, feature, name, value FROM counters ORDER BY minute, feature").all().map((r) => ({ ...r }))).toEqual([
      { minute, feature: "f", name: "mirrored", value: 2 },
      { minute, feature: "g", name: "mirrored", value: 1 },
      { minute: minute + 1, feature: "f", name: "mirrored", value: 8 },
    ]);
    db.close();
  });

  it("bounds the buffer and counts what it drops", async () => {
    const s = new ShadowStore(file(), { maxBytes: 1e9, maxAgeMs: 0, flushIntervalMs: 60_000, maxPending: 10 });
    for (let i = 0; i < 15; i++) s.add(pairRow(record(Date.now(), i)));
    expect(s.losses.overflow).toBe(5);
    expect((await s.flush()).records).toBe(10);
    await s.close();
  });

  it("runs retention in its worker: records past max_age go without a call from the proxy", async () => {
    const path = file();
    const seed = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 0 });
    seed.write(Array.from({ length: 3000 }, (_, i) => record(Date.now() - 3_600_000, i)));
    seed.close();
    const s = new ShadowStore(path, { maxBytes: 0, maxAgeMs: 60_000, flushIntervalMs: 60_000, pruneIntervalMs: 50 });
    s.add(pairRow(record(Date.now(), 9)));
    for (let i = 0; i < 100 && (await s.flush()).records !== 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.stats?.records).toBe(1);
    await s.close();
  });
});

describe("pairRow", () => {
  it("lists a record's values in COLUMNS order, each field once", () => {
    const r = record(5, 7);
    // Every field a distinct value, so a swapped pair of columns shows.
    const distinct = Object.fromEntries(COLUMNS.map((c, i) => [c, `${c}-${i}`])) as unknown as PairRecord;
    expect(pairRow(distinct)).toEqual(COLUMNS.map((c, i) => `${c}-${i}`));
    expect(pairRow(r)).toEqual(COLUMNS.map((c) => r[c]));
    expect(Object.keys(r).sort()).toEqual([...COLUMNS].sort());
  });
});

describe("StoreWriter stats", () => {
  it("keeps the record count through writes, age and size pruning, and a reopened file, reading the index only", () => {
    const path = file();
    let now = 1_800_000_000_000;
    const w = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 60_000, now: () => now });
    const agree = (writer: StoreWriter) => expect(writer.stats().records).toBe(count(writer.db));
    w.write(Array.from({ length: 2500 }, (_, i) => record(now - 120_000, i)));
    agree(w);
    w.write(Array.from({ length: 300 }, (_, i) => record(now, i)));
    expect(w.stats()).toMatchObject({ records: 2800, oldest: now - 120_000, newest: now });
    w.prune(); // the 2,500 past max_age go, in batches
    expect(w.stats()).toMatchObject({ records: 300, oldest: now, newest: now });
    agree(w);
    w.close();
    // Reopened with a size limit it is over: counted from the file, then kept through the trim.
    now += 1000;
    const big = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 0, now: () => now });
    big.write(Array.from({ length: 3000 }, (_, i) => fat(now, i)));
    big.close();
    const trim = new StoreWriter(path, { maxBytes: 1_000_000, maxAgeMs: 0, now: () => now });
    agree(trim);
    trim.prune();
    expect(trim.stats().records).toBeLessThan(3300);
    agree(trim);
    const plan = trim.db.prepare(`EXPLAIN QUERY PLAN ${EDGES_SQL}`).all().map((r) => String(r.detail));
    expect(plan.filter((d) => d.startsWith("SCAN pairs"))).toEqual([]);
    trim.close();
  });
});

describe("StoreWriter retention", () => {
  it("deletes records past max_age (in batches) and gives the pages back", () => {
    const now = 1_800_000_000_000;
    const w = new StoreWriter(file(), { maxBytes: 0, maxAgeMs: 60_000, now: () => now });
    w.write(Array.from({ length: PRUNE_BATCH * 2 + 10 }, (_, i) => fat(now - 120_000, i))); // two minutes old
    w.write(Array.from({ length: 50 }, (_, i) => record(now, 100_000 + i)));
    const before = w.sizeBytes();
    let steps = 0;
    while (w.pruneStep()) steps++;
    expect(steps).toBe(3); // three batches of old records, then nothing to do
    expect(count(w.db)).toBe(50);
    expect(w.sizeBytes()).toBeLessThan(before / 5);
    w.close();
  });

  it("never prunes a store under its size limit, however big the WAL an age delete leaves", () => {
    const now = 1_800_000_000_000;
    const path = file();
    const w = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 0, now: () => now });
    w.write(Array.from({ length: 2000 }, (_, i) => fat(now - 120_000, i))); // old: deleted by age
    w.write(Array.from({ length: 2000 }, (_, i) => fat(now, 10_000 + i))); // young: all must stay
    w.close();
    const young = 2000;
    const sized = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 0 });
    sized.db.exec("DELETE FROM pairs WHERE ts < 1800000000000 - 60000; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);");
    const youngBytes = sized.sizeBytes();
    sized.close();
    // A limit 20 % above what the young records take: before, the WAL of the age delete counted.
    const r = new StoreWriter(path, { maxBytes: Math.ceil(youngBytes * 1.2), maxAgeMs: 60_000, now: () => now });
    r.write(Array.from({ length: 2000 }, (_, i) => fat(now - 120_000, 20_000 + i)));
    r.prune();
    expect(count(r.db)).toBe(young);
    expect(r.sizeBytes()).toBeLessThanOrEqual(Math.ceil(youngBytes * 1.2));
    r.close();
  });

  it("over max_size, drops only the oldest records that bring the file under it", () => {
    const now = 1_800_000_000_000;
    const w = new StoreWriter(file(), { maxBytes: 512 * 1024, maxAgeMs: 0, now: () => now });
    w.write(Array.from({ length: 1000 }, (_, i) => fat(now + i, i))); // ~2 MB
    w.prune();
    expect(w.sizeBytes()).toBeLessThanOrEqual(512 * 1024);
    expect(w.sizeBytes()).toBeGreaterThan(0.8 * 512 * 1024); // trimmed to about 90 % of the limit, not far below
    const left = w.db.prepare("SELECT min(ts) AS oldest, count(*) AS n FROM pairs").get() as { oldest: number; n: number };
    expect(left.oldest).toBe(now + 1000 - left.n); // the oldest went first: what is left is the newest
    expect(w.stats()).toMatchObject({ records: left.n, oldest: left.oldest, newest: now + 999 });
    w.close();
  });
});
