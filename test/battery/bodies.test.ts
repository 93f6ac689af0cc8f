// RELIABILITY.md P1 and E2: twice the pool size of malformed chunked bodies and of stalled bodies,
// with small bodies buffered (the default) and with every body streamed. Each bad one gets 400/408,
// its upstream request (when one was sent) is aborted and its connection never reused, and a normal
// request right after is answered. Also: the pool queue deadline, the per-client cap, the pool cap.
import { afterEach, describe, expect, it } from "vitest";
import { parseProm } from "../helpers/prom.ts";
import { startBattery, type Battery } from "./setup.ts";
import { wire } from "./wire.ts";

let b: Battery | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

const POOL = 8;
const malformed = (i: number) => `POST /public/bad/${i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n`;
const stalled = (i: number) => `POST /public/stalled/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab`;
const brokenLater = (i: number) => [`POST /public/broken/${i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n`, { pauseMs: 50 }, "+0\r\n\r\n"];

async function storm(battery: Battery) {
  const results = await Promise.all([
    ...Array.from({ length: 2 * POOL }, (_, i) => wire(battery.proxy.port, malformed(i), { idleMs: 3000 })),
    ...Array.from({ length: 2 * POOL }, (_, i) => wire(battery.proxy.port, brokenLater(i), { idleMs: 3000 })),
    ...Array.from({ length: 2 * POOL }, (_, i) => wire(battery.proxy.port, stalled(i), { idleMs: 3000 })),
  ]);
  const byKind = (from: number) => results.slice(from, from + 2 * POOL);
  return { malformed: byKind(0), broken: byKind(2 * POOL), stalled: byKind(4 * POOL) };
}

function expectRefused(rs: Awaited<ReturnType<typeof wire>>[], status: number, code: string) {
  for (const r of rs) {
    expect(r.statuses).toEqual([status]);
    expect(r.text).toContain(`"code":"${code}"`);
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(r.closed).toBe(true);
  }
}

describe("P1: bad bodies cost their own requests only", () => {
  it("small bodies are read whole first: bad ones get 400/408 and never reach the backend", async () => {
    b = await startBattery();
    const { malformed: m, broken, stalled: s } = await storm(b);
    expectRefused(m, 400, "SY_BAD_REQUEST_BODY");
    expectRefused(broken, 400, "SY_BAD_REQUEST_BODY");
    expectRefused(s, 408, "SY_BODY_TIMEOUT");
    expect(b.forwarded()).toEqual([]);
    const after = await wire(b.proxy.port, "GET /public/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(after.statuses).toEqual([200]);
  });

  it("streamed bodies: each bad one's upstream request is aborted and its connection closed, not reused", async () => {
    b = await startBattery("", { body_buffer_size: 0 });
    // The pool is never over its size, even while aborted connections are replaced.
    let maxActive = 0;
    let maxConnected = 0;
    const sampler = setInterval(() => {
      for (const p of b!.proxy.app.pools.stats()) {
        maxActive = Math.max(maxActive, p.active);
        maxConnected = Math.max(maxConnected, p.connected);
      }
    }, 2);
    const { malformed: m, broken, stalled: s } = await storm(b).finally(() => clearInterval(sampler));
    expect(maxActive).toBe(POOL);
    expect(maxConnected).toBeLessThanOrEqual(POOL);
    expectRefused(m, 400, "SY_BAD_REQUEST_BODY");
    expectRefused(broken, 400, "SY_BAD_REQUEST_BODY");
    expectRefused(s, 408, "SY_BODY_TIMEOUT");
    // What reached the backend was cut short, and every connection that carried it is closed.
    const seen = b.legacy.seen;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => !r.complete)).toBe(true);
    // (Connections undici opened for requests aborted before a byte was written stay warm in the pool.)
    const carriers = () => b!.legacy.conns.filter((c) => c.bytes.length > 0);
    await waitFor(() => carriers().every((c) => c.closed));
    expect(carriers().length).toBeGreaterThan(0);
    const after = await wire(b.proxy.port, "GET /public/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(after.statuses).toEqual([200]);
    const log = b.proxy.accessLogs().filter((l) => String(l.path).startsWith("/public/stalled/"));
    expect(log).toHaveLength(2 * POOL);
    expect(log.every((l) => l.error === "SY_BODY_TIMEOUT" && l.status === 408)).toBe(true);
  });
});

describe("the pool queue has a deadline", () => {
  it("answers 503 SY_POOL_QUEUE_TIMEOUT once queue_timeout passes with every connection busy, and counts it", async () => {
    b = await startBattery("failover:\n  enabled: false\n");
    const holders = Array.from({ length: POOL }, (_, i) => wire(b!.proxy.port, `GET /slow/1800?${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 4000 }));
    await waitFor(() => b!.legacy.seen.length === POOL);
    const queued = await wire(b.proxy.port, "GET /public/queued HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", { idleMs: 3000 });
    expect(queued.statuses).toEqual([503]);
    expect(queued.text).toContain('"code":"SY_POOL_QUEUE_TIMEOUT"');
    expect(b.legacy.connections.max).toBeLessThanOrEqual(POOL);
    expect(b.forwarded().filter((f) => f.includes("/public/queued"))).toEqual([]);
    const metrics = await b.proxy.app.metrics.registry.metrics();
    expect(parseProm(metrics).get('switchyard_pool_queue_timeouts_total{backend="legacy"}')).toBe(1);
    for (const r of await Promise.all(holders)) expect(r.statuses).toEqual([200]);
  });

  it("a queued request whose client leaves is never sent", async () => {
    b = await startBattery();
    const holders = Array.from({ length: POOL }, (_, i) => wire(b!.proxy.port, `GET /slow/600?${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 2000 }));
    await waitFor(() => b!.legacy.seen.length === POOL);
    await wire(b.proxy.port, "GET /public/gone HTTP/1.1\r\nHost: a\r\n\r\n", { idleMs: 50 }); // leaves while queued
    await Promise.all(holders);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.forwarded().filter((f) => f.includes("/public/gone"))).toEqual([]);
    expect(b.proxy.app.pools.stats().every((p) => p.active === 0 && p.queued === 0)).toBe(true);
  });
});

describe("limits.max_requests_per_client", () => {
  it("answers 429 past the cap for one address and frees the slot when a request ends", async () => {
    b = await startBattery("", { max_requests_per_client: 2 });
    const slow = [0, 1].map((i) => wire(b!.proxy.port, `GET /slow/400?${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 2000 }));
    await waitFor(() => b!.legacy.seen.length === 2);
    const third = await wire(b.proxy.port, "GET /public/third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(third.statuses).toEqual([429]);
    expect(third.text).toContain('"code":"SY_CLIENT_LIMIT"');
    for (const r of await Promise.all(slow)) expect(r.statuses).toEqual([200]);
    const fourth = await wire(b.proxy.port, "GET /public/fourth HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    expect(fourth.statuses).toEqual([200]);
    expect(b.proxy.app.state.perClient.size).toBe(0);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
