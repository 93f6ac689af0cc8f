// Sliding-window stats and the hot-path metrics record, with an injected clock.
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/observe/metrics.ts";
import { BUCKETS, bucketOf, bucketValue, WindowStats } from "../../src/observe/window.ts";

describe("log buckets", () => {
  it("place every value within 3.5 % of its bucket's representative", () => {
    for (let ms = 0.02; ms < 100_000; ms *= 1.013) {
      const v = bucketValue(bucketOf(ms));
      expect(Math.abs(v - ms) / ms).toBeLessThan(0.035);
    }
  });
  it("clamp the extremes", () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(-5)).toBe(0);
    expect(bucketOf(Number.NaN)).toBe(0);
    expect(bucketOf(1e9)).toBe(BUCKETS - 1);
  });
});

describe("WindowStats", () => {
  const T0 = 1_800_000_000_000; // a fixed epoch ms, aligned to the hour

  it("computes rate, error rate and quantiles over the window", () => {
    const w = new WindowStats();
    // 1,000 requests over 50 s: latencies 1..1000 ms, every 10th an error.
    for (let i = 1; i <= 1000; i++) w.record(i, i % 10 === 0, T0 + i * 50);
    const s = w.summary("1m", T0 + 50_000);
    expect(s.requests).toBe(1000);
    expect(s.errors).toBe(100);
    expect(s.error_rate).toBeCloseTo(0.1, 10);
    expect(s.rate).toBeCloseTo(1000 / 50, 0); // over the 50 s seen so far, not the whole minute
    expect(Math.abs(s.p50_ms! - 500) / 500).toBeLessThan(0.04);
    expect(Math.abs(s.p95_ms! - 950) / 950).toBeLessThan(0.04);
    expect(Math.abs(s.p99_ms! - 990) / 990).toBeLessThan(0.04);
  });

  it("forgets what slid out of the window, keeps it in the longer ones", () => {
    const w = new WindowStats();
    for (let i = 0; i < 100; i++) w.record(500, true, T0 + i); // a bad burst at T0
    for (let i = 0; i < 100; i++) w.record(5, false, T0 + 120_000 + i); // two minutes later, healthy
    const now = T0 + 121_000;
    expect(w.summary("1m", now)).toMatchObject({ requests: 100, errors: 0, error_rate: 0 });
    expect(w.summary("1m", now).p99_ms).toBeLessThan(6);
    expect(w.summary("5m", now)).toMatchObject({ requests: 200, errors: 100, error_rate: 0.5 });
    expect(w.summary("5m", now).p99_ms).toBeGreaterThan(480);
    expect(w.summary("1h", now)).toMatchObject({ requests: 200, errors: 100 });
    const later = T0 + 120_000 + 3_700_000; // over an hour after the last request: everything gone
    expect(w.summary("1h", later)).toMatchObject({ requests: 0, errors: 0, error_rate: null, p99_ms: null });
    expect(w.summary("5m", later).requests).toBe(0);
  });

  it("reuses ring slots across laps without leaking old counts", () => {
    const w = new WindowStats();
    w.record(1, false, T0);
    w.record(1, false, T0 + 310_000); // same fine-ring slot index one lap later
    expect(w.summary("5m", T0 + 310_000).requests).toBe(1);
  });
});

describe("Metrics.record", () => {
  it("buckets status classes, methods and error kinds", async () => {
    let now = 1_800_000_000_000;
    const m = new Metrics({ processMetrics: false, now: () => now });
    const base = { feature: "f", backend: "new", method: "GET", status: 200, upstreamSeconds: 0.002, totalSeconds: 0.003, error: undefined };
    m.record(base);
    m.record({ ...base, method: "PROPFIND" });
    m.record({ ...base, status: 499, upstreamSeconds: null, error: "SY_CLIENT_CLOSED" });
    m.record({ ...base, status: 504, error: "SY_UPSTREAM_HEADERS_TIMEOUT" });
    m.record({ ...base, status: 502, upstreamSeconds: 0.001, error: "SY_UPSTREAM_RESET" });
    m.record({ ...base, status: 503 });
    m.record({ ...base, backend: null, feature: null, status: 400, upstreamSeconds: null, error: "SY_BAD_REQUEST" });
    now += 1000;
    const text = await m.registry.metrics();
    const has = (line: string) => expect(text.split("\n")).toContain(line);
    has('switchyard_requests_total{backend="new",feature="f",method="GET",status_class="2xx"} 1');
    has('switchyard_requests_total{backend="new",feature="f",method="other",status_class="2xx"} 1');
    has('switchyard_requests_total{backend="new",feature="f",method="GET",status_class="4xx"} 1');
    has('switchyard_requests_total{backend="new",feature="f",method="GET",status_class="5xx"} 3');
    has('switchyard_requests_total{backend="none",feature="none",method="GET",status_class="4xx"} 1');
    has('switchyard_upstream_errors_total{backend="new",kind="timeout"} 1');
    has('switchyard_upstream_errors_total{backend="new",kind="reset"} 1');
    has('switchyard_upstream_errors_total{backend="new",kind="5xx"} 1');
    has('switchyard_upstream_errors_total{backend="new",kind="connect"} 0');
    has('switchyard_upstream_duration_seconds_count{backend="new",feature="f"} 5');
    has('switchyard_request_duration_seconds_count{backend="new",feature="f"} 6');
    const stats = m.stats();
    expect(Object.keys(stats)).toEqual(["f"]); // refusals without a backend are not a backend's numbers
    expect(stats.f!.new!["1m"]).toMatchObject({ requests: 6, errors: 3, error_rate: 0.5 });
  });
});

