// The streaming report builder against a brute-force reference (every row in memory, exact sorts) on
// small random stores: the numbers must be identical. Beyond the sample size, quantiles come from the
// 7 %-wide histograms (within 3.5 % of the exact ones) and the significance tests from the sample.
import fc from "fast-check";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildReport, type FeatureReport, type Report, type ReportOptions } from "../../../src/shadow/report/build.ts";
import { StoreWriter, type CounterDelta, type PairRecord } from "../../../src/shadow/store/writer.ts";
import { referenceReport } from "./reference-report.ts";

const T0 = 1_800_000_000_000;
const opts: ReportOptions = {
  since: T0 - 1,
  until: T0 + 10_000_000,
  thresholds: { min_pairs: 20, max_error_rate: 1, min_p99_improvement: 20, min_match_rate: 99 },
  noise: { relative: 0.2, absolute: 0.0003 },
  configuredPercent: { f1: 10, f2: 50 },
};

const PATHS = ["$.a", "$.b[0]", "$.b[1]", "$.c.d", "$.ts", "$.id", "status", "body"];
const pairRecord = fc
  .record({
    gap: fc.integer({ min: 0, max: 5000 }),
    feature: fc.constantFrom("f1", "f2", "f3"),
    route: fc.constantFrom("/x", "/y", null),
    verdict: fc.constantFrom("match", "match", "mismatch", "mismatch", "noise_only", "shadow_error", "primary_error"),
    legacy_status: fc.constantFrom(200, 200, 200, 404, 500, 504, null),
    new_status: fc.constantFrom(200, 200, 200, 404, 410, 502, null),
    legacy_ms: fc.option(fc.double({ min: 0.05, max: 3000, noNaN: true }), { nil: null }),
    new_ms: fc.option(fc.double({ min: 0.05, max: 3000, noNaN: true }), { nil: null }),
    diffs: fc.array(fc.record({ path: fc.constantFrom(...PATHS), kind: fc.constantFrom("value", "type", "missing") }), { maxLength: 3 }),
    replay: fc.option(fc.subarray(["$.ts", "$.id", "$.a"]), { nil: null }),
    presets: fc.subarray(["float_format", "date_format"]),
    error: fc.constantFrom(null, null, "timeout after 2000 ms", "SY_UPSTREAM_RESET: reset"),
    primary: fc.constantFrom("legacy", "new"),
  });
type RawPair = typeof pairRecord extends fc.Arbitrary<infer X> ? X : never;

function records(raw: RawPair[]): PairRecord[] {
  let ts = T0;
  return raw.map((r, i) => {
    ts += r.gap;
    return {
      ts, req_id: `r${i}`, feature: r.feature, route: r.route, method: "GET", path: r.route ?? "/", primary_backend: r.primary,
      legacy_status: r.legacy_status, new_status: r.new_status, legacy_ms: r.legacy_ms, new_ms: r.new_ms, legacy_bytes: 10, new_bytes: 10,
      verdict: r.verdict, diffs: JSON.stringify(r.verdict === "mismatch" || r.verdict === "noise_only" ? r.diffs.map((d, k) => ({ ...d, legacy: `l${k}`, new: `n${i}` })) : []),
      replay_diffs: r.replay === null ? null : JSON.stringify(r.replay), presets: JSON.stringify(r.presets), body_compared: 1, error: r.error,
    };
  });
}

function store(rs: PairRecord[], counters: CounterDelta[] = []): StoreWriter {
  const w = new StoreWriter(join(mkdtempSync(join(tmpdir(), "sy-agg-")), "s.db"), { maxBytes: 0, maxAgeMs: 0 });
  w.write(rs, counters);
  return w;
}

/** What both builders must agree on: everything but the chart, the method note and the clock. */
function comparable(r: Report): unknown {
  const f = ({ latency, untracked_paths: _u, ...rest }: FeatureReport) => {
    const { histogram: _h, method: _m, ...lat } = latency as FeatureReport["latency"];
    return { ...rest, latency: lat };
  };
  return { ...r, generated_at: null, overall: f(r.overall), features: r.features.map(f) };
}

const COUNTERS: CounterDelta[] = [
  [Math.floor(T0 / 60_000), "f1", "mirrored", 40],
  [Math.floor(T0 / 60_000), "f1", "skipped_cap", 7],
  [Math.floor(T0 / 60_000) + 1, "f2", "mirrored", 12],
  [Math.floor(T0 / 60_000) + 1, "f2", "skipped_method", 3],
];

