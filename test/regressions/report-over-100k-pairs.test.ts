// Guards: a report over more than ~63k pairs crashed (`Math.min(...all)` over every latency:
// "Maximum call stack size exceeded"), and GET /shadow answered 500. 120k pairs now give a report,
// built in one pass with bounded state.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { buildReport } from "../../src/shadow/report/build.ts";
import { renderHtml } from "../../src/shadow/report/render.ts";
import { StoreWriter, type PairRecord } from "../../src/shadow/store/writer.ts";

it("builds a report over 120,000 pairs", () => {
  const w = new StoreWriter(join(mkdtempSync(join(tmpdir(), "sy-120k-")), "s.db"), { maxBytes: 0, maxAgeMs: 0 });
  const t0 = 1_800_000_000_000;
  let batch: PairRecord[] = [];
  for (let i = 0; i < 120_000; i++) {
    const differs = i % 10 === 0;
    batch.push({
      ts: t0 + i * 100, req_id: `r${i}`, feature: `f${i % 3}`, route: "/x/**", method: "GET", path: "/x", primary_backend: "legacy",
      legacy_status: 200, new_status: 200, legacy_ms: 20 + (i % 97), new_ms: 12 + (i % 89), legacy_bytes: 10, new_bytes: 10,
      verdict: differs ? "mismatch" : "match", diffs: differs ? JSON.stringify([{ path: "$.price", kind: "type", legacy: "1.5", new: 1.5 }]) : "[]",
      replay_diffs: null, presets: "[]", body_compared: 1, error: null,
    });
    if (batch.length === 10_000) {
      w.write(batch);
      batch = [];
    }
  }
  const r = buildReport(w.db, { since: t0, until: t0 + 120_000 * 100, thresholds: { min_pairs: 100, max_error_rate: 1, min_p99_improvement: 20, min_match_rate: 99 }, noise: { relative: 0.2, absolute: 0.0003 } });
  w.close();
  expect(r.overall).toMatchObject({ pairs: 120_000, compared: 120_000, matched: 108_000 });
  expect(r.overall.differences.map((d) => [d.path, d.count])).toEqual([["$.price", 12_000]]);
  expect(r.overall.latency.method).toEqual({ quantiles: "histogram", pairs: 120_000, sampled: 10_000 });
  expect(r.overall.latency.legacy.p50).toBeGreaterThan(r.overall.latency.new.p50!);
  expect(r.features.map((f) => f.pairs)).toEqual([40_000, 40_000, 40_000]);
  expect(renderHtml(r)).toContain("<svg");
});
