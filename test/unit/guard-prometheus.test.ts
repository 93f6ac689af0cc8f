// guard.source: prometheus, the pure part: the PromQL sent, and the evaluator's numbers from the answers.
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import { evaluate, initialState } from "../../src/guard/evaluate.ts";
import { rulesOf } from "../../src/guard/guard.ts";
import { featureNumbers, guardQueries, quantileMs, type VectorSample } from "../../src/guard/prometheus.ts";

const v = (metric: Record<string, string>, value: number): VectorSample => ({ metric, value: [1700000000, String(value)] });

describe("guardQueries", () => {
  it("sums Switchyard's own metrics by feature and backend over the rule window", () => {
    const q = guardQueries("5m", "");
    expect(q.requests).toBe("sum by (feature, backend) (increase(switchyard_requests_total{}[5m]))");
    expect(q.errors).toBe('sum by (feature, backend) (increase(switchyard_requests_total{status_class="5xx"}[5m]))');
    expect(q.buckets).toBe("sum by (feature, backend, le) (increase(switchyard_upstream_duration_seconds_bucket{}[5m]))");
    expect(q.shadow).toBe('sum by (feature, outcome) (increase(switchyard_shadow_requests_total{outcome=~"compared|mismatched"}[5m]))');
  });

  it("adds the selector to every query", () => {
    const q = guardQueries("1m", ' job="switchyard", namespace="edge" ');
    expect(q.requests).toContain('{job="switchyard", namespace="edge"}[1m]');
    expect(q.errors).toContain('{job="switchyard", namespace="edge", status_class="5xx"}[1m]');
    expect(q.shadow).toContain('{job="switchyard", namespace="edge", outcome=~"compared|mismatched"}[1m]');
  });
});

describe("quantileMs (histogram_quantile's interpolation)", () => {
  it("interpolates inside the bucket holding the rank", () => {
    // 100 observations: 50 under 10 ms, 40 in (10, 50], 10 in (50, 100]
    const c: [number, number][] = [[0.01, 50], [0.05, 90], [0.1, 100], [Infinity, 100]];
    expect(quantileMs(0.5, c)).toBeCloseTo(10, 6);
    expect(quantileMs(0.7, c)).toBeCloseTo(10 + 40 * (20 / 40), 6);
    expect(quantileMs(0.99, c)).toBeCloseTo(50 + 50 * (9 / 10), 6);
  });

  it("answers the last finite bound past it, and null with no observations", () => {
    expect(quantileMs(0.99, [[0.5, 1], [30, 2], [Infinity, 200]])).toBe(30_000);
    expect(quantileMs(0.99, [[0.5, 0], [Infinity, 0]])).toBeNull();
    expect(quantileMs(0.99, [])).toBeNull();
  });
});

describe("featureNumbers", () => {
  const answers = {
    requests: [v({ feature: "search", backend: "legacy" }, 400.4), v({ feature: "search", backend: "new" }, 99.6), v({ feature: "search", backend: "-" }, 3), v({ backend: "new" }, 8)],
    errors: [v({ feature: "search", backend: "legacy" }, 2.2), v({ feature: "search", backend: "new" }, 12.1)],
    buckets: [
      v({ feature: "search", backend: "new", le: "+Inf" }, 100),
      v({ feature: "search", backend: "new", le: "0.01" }, 20),
      v({ feature: "search", backend: "new", le: "0.1" }, 60),
      v({ feature: "search", backend: "new", le: "1" }, 100),
      v({ feature: "search", backend: "legacy", le: "0.01" }, 300),
      v({ feature: "search", backend: "legacy", le: "0.1" }, 400),
      v({ feature: "search", backend: "legacy", le: "1" }, 400),
      v({ feature: "search", backend: "legacy", le: "+Inf" }, 400),
    ],
    shadow: [v({ feature: "search", outcome: "compared" }, 80), v({ feature: "search", outcome: "mismatched" }, 7.6), v({ feature: "checkout", outcome: "compared" }, 5)],
  };

  it("gives each feature both sides' counts (rounded), error rates, latency bins and p99", () => {
    const m = featureNumbers(answers);
    const s = m.get("search")!;
    expect(s.legacy).toMatchObject({ requests: 400, errors: 2, error_rate: 2 / 400 });
    expect(s.neu).toMatchObject({ requests: 100, errors: 12, error_rate: 0.12 });
    expect(s.neu.hist).toEqual([20, 40, 40, 0]);
    expect(s.legacy.hist).toEqual([300, 100, 0, 0]);
    expect(s.neu.p99_ms).toBeCloseTo(100 + 900 * (39 / 40), 6);
    expect(s.shadow).toEqual({ pairs: 80, mismatches: 8 });
    expect(m.get("checkout")).toMatchObject({ shadow: { pairs: 5, mismatches: 0 }, neu: { requests: 0, error_rate: null, p99_ms: null } });
    expect([...m.keys()].sort()).toEqual(["checkout", "search"]); // unlabelled and non-backend series ignored
  });

  it("feeds the evaluator: a new backend failing 12 % against legacy's 0.5 % is a breach, with its p-value", () => {
    const config = parseConfigText("listeners: [{ port: 0 }]\nbackends:\n  legacy: { url: http://127.0.0.1:1 }\n  new: { url: http://127.0.0.1:2 }\nguard:\n  enabled: true\n  source: prometheus\n  prometheus: { url: http://127.0.0.1:9090 }\nfeatures:\n  search: { routes: [/search], target: { percent: 20 } }\n", "switchyard.yaml", {});
    if (!config.ok) throw new Error(config.errors.map((e) => e.format()).join("\n"));
    const s = featureNumbers(answers).get("search")!;
    const e = evaluate({ percent: 20, legacy: s.legacy, neu: s.neu, shadow: s.shadow, rules: rulesOf(config.config.guard, config.config.features.search!), schedule: null, state: initialState(0), now: 0 });
    expect(e.breaches.join("; ")).toMatch(/new error rate 12\.00 % > 1\.00 % and > legacy 0\.50 % \+ 0\.50 % \(12\/100 vs 2\/400, p [<=] /);
  });
});

describe("guard.source config", () => {
  const base = "listeners: [{ port: 0 }]\nbackends:\n  legacy: { url: http://127.0.0.1:1 }\n  new: { url: http://127.0.0.1:2 }\n";
  it("prometheus needs guard.prometheus.url, and says how to set it", () => {
    const r = parseConfigText(`${base}guard:\n  source: prometheus\n`, "switchyard.yaml", {});
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.format()).join("\n")).toMatch(/guard\.prometheus.*guard\.source is prometheus but guard\.prometheus\.url is not set: add guard: \{ prometheus: \{ url: http:\/\/prometheus:9090 \} \}/s);
  });

  it("rejects a selector with braces and an unknown source", () => {
    const braces = parseConfigText(`${base}guard:\n  source: prometheus\n  prometheus: { url: http://p:9090, selector: '{job="x"}' }\n`, "switchyard.yaml", {});
    expect(braces.ok ? "" : braces.errors.map((e) => e.format()).join("\n")).toMatch(/guard\.prometheus\.selector.*label matchers without braces/s);
    const unknown = parseConfigText(`${base}guard:\n  source: graphite\n`, "switchyard.yaml", {});
    expect(unknown.ok ? "" : unknown.errors.map((e) => e.format()).join("\n")).toMatch(/guard\.source/);
  });

  it("defaults to Switchyard's own windows", () => {
    const r = parseConfigText(base, "switchyard.yaml", {});
    expect(r.ok && r.config.guard.source).toBe("switchyard");
  });
});
