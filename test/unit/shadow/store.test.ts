// The comparison store on a real file: batched writes, counters, retention by age and by size.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ShadowStore, type PairRecord } from "../../../src/shadow/store.ts";

const record = (ts: number, i = 0): PairRecord => ({
  ts, req_id: `r${i}`, feature: "f", route: "/f", method: "GET", path: "/f", primary_backend: "legacy", legacy_status: 200, new_status: 200,
  legacy_ms: 1, new_ms: 1, legacy_bytes: 10, new_bytes: 10, verdict: "match", diffs: "[]", replay_diffs: null, presets: "[]", body_compared: 1, error: null,
});

describe("ShadowStore", () => {
  it("buffers, then writes in one flush; counts per minute", () => {
    let now = 1_800_000_000_000;
    const s = new ShadowStore(join(mkdtempSync(join(tmpdir(), "sy-store-")), "s.db"), { maxBytes: 1e9, maxAgeMs: 3_600_000, flushIntervalMs: 60_000, now: () => now });
    for (let i = 0; i < 100; i++) s.add(record(now, i));
    s.count("f", "mirrored", 100);
    s.count("f", "skipped_cap", 3);
    expect((s.db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n).toBe(0);
    s.flush();
    expect((s.db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n).toBe(100);
    s.count("f", "mirrored", 5);
    s.flush();
    expect(s.db.prepare("SELECT name, value FROM counters ORDER BY name").all()).toEqual([{ name: "mirrored", value: 105 }, { name: "skipped_cap", value: 3 }].map((r) => ({ ...r })));
    now += 1;
    s.close();
  });

  it("bounds the buffer and counts what it drops", () => {
    const s = new ShadowStore(join(mkdtempSync(join(tmpdir(), "sy-store-")), "s.db"), { maxBytes: 1e9, maxAgeMs: 3_600_000, flushIntervalMs: 60_000, maxPending: 10 });
    for (let i = 0; i < 15; i++) s.add(record(Date.now(), i));
    expect(s.losses.overflow).toBe(5);
    s.close();
  });

  it("deletes records past max_age, and the oldest while over max_size", () => {
    let now = 1_800_000_000_000;
    const s = new ShadowStore(join(mkdtempSync(join(tmpdir(), "sy-store-")), "s.db"), { maxBytes: 1e9, maxAgeMs: 60_000, flushIntervalMs: 60_000, now: () => now });
    for (let i = 0; i < 50; i++) s.add(record(now - 120_000, i)); // two minutes old
    for (let i = 0; i < 50; i++) s.add(record(now, 100 + i));
    s.flush();
    s.prune();
    expect((s.db.prepare("SELECT count(*) AS n FROM pairs").get() as { n: number }).n).toBe(50);
    s.close();

    const big = new ShadowStore(join(mkdtempSync(join(tmpdir(), "sy-store-")), "s.db"), { maxBytes: 256 * 1024, maxAgeMs: 3_600_000, flushIntervalMs: 60_000, now: () => now });
    const fat = (i: number) => ({ ...record(now + i, i), diffs: JSON.stringify([{ path: "$.x", kind: "value", legacy: "y".repeat(1000), new: "z".repeat(1000) }]) });
    for (let i = 0; i < 1000; i++) big.add(fat(i)); // ~2 MB of records
    big.flush(); // writes, then prunes (the first flush always checks)
    expect(big.sizeBytes()).toBeLessThanOrEqual(256 * 1024);
    const left = big.db.prepare("SELECT min(ts) AS oldest, count(*) AS n FROM pairs").get() as { oldest: number; n: number };
    expect(left.n).toBeGreaterThan(0);
    expect(left.n).toBeLessThan(1000);
    expect(left.oldest).toBe(now + 1000 - left.n); // the oldest went first: what is left is the newest
    big.close();
  });
});
