// The guard's evaluator with an injected clock: breach -> one rollback, no flapping, the min-request
// gate, the cool-down, schedules advancing only when gates pass, manual approval.
import { describe, expect, it } from "vitest";
import { BUCKETS, bucketOf, bucketValue } from "../../src/observe/window.ts";
import { mannWhitney, mannWhitneyBinned } from "../../src/shadow/report/stats.ts";
import { breachesOf, evaluate, excessPValue, initialState, type GuardRules, type GuardState, type Schedule, type SideNumbers } from "../../src/guard/evaluate.ts";

const rules: GuardRules = { minRequests: 100, consecutive: 2, newErrorRateAbove: 0.01, errorRateOverLegacy: 0.005, p99AboveMs: 2000, p99RatioOverLegacy: 1.5, p99RatioMinDiffMs: 50, action: "rollback", cooldownMs: 300_000, shadowMismatchAbove: 0, shadowMinPairs: 50, confidence: 0.95 };
const side = (requests: number, errors: number, p99 = 50): SideNumbers => ({ requests, errors, error_rate: requests === 0 ? null : errors / requests, p99_ms: p99 });
const healthy = { legacy: side(1000, 1), neu: side(500, 0) };
const failing = { legacy: side(1000, 1), neu: side(500, 100) }; // 20 % errors

/** Runs evaluations every `step` ms from `start`, feeding back state and percent. */
function run(percent: number, ticks: { legacy: SideNumbers; neu: SideNumbers }[], opts: { schedule?: Schedule; rules?: GuardRules; state?: GuardState; start?: number; step?: number } = {}) {
  let state = opts.state ?? initialState(opts.start ?? 0);
  const actions: { at: number; kind: string; from: number; to: number; reason: string }[] = [];
  ticks.forEach((w, i) => {
    const now = (opts.start ?? 0) + i * (opts.step ?? 5000);
    const e = evaluate({ percent, ...w, rules: opts.rules ?? rules, schedule: opts.schedule ?? null, state, now });
    state = e.state;
    if (e.action) {
      actions.push({ at: now, ...e.action });
      percent = e.action.to;
    }
  });
  return { actions, state, percent };
}

describe("guard: rollback on breach", () => {
  it("rolls back once after `consecutive` breaching windows, and never again while at 0 (no flapping)", () => {
    const r = run(25, [healthy, failing, failing, failing, failing, failing, healthy, failing, failing]);
    expect(r.actions).toHaveLength(1);
    expect(r.actions[0]).toMatchObject({ at: 10_000, kind: "rollback", from: 25, to: 0 });
    expect(r.actions[0]!.reason).toBe("new error rate 20.00 % > 1.00 % and > legacy 0.10 % + 0.50 % (100/500 vs 1/1000, p < 0.0001)");
    expect(r.percent).toBe(0);
  });
  it("needs `consecutive` breaches in a row (a single bad window is not enough)", () => {
    expect(run(25, [failing, healthy, failing, healthy, failing, healthy]).actions).toEqual([]);
  });
  it("does not judge below min_requests", () => {
    const thin = { legacy: side(1000, 0), neu: side(99, 50) }; // 50 % errors, but only 99 requests
    expect(run(25, [thin, thin, thin, thin]).actions).toEqual([]);
    expect(evaluate({ percent: 25, ...thin, rules, schedule: null, state: initialState(0), now: 0 })).toMatchObject({ judged: false, breaches: [] });
  });
  it("compares with legacy: a backend-wide outage that hits legacy too is not the new backend's fault", () => {
    const both = { legacy: side(1000, 200), neu: side(500, 100) };
    expect(run(25, [both, both, both]).actions).toEqual([]);
  });
  it("breaches on p99, absolute and relative to legacy", () => {
    expect(run(50, [{ legacy: side(1000, 0, 100), neu: side(500, 0, 2500) }, { legacy: side(1000, 0, 100), neu: side(500, 0, 2500) }]).actions[0]!.reason).toMatch(/new p99 2500 ms > 2000 ms/);
    expect(run(50, [{ legacy: side(1000, 0, 100), neu: side(500, 0, 160) }, { legacy: side(1000, 0, 100), neu: side(500, 0, 160) }]).actions[0]!.reason).toMatch(/new p99 160 ms > 1\.5 x legacy p99 100 ms/);
    expect(run(50, [{ legacy: side(1000, 0, 100), neu: side(500, 0, 140) }, { legacy: side(1000, 0, 100), neu: side(500, 0, 140) }]).actions).toEqual([]);
    // Twice as slow, but by a fraction of a millisecond: jitter, not a regression.
    expect(run(50, [{ legacy: side(1000, 0, 0.3), neu: side(500, 0, 0.7) }, { legacy: side(1000, 0, 0.3), neu: side(500, 0, 0.7) }]).actions).toEqual([]);
  });
  it("breaches on the shadow mismatch rate when that rule is on, with its own pair minimum", () => {
    const withShadow = { ...rules, shadowMismatchAbove: 0.05 };
    const e = (pairs: number, mismatches: number, r = withShadow) => evaluate({ percent: 25, ...healthy, shadow: { pairs, mismatches }, rules: r, schedule: null, state: { ...initialState(0), breaches: 1 }, now: 1000 });
    expect(e(200, 20).action).toMatchObject({ kind: "rollback", reason: "shadow mismatch rate 10.00 % > 5.00 % (20/200 pairs)" });
    expect(e(200, 8).action).toBeNull();
    expect(e(40, 20).action).toBeNull(); // too few pairs
    expect(e(200, 20, rules).action).toBeNull(); // rule off
  });
  it("steps down to the previous step instead, and waits out the cool-down before the next one", () => {
    const schedule: Schedule = { steps: [1, 10, 25, 50, 100], holdMs: 60_000, approval: "auto" };
    const ticks = Array.from({ length: 70 }, () => failing); // 70 ticks x 5 s = 350 s of failure
    const r = run(50, ticks, { schedule, rules: { ...rules, action: "step_down" } });
    expect(r.actions.map((a) => [a.at, a.to])).toEqual([[5_000, 25], [305_000, 10]]); // cool-down 300 s apart
    expect(r.state.paused).toBe(true);
  });
});