describe("report aggregation against the brute-force reference", () => {
  it("is identical on 40 random stores of up to 400 pairs", () => {
    const sizes = fc.sample(fc.integer({ min: 0, max: 400 }), { numRuns: 40, seed: 7 });
    sizes.forEach((n, k) => {
      const rs = records(fc.sample(pairRecord, { numRuns: n, seed: 1000 + k }));
      const w = store(rs, COUNTERS);
      expect(comparable(buildReport(w.db, opts)), `store ${k} (${n} pairs)`).toEqual(comparable(referenceReport(w.db, opts)));
      const one = { ...opts, feature: "f2" };
      expect(comparable(buildReport(w.db, one)), `store ${k}, feature f2`).toEqual(comparable(referenceReport(w.db, one)));
      w.close();
    });
  });

  it("is identical when the signatures overflow and matches take a second pass", () => {
    const rs = records(fc.sample(pairRecord, { numRuns: 300, seed: 77 }));
    const w = store(rs, COUNTERS);
    expect(comparable(buildReport(w.db, { ...opts, maxSignatures: 5 }))).toEqual(comparable(referenceReport(w.db, opts)));
    w.close();
  });

  it("reads several stores (replicas) as one", () => {
    const rs = records(fc.sample(pairRecord, { numRuns: 300, seed: 99 }));
    const whole = store(rs, COUNTERS);
    const first = store(rs.slice(0, 150), COUNTERS.slice(0, 2));
    const second = store(rs.slice(150), COUNTERS.slice(2));
    expect(comparable(buildReport([first.db, second.db], opts))).toEqual(comparable(buildReport(whole.db, opts)));
    for (const w of [whole, first, second]) w.close();
  });

  it("beyond the sample: quantiles within 3.5 % of the exact ones, tests on the seeded sample, the same every time", () => {
    const rs = records(fc.sample(pairRecord, { numRuns: 3000, seed: 5 }));
    const w = store(rs);
    const small = { ...opts, sampleSize: 200 };
    const approx = buildReport(w.db, small);
    const exact = referenceReport(w.db, opts);
    for (const [a, e] of [[approx.overall, exact.overall], ...approx.features.map((f, i) => [f, exact.features[i]!] as const)] as [FeatureReport, FeatureReport][]) {
      expect(a.latency.method).toMatchObject({ quantiles: "histogram", sampled: 200 });
      expect(a.latency.method.pairs).toBe(e.latency.legacy.n);
      for (const side of ["legacy", "new"] as const) {
        for (const q of ["p50", "p95", "p99"] as const) expect(Math.abs(a.latency[side][q]! / e.latency[side][q]! - 1)).toBeLessThan(0.035);
      }
      expect(a.latency.hodges_lehmann_ms!.n1).toBeLessThanOrEqual(200);
      // Everything that is a count stays exact.
      expect([a.pairs, a.compared, a.matched, a.status_mismatches, a.differences, a.confusion, a.errors]).toEqual([e.pairs, e.compared, e.matched, e.status_mismatches, e.differences, e.confusion, e.errors]);
    }
    expect(comparable(buildReport(w.db, small))).toEqual(comparable(approx));
    w.close();
  });

  it("states the method: exact while every pair is in the sample", () => {
    const w = store(records(fc.sample(pairRecord, { numRuns: 100, seed: 3 })));
    const r = buildReport(w.db, opts);
    expect(r.overall.latency.method).toEqual({ quantiles: "exact", pairs: r.overall.latency.legacy.n, sampled: r.overall.latency.legacy.n });
    w.close();
  });

  it("a difference real on one route and noise on another is listed with the numbers of the route where it is real", () => {
    // /x: status differs in 10 of 50 pairs, never on replay (real). /y: in 40 of 50 pairs and in every replay (noise).
    const rs: PairRecord[] = [];
    const pair = (i: number, route: string, differs: boolean, replay: string[] | null): PairRecord => ({
      ts: T0 + i, req_id: `q${i}`, feature: "f1", route, method: "GET", path: route, primary_backend: "legacy", legacy_status: 200, new_status: differs ? 404 : 200,
      legacy_ms: 1, new_ms: 1, legacy_bytes: 1, new_bytes: 1, verdict: differs ? "mismatch" : "match", diffs: JSON.stringify(differs ? [{ path: "status", kind: "value", legacy: 200, new: 404 }] : []),
      replay_diffs: replay === null ? null : JSON.stringify(replay), presets: "[]", body_compared: 1, error: null,
    });
    for (let i = 0; i < 50; i++) rs.push(pair(i, "/y", i < 40, i < 10 ? ["status"] : null));
    for (let i = 0; i < 50; i++) rs.push(pair(100 + i, "/x", i < 10, i < 10 ? [] : null));
    const w = store(rs);
    for (const report of [buildReport(w.db, opts), referenceReport(w.db, opts)]) {
      const row = report.features.find((f) => f.feature === "f1")!.differences.find((d) => d.path === "status")!;
      expect(row).toMatchObject({ count: 50, rate: 0.5, route_rate: 0.2, noise_rate: 0 });
    }
    w.close();
  });
});