describe("WindowStats deltas (workers report to their primary)", () => {
  const T0 = 1_800_000_000_000;

  it("two workers' deltas merged give the windows of all their records in one process", () => {
    const a = new WindowStats().trackDeltas();
    const b = new WindowStats().trackDeltas();
    const merged = new WindowStats();
    const alone = new WindowStats();
    // 20 minutes of traffic, handed over every second: the 1 m, 5 m and 1 h windows all see it.
    for (let t = 0; t < 1_200_000; t += 1000) {
      for (let i = 0; i < 7; i++) {
        const ms = 1 + ((t / 1000 + i * 13) % 400);
        const err = (t / 1000 + i) % 17 === 0;
        (i % 2 === 0 ? a : b).record(ms, err, T0 + t + i);
        alone.record(ms, err, T0 + t + i);
      }
      for (const d of [...a.drainDeltas(), ...b.drainDeltas()]) merged.merge(d);
    }
    const now = T0 + 1_200_000;
    for (const w of ["1m", "5m", "1h"] as const) {
      const m = merged.summary(w, now);
      const x = alone.summary(w, now);
      expect([m.requests, m.errors, m.p50_ms, m.p95_ms, m.p99_ms]).toEqual([x.requests, x.errors, x.p50_ms, x.p95_ms, x.p99_ms]);
      expect(m.requests).toBeGreaterThan(0);
    }
  });

  it("drains each record once, and nothing when deltas are not tracked", () => {
    const w = new WindowStats().trackDeltas();
    w.record(5, false, T0);
    w.record(5, true, T0 + 15_000); // next 10 s slot
    const d = w.drainDeltas();
    expect(d.map((x) => [x.at, x.count, x.errors])).toEqual([
      [T0, 1, 0],
      [T0 + 10_000, 1, 1],
    ]);
    expect(d[0]!.hist).toEqual([bucketOf(5), 1]);
    expect(w.drainDeltas()).toEqual([]);
    const plain = new WindowStats();
    plain.record(5, false, T0);
    expect(plain.drainDeltas()).toEqual([]);
  });

  it("ignores a delta older than what the windows keep, without disturbing newer slots", () => {
    const w = new WindowStats();
    w.record(5, false, T0 + 400_000);
    w.merge({ at: T0 + 400_000 - 310_000 * 12, count: 9, errors: 9, hist: [bucketOf(900), 9] }); // same fine slot index, long gone
    const s = w.summary("1m", T0 + 400_000);
    expect([s.requests, s.errors]).toEqual([1, 0]);
  });

  it("Metrics: a worker's series deltas merged into the primary's give the same /stats", () => {
    let now = T0;
    const worker = new Metrics({ processMetrics: false, trackDeltas: true, now: () => now });
    const primary = new Metrics({ processMetrics: false, now: () => now });
    for (let i = 0; i < 50; i++) worker.record({ feature: "f", backend: "new", method: "GET", status: i < 5 ? 502 : 200, upstreamSeconds: 0.002, totalSeconds: 0.003, error: undefined });
    primary.mergeWindowDeltas(worker.drainWindowDeltas());
    now += 1000;
    expect(primary.stats().f!.new!["1m"]).toEqual(worker.stats().f!.new!["1m"]);
    expect(primary.stats().f!.new!["1m"].errors).toBe(5);
  });
});