describe("guard: progressive schedule", () => {
  const schedule: Schedule = { steps: [1, 10, 25, 50, 100], holdMs: 60_000, approval: "auto" };
  it("advances after each hold while the gates pass", () => {
    const r = run(1, Array.from({ length: 60 }, () => healthy), { schedule });
    expect(r.actions.map((a) => [a.at, a.kind, a.to])).toEqual([[60_000, "advance", 10], [120_000, "advance", 25], [180_000, "advance", 50], [240_000, "advance", 100]]);
    expect(r.actions[0]!.reason).toMatch(/held 60 s at 1 % with 500 new requests, error rate 0\.00 %, p99 50 ms: gates passed/);
    expect(r.percent).toBe(100);
  });
  it("waits while traffic is too thin, and holds again after a breaching window", () => {
    const thin = { legacy: side(1000, 0), neu: side(10, 0) };
    expect(run(10, Array.from({ length: 30 }, () => thin), { schedule }).actions).toEqual([]);
    // One bad window (not enough to roll back) at the moment the hold ends: no advance then.
    const ticks = [...Array.from({ length: 12 }, () => healthy), failing, healthy];
    const r = run(10, ticks, { schedule });
    expect(r.actions.map((a) => a.at)).toEqual([65_000]);
  });
  it("after a rollback the schedule is paused until resumed", () => {
    const r = run(25, [failing, failing, ...Array.from({ length: 40 }, () => healthy)], { schedule });
    expect(r.actions.map((a) => a.kind)).toEqual(["rollback"]);
    expect(r.state.paused).toBe(true);
    const resumed = run(0, Array.from({ length: 20 }, () => healthy), { schedule, state: { ...r.state, paused: false }, start: 400_000 });
    expect(resumed.actions[0]).toMatchObject({ kind: "advance", from: 0, to: 1 });
  });
  it("manual approval: waits with awaiting=true, advances on the next evaluation after approval", () => {
    const manual = { ...schedule, approval: "manual" as const };
    const r = run(10, Array.from({ length: 20 }, () => healthy), { schedule: manual });
    expect(r.actions).toEqual([]);
    expect(r.state.awaiting).toBe(true);
    const approved = run(10, [healthy], { schedule: manual, state: { ...r.state, approved: true }, start: 100_000 });
    expect(approved.actions).toEqual([expect.objectContaining({ kind: "advance", from: 10, to: 25 })]);
    expect(approved.state).toMatchObject({ awaiting: false, approved: false });
  });
});

