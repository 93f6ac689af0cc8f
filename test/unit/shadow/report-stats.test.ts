// Mann-Whitney U and Hodges-Lehmann against hand-checked values, and quantiles.
import { describe, expect, it } from "vitest";
import { hodgesLehmann, mannWhitney, normalCdf, quantile, select } from "../../../src/shadow/report/stats.ts";

describe("quantile", () => {
  it("takes the nearest rank", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile(xs, 1)).toBe(100);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNull();
  });
});

describe("normalCdf", () => {
  it.each([[0, 0.5], [1.96, 0.975], [-1.96, 0.025], [3, 0.99865]])("Phi(%d) = %d", (z, p) => expect(normalCdf(z)).toBeCloseTo(p, 4));
});

describe("Mann-Whitney U", () => {
  it("matches a textbook example", () => {
    // x = 1..5 against y = 6..10: U_x = 0 (every x below every y).
    const r = mannWhitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])!;
    expect(r.u).toBe(0);
    expect(r.p).toBeLessThan(0.02);
    // Interleaved samples: no evidence of a shift.
    const s = mannWhitney([1, 3, 5, 7, 9], [2, 4, 6, 8, 10])!;
    expect(s.u).toBe(10);
    expect(s.p).toBeGreaterThan(0.5);
  });
  it("handles ties and identical samples", () => {
    const r = mannWhitney([1, 1, 1, 1], [1, 1, 1, 1])!;
    expect(r.p).toBe(1);
    const t = mannWhitney([1, 2, 2, 3], [2, 2, 3, 4])!;
    expect(t.u).toBe(4.5);
  });
  it("finds a 10 % shift in 1,000 noisy samples", () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const legacy = Array.from({ length: 1000 }, () => 100 + rand() * 40);
    const neu = Array.from({ length: 1000 }, () => 90 + rand() * 40);
    expect(mannWhitney(neu, legacy)!.p).toBeLessThan(1e-6);
    const hl = hodgesLehmann(legacy, neu)!;
    expect(hl.shift).toBeGreaterThan(-12);
    expect(hl.shift).toBeLessThan(-8);
    expect(hl.low).toBeLessThan(hl.shift);
    expect(hl.high).toBeGreaterThan(hl.shift);
    expect(hl.high).toBeLessThan(0); // the interval excludes "no change"
  });
  it("returns null without data", () => {
    expect(mannWhitney([], [1])).toBeNull();
    expect(hodgesLehmann([1], [])).toBeNull();
  });
});

describe("Hodges-Lehmann", () => {
  it("is the median pairwise difference", () => {
    expect(hodgesLehmann([1, 2, 3], [11, 12, 13])!.shift).toBe(10);
    expect(hodgesLehmann([10, 20], [10, 20])!.shift).toBe(0);
  });
  it("thins large samples deterministically", () => {
    const x = Array.from({ length: 5000 }, (_, i) => i);
    const y = x.map((v) => v + 5);
    const a = hodgesLehmann(x, y, 500)!;
    expect(a).toMatchObject({ n1: 500, n2: 500 });
    expect(a.shift).toBe(hodgesLehmann(x, y, 500)!.shift);
    expect(Math.abs(a.shift - 5)).toBeLessThan(10);
  });
});

describe("select", () => {
  it("finds every order statistic, with and without runs of equal values", () => {
    let seed = 1;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
    for (const make of [() => rnd() * 100, () => Math.round(rnd() * 5), () => 7]) {
      const values = Float64Array.from({ length: 501 }, make);
      const sorted = [...values].sort((a, b) => a - b);
      for (const k of [0, 1, 250, 499, 500]) expect(select(Float64Array.from(values), k)).toBe(sorted[k]);
      const shared = Float64Array.from(values); // successive selections on one array
      for (const k of [250, 10, 400, 0, 500]) expect(select(shared, k)).toBe(sorted[k]);
    }
  });
});
