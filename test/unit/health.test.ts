// Backend health as a pure state machine and the failover budget, with the clock passed in.
import { describe, expect, it } from "vitest";
import { RetryBudget } from "../../src/health/budget.ts";
import { BackendHealth } from "../../src/health/state.ts";

const passive = { consecutiveFailures: 3, windowMs: 10_000, ejectionMs: 10_000, maxEjectionMs: 60_000 };

describe("passive detection", () => {
  it("ejects after the configured failures in a row, not before; a success starts the count over", () => {
    const h = new BackendHealth(passive, null, 0);
    expect(h.failed("connect", 1)).toBe(false);
    expect(h.failed("reset", 2)).toBe(false);
    h.succeeded(3);
    expect(h.failed("timeout", 4)).toBe(false);
    expect(h.failed("timeout", 5)).toBe(false);
    expect(h.available(5)).toBe(true);
    expect(h.failed("5xx", 6)).toBe(true);
    expect(h.available(7)).toBe(false);
    expect(h.snapshot(7)).toMatchObject({ state: "ejected", ejections: 1, ejected_until: 10_006 });
    expect(h.reason).toMatch(/^3 failed exchanges in a row \(last: 5xx\); ejected for 10 s$/);
    expect(h.ejectionCounts).toEqual({ passive: 1, active_check: 0 });
  });

  it("forgets failures further apart than the window", () => {
    const h = new BackendHealth(passive, null, 0);
    h.failed("connect", 0);
    h.failed("connect", 5_000);
    expect(h.failed("connect", 16_000)).toBe(false); // 11 s after the last: the count started over
    expect(h.available(16_000)).toBe(true);
  });

  it("is half-open after the ejection: the next success brings it back, the next failure doubles the ejection", () => {
    const h = new BackendHealth(passive, null, 0);
    for (let i = 0; i < 3; i++) h.failed("connect", i);
    expect(h.available(10_001)).toBe(false);
    expect(h.available(10_002)).toBe(true);
    expect(h.state).toBe("half_open");
    expect(h.failed("connect", 10_003)).toBe(true); // one failure is enough when half-open
    expect(h.snapshot(10_003)).toMatchObject({ state: "ejected", ejections: 2, ejected_until: 30_003 });
    expect(h.available(30_003)).toBe(true);
    h.succeeded(30_004);
    expect(h.state).toBe("healthy");
    // Failing again soon after: the next ejection is longer still, capped at max_ejection.
    for (let i = 0; i < 3; i++) h.failed("reset", 30_005 + i);
    expect(h.snapshot(30_010).ejected_until).toBe(30_007 + 40_000);
    for (let round = 0; round < 3; round++) {
      const t = h.snapshot(0).ejected_until!;
      h.available(t);
      h.failed("reset", t);
    }
    const last = h.snapshot(0);
    expect(last.ejected_until! - (last.since)).toBe(60_000);
  });

  it("forgives past ejections after a stable spell as long as max_ejection", () => {
    const h = new BackendHealth(passive, null, 0);
    for (let i = 0; i < 3; i++) h.failed("connect", i);
    h.available(10_002);
    h.succeeded(10_002);
    h.succeeded(70_003);
    expect(h.snapshot(70_003).ejections).toBe(0);
    for (let i = 0; i < 3; i++) h.failed("connect", 70_004 + i);
    expect(h.snapshot(70_010).ejected_until).toBe(70_006 + 10_000);
  });

  it("does nothing with consecutive_failures 0", () => {
    const h = new BackendHealth({ ...passive, consecutiveFailures: 0 }, null, 0);
    for (let i = 0; i < 100; i++) h.failed("connect", i);
    expect(h.available(100)).toBe(true);
  });
});

describe("active checks", () => {
  const active = { healthyThreshold: 2, unhealthyThreshold: 3 };

  it("takes the backend out after unhealthy_threshold failing checks and back after healthy_threshold passing", () => {
    const h = new BackendHealth(passive, active, 0);
    h.checked(false, "GET /healthz answered 500", 1);
    h.checked(false, "GET /healthz answered 500", 2);
    expect(h.available(2)).toBe(true);
    h.checked(false, "GET /healthz failed: no answer within 2000 ms", 3);
    expect(h.available(3)).toBe(false);
    expect(h.snapshot(3)).toMatchObject({ state: "unhealthy", reason: "3 failed active checks in a row (last: GET /healthz failed: no answer within 2000 ms)" });
    expect(h.ejectionCounts.active_check).toBe(1);
    h.checked(true, "GET /healthz answered 200", 4);
    expect(h.available(4)).toBe(false);
    h.checked(true, "GET /healthz answered 200", 5);
    expect(h.available(5)).toBe(true);
    expect(h.snapshot(5).active).toMatchObject({ consecutive_ok: 2, consecutive_failed: 0, last: { at: 5, ok: true } });
  });

  it("decides a half-open backend: a passing check brings it back, a failing one ejects it again", () => {
    const h = new BackendHealth(passive, active, 0);
    for (let i = 0; i < 3; i++) h.failed("timeout", i);
    h.available(10_002);
    h.checked(true, "ok", 10_003);
    expect(h.state).toBe("healthy");
    for (let i = 0; i < 3; i++) h.failed("timeout", 10_004 + i);
    h.available(30_006);
    h.checked(false, "GET /healthz answered 503", 30_007);
    expect(h.state).toBe("ejected");
  });
});

describe("RetryBudget", () => {
  it("allows the floor per second, then a share of the last 10 s of requests", () => {
    const b = new RetryBudget(20, 3);
    const t = 1_000_000;
    // No traffic yet: the floor of 3 per second.
    expect([b.take(t), b.take(t), b.take(t), b.take(t)]).toEqual([true, true, true, false]);
    expect(b.exhausted).toBe(1);
    // 100 requests in the window: 20 % = 20 failovers in all (3 already taken).
    for (let i = 0; i < 100; i++) b.request(t + 1000);
    let granted = 0;
    for (let i = 0; i < 40; i++) if (b.take(t + 1000)) granted++;
    expect(granted).toBe(17);
    // Ten seconds on, the window has moved past all of it.
    expect(b.take(t + 11_500)).toBe(true);
  });

  it("with budget 0 allows only the floor", () => {
    const b = new RetryBudget(0, 1);
    for (let i = 0; i < 1000; i++) b.request(5000);
    expect([b.take(5000), b.take(5000)]).toEqual([true, false]);
  });
});