describe("guard: the error-rate rule against legacy is a significance test", () => {
  it("excessPValue: 0.5 for equal rates and no margin, ~0 for a clear excess, 1 when the margin is not even reached", () => {
    expect(excessPValue(50, 1000, 50, 1000, 0)).toBeCloseTo(0.5, 6);
    expect(excessPValue(100, 500, 10, 1000, 0.005)).toBeLessThan(1e-6);
    expect(excessPValue(0, 500, 0, 1000, 0.005)).toBe(1); // no variance, no excess
    expect(excessPValue(500, 500, 0, 1000, 0.005)).toBe(0); // no variance, total excess
    // Larger samples make the same excess more significant.
    expect(excessPValue(60, 1000, 50, 1000, 0)).toBeGreaterThan(excessPValue(600, 10_000, 500, 10_000, 0));
  });

  it("does not roll back on noise: both backends failing a random 5 % (the window that once did: 96/488 against 17.78 %)", () => {
    const noisy = { legacy: side(2000, 356), neu: side(488, 96) };
    expect(breachesOf(noisy.legacy, noisy.neu, rules)).toEqual([]);
    expect(run(25, [noisy, noisy, noisy]).actions).toEqual([]);
    // With the test off (confidence: 0), the thresholds alone roll it back, as before.
    expect(run(25, [noisy, noisy], { rules: { ...rules, confidence: 0 } }).actions).toHaveLength(1);
  });

  it("over 2,000 simulated windows where both fail a random 5 %, at most 5 % of windows breach; a real 10 % against 5 % is caught in most", () => {
    let seed = 42; // mulberry32: a seeded generator, the same windows every run
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const failures = (n: number, rate: number) => Array.from({ length: n }).reduce<number>((k) => k + (random() < rate ? 1 : 0), 0);
    let falseBreaches = 0;
    let thresholdsOnly = 0;
    let caught = 0;
    for (let i = 0; i < 2000; i++) {
      const [l, n] = [side(2000, failures(2000, 0.05)), side(500, failures(500, 0.05))];
      if (breachesOf(l, n, rules).length > 0) falseBreaches++;
      if (breachesOf(l, n, { ...rules, confidence: 0 }).length > 0) thresholdsOnly++;
      if (breachesOf(side(2000, failures(2000, 0.05)), side(500, failures(500, 0.1)), rules).length > 0) caught++;
    }
    expect(falseBreaches / 2000).toBeLessThanOrEqual(0.05);
    expect(thresholdsOnly).toBeGreaterThan(falseBreaches * 5); // what the thresholds alone did
    expect(caught / 2000).toBeGreaterThan(0.85); // 500 new requests: a 5-point excess is found ~9 times in 10
    console.log(`[guard] both at 5 %: ${falseBreaches}/2000 windows breach (thresholds alone: ${thresholdsOnly}); new at 10 % vs 5 %: ${caught}/2000 caught`);
  });

  it("without legacy traffic in the window (everyone on new), the thresholds decide alone", () => {
    expect(breachesOf(side(0, 0), side(500, 30), rules)).toEqual(["new error rate 6.00 % > 1.00 % and > legacy 0.00 % + 0.50 % (30/500)"]);
  });
});

describe("guard: the p99 rule against legacy needs new's latencies shifted as a whole", () => {
  const hist = (values: number[]) => {
    const h = new Uint32Array(BUCKETS);
    for (const v of values) h[bucketOf(v)]!++;
    return h;
  };
  const sideOf = (values: number[], p99: number): SideNumbers => ({ requests: values.length, errors: 0, error_rate: 0, p99_ms: p99, hist: hist(values) });

  it("mannWhitneyBinned gives mannWhitney's answer on the samples the buckets hold", () => {
    let seed = 7;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    for (let k = 0; k < 20; k++) {
      const x = Array.from({ length: 50 + k * 7 }, () => bucketOf(1 + random() * 100));
      const y = Array.from({ length: 40 + k * 5 }, () => bucketOf(1 + random() * (100 + k * 5)));
      const binned = mannWhitneyBinned(hist(x.map(bucketValue)), hist(y.map(bucketValue)))!;
      const exact = mannWhitney(x, y)!;
      expect(binned.u).toBeCloseTo(exact.u, 6);
      expect(binned.p).toBeCloseTo(exact.p, 6);
    }
  });

  it("a few slow requests that push new's p99 up are no breach; a real shift is, with its p-value", () => {
    const base = Array.from({ length: 1000 }, (_, i) => 20 + (i % 40));
    const legacy = sideOf(base, 59);
    const blip = sideOf([...base.slice(0, 985), ...Array(15).fill(400)], 400); // p99 400 ms from 1.5 % of requests
    expect(breachesOf(legacy, blip, rules)).toEqual([]);
    expect(breachesOf(legacy, blip, { ...rules, confidence: 0 })).toEqual(["new p99 400 ms > 1.5 x legacy p99 59 ms"]); // thresholds alone
    const slower = sideOf(base.map((v) => v * 3), 177);
    expect(breachesOf(legacy, slower, rules)).toEqual(["new p99 177 ms > 1.5 x legacy p99 59 ms (Mann-Whitney: new slower, p < 0.0001)"]);
  });
});
