// Pure checks at the edge: Host values, backend response framing, and the pool gate's admission order.
import { afterEach, describe, expect, it, vi } from "vitest";
import { PoolGate, type Waiter } from "../../src/forward/gate.ts";
import { responseFramingProblem } from "../../src/forward/response-checks.ts";
import { isValidHost } from "../../src/proxy/request-headers.ts";

describe("isValidHost", () => {
  it.each(["a", "a.example", "a.example.", "a-b.c_d.example:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8443", "[2001:db8::1]", "xn--bcher-kva.example"])("accepts %s", (h) => expect(isValidHost(h)).toBe(true));
  it.each(["", "a b", "a/b", "a\\b", "user@a", "a..b", ".a", "a:", "a:123456", "a:80:80", "[::1", "a\tb", "a%2fb", "a,b", "a?b", "a#b"])("refuses %j", (h) => expect(isValidHost(h)).toBe(false));
});

describe("responseFramingProblem", () => {
  const raw = (...pairs: string[]) => pairs;
  it("accepts no framing headers, one Content-Length, or one chunked", () => {
    expect(responseFramingProblem(raw())).toBeNull();
    expect(responseFramingProblem(raw("Content-Length", "2", "Content-Type", "text/plain"))).toBeNull();
    expect(responseFramingProblem(raw("transfer-encoding", " Chunked "))).toBeNull();
    expect(responseFramingProblem([Buffer.from("Transfer-Encoding"), Buffer.from("chunked")])).toBeNull();
  });
  it.each([
    [raw("Transfer-Encoding", "chunked, chunked"), /only "chunked"/],
    [raw("Transfer-Encoding", "gzip"), /only "chunked"/],
    [raw("Transfer-Encoding", "identity"), /only "chunked"/],
    [raw("Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"), /more than one/],
    [raw("Transfer-Encoding", "chunked", "Content-Length", "2"), /both/],
    [raw("content-length", "2", "TRANSFER-ENCODING", "chunked"), /both/],
  ])("refuses %j", (headers, why) => expect(responseFramingProblem(headers)).toMatch(why));
});

describe("PoolGate", () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const waiter = (log: string[], name: string): Waiter => ({ startUpstream: () => log.push(`start ${name}`), queueExpired: (ms) => log.push(`expired ${name} ${ms}`) });

  it("admits up to the limit, then queues in order and starts the next one as a slot frees", () => {
    const log: string[] = [];
    const gate = new PoolGate(2, 0);
    expect(gate.enter(waiter(log, "a"))).toBeNull();
    expect(gate.enter(waiter(log, "b"))).toBeNull();
    const cancelC = gate.enter(waiter(log, "c"));
    gate.enter(waiter(log, "d"));
    expect([gate.active, gate.queued]).toEqual([2, 2]);
    cancelC!();
    gate.leave();
    expect(log).toEqual(["start a", "start b", "start d"]);
    expect([gate.active, gate.queued]).toEqual([2, 0]);
    gate.leave();
    gate.leave();
    expect(gate.active).toBe(0);
  });

  it("never lets a newcomer pass someone waiting", () => {
    const log: string[] = [];
    const gate = new PoolGate(1, 0);
    gate.enter(waiter(log, "a"));
    gate.enter(waiter(log, "b"));
    gate.leave(); // b takes the slot
    gate.enter(waiter(log, "c")); // queued behind nobody, but the slot is b's
    expect(log).toEqual(["start a", "start b"]);
    expect(gate.queued).toBe(1);
  });

  it("expires a waiter at the queue deadline, counts it, and reports it once", () => {
    vi.useFakeTimers();
    const log: string[] = [];
    let counted = 0;
    const gate = new PoolGate(1, 500, () => counted++);
    gate.enter(waiter(log, "a"));
    gate.enter(waiter(log, "b"));
    vi.advanceTimersByTime(499);
    expect(log).toEqual(["start a"]);
    vi.advanceTimersByTime(1);
    expect(log[1]).toMatch(/^expired b \d/);
    expect([gate.timeouts, counted, gate.queued]).toEqual([1, 1, 0]);
    gate.leave();
    expect(log).toHaveLength(2); // nothing left to start
  });
});
