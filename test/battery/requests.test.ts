// RELIABILITY.md A1, P2, B and C1 as raw-socket cases: each hides a request for a route the config
// sends to the other backend, and the recording backends say exactly what crossed the proxy.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { A1, C1, LEGIT, P2, SMUGGLED } from "./cases.ts";
import { REFUSALS, startBattery, type Battery } from "./setup.ts";
import { wire } from "./wire.ts";

let b: Battery;
beforeAll(async () => {
  b = await startBattery();
});
afterAll(async () => {
  await b.close();
});
beforeEach(() => b.reset());

describe("A1: malformed and smuggling requests are refused and nothing reaches a backend", () => {
  it.each(A1)("$id $name", async (c) => {
    const r = await wire(b.proxy.port, c.steps);
    expect(REFUSALS).toContain(r.statuses[0]);
    expect(r.statuses).toHaveLength(1); // nothing answered after the refusal
    expect(r.closed).toBe(true);
    expect(b.smuggled()).toBe(false);
    if (c.partial) expect(b.legacy.seen.every((s) => !s.complete) && b.neu.seen.length === 0).toBe(true);
    else expect(b.forwarded()).toEqual([]);
  });

  it("has 60 or more cases", () => expect(A1.length).toBeGreaterThanOrEqual(60));
});

describe("the legitimate neighbours of those cases are still forwarded", () => {
  it.each(LEGIT)("$id $name", async (c) => {
    const r = await wire(b.proxy.port, c.steps);
    expect(r.statuses).toEqual([200]);
    expect(b.forwarded()).toHaveLength(1);
    expect(b.forwarded()[0]).toMatch(/^legacy [A-Z]+ \/public\//);
  });

  it("sends an HTTP/1.0 request without Host the listener's address as Host and X-Forwarded-Host, never the backend's", async () => {
    await wire(b.proxy.port, "GET /public/x HTTP/1.0\r\n\r\n");
    const seen = b.legacy.seen[0]!;
    expect(seen.headers.host).toBe(`127.0.0.1:${b.proxy.port}`);
    expect(seen.headers["x-forwarded-host"]).toBe(`127.0.0.1:${b.proxy.port}`);
  });

  it("sends the authority of an absolute-form target as Host and routes by its path", async () => {
    await wire(b.proxy.port, `GET http://a.example${SMUGGLED} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n`);
    expect(b.forwarded()).toEqual([`new GET ${SMUGGLED}`]);
    expect(b.neu.seen[0]!.headers.host).toBe("a.example");
  });
});

describe("P2: a refusal closes the connection and what is pipelined behind it is never forwarded", () => {
  it.each(P2)("$id $name", async (c) => {
    const r = await wire(b.proxy.port, c.steps);
    expect(REFUSALS).toContain(r.statuses[0]);
    expect(r.statuses).toHaveLength(1);
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(r.closed).toBe(true);
    expect(b.forwarded()).toEqual([]);
    expect(b.smuggled()).toBe(false);
  });

  it("forwards a pipelined request behind a good one (to its own route)", async () => {
    const r = await wire(b.proxy.port, `GET /public/x HTTP/1.1\r\nHost: a\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(r.statuses).toEqual([200, 200]);
    expect(b.forwarded()).toEqual(["legacy GET /public/x", `new GET ${SMUGGLED}`]);
  });
});

describe("B: forwarding headers cannot be spoofed or removed", () => {
  it("replaces X-Forwarded-*, X-Real-IP and drops Forwarded from an untrusted client", async () => {
    await wire(b.proxy.port, [
      "GET /public/x HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;host=evil\r\n" +
        "X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\nConnection: close\r\n\r\n",
    ]);
    const h = b.legacy.seen[0]!.headers;
    expect([h["x-forwarded-for"], h["x-real-ip"], h["x-forwarded-host"], h["x-forwarded-proto"], h["x-forwarded-port"], h.forwarded]).toEqual([
      "127.0.0.1", "127.0.0.1", "shop.example", "http", String(b.proxy.port), undefined,
    ]);
  });

  it("cannot make the proxy drop its own headers by listing them in Connection", async () => {
    await wire(b.proxy.port, "GET /public/x HTTP/1.1\r\nHost: a\r\nConnection: close, X-Forwarded-For, X-Request-Id, X-Real-IP, Foo\r\nFoo: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n");
    const h = b.legacy.seen[0]!.headers;
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-real-ip"]).toBe("127.0.0.1");
    expect(h["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect([h.foo, h["keep-alive"], h.te, h["proxy-authorization"]]).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe("C1: 30+ spellings of a path: the backend gets exactly the canonical path that was matched", () => {
  it.each(C1)("$raw -> $backend $canonical", async ({ raw, canonical, backend }) => {
    const r = await wire(b.proxy.port, `GET ${raw} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(r.statuses).toEqual([200]);
    expect(b.forwarded()).toEqual([`${backend} GET ${canonical}`]);
  });

  it("has 30 or more spellings", () => expect(C1.length).toBeGreaterThanOrEqual(30));
});

describe("C1 with proxy.path_normalization: refuse", () => {
  let strict: Battery;
  beforeAll(async () => {
    strict = await startBattery("proxy:\n  path_normalization: refuse\n");
  });
  afterAll(async () => {
    await strict.close();
  });

  it.each(C1)("$raw", async ({ raw, canonical, backend }) => {
    strict.reset();
    const r = await wire(strict.proxy.port, `GET ${raw} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    const rawPath = raw.split("?")[0];
    if (rawPath === canonical.split("?")[0]) {
      expect(r.statuses).toEqual([200]);
      expect(strict.forwarded()).toEqual([`${backend} GET ${canonical}`]);
    } else {
      expect(r.statuses).toEqual([400]);
      expect(r.text).toContain("SY_NON_CANONICAL_PATH");
      expect(r.text).toContain(JSON.stringify(`send ${canonical.split("?")[0]} instead (proxy.path_normalization: refuse)`).slice(1, -1));
      expect(strict.forwarded()).toEqual([]);
    }
  });
});
