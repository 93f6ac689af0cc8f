// Header rules an nginx user relies on, checked on the wire: what the backend receives and what the
// client gets back.
import { afterEach, describe, expect, it } from "vitest";
import { send } from "../helpers/client.ts";
import { rawExchange, startBackend, startProxy, type TestBackend, type TestProxy } from "../helpers/servers.ts";

let backend: TestBackend;
let proxy: TestProxy;

afterEach(async () => {
  await proxy?.close();
  await backend?.close();
});

async function setup(yaml = "", respond?: Parameters<typeof startBackend>[0]) {
  backend = await startBackend(respond ?? ((req, res) => {
    req.resume();
    req.on("end", () => res.end("ok"));
  }));
  proxy = await startProxy(yaml, backend.url);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("request headers", () => {
  it("strips hop-by-hop headers and every header named in Connection", async () => {
    await setup();
    await send(proxy.url, {
      headers: { connection: "keep-alive, X-Secret, X-Forwarded-For", "x-secret": "s", "keep-alive": "timeout=5", te: "trailers", "proxy-authorization": "Basic eDp5", upgrade: "h2c", "x-kept": "yes" },
    });
    const h = backend.seen[0]!.headers;
    expect(h["x-secret"]).toBeUndefined();
    expect(h["keep-alive"]).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h["proxy-authorization"]).toBeUndefined();
    expect(h.upgrade).toBeUndefined();
    expect(h["x-kept"]).toBe("yes");
    // Listing X-Forwarded-For in Connection cannot remove the proxy's own header.
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
  });

  it("replaces X-Forwarded-* and X-Real-IP from an untrusted client", async () => {
    await setup();
    await send(proxy.url, {
      headers: { host: "shop.example", "x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example", "x-forwarded-port": "1", "x-real-ip": "6.6.6.6" },
    });
    const h = backend.seen[0]!.headers;
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-real-ip"]).toBe("127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-forwarded-host"]).toBe("shop.example");
    expect(h["x-forwarded-port"]).toBe(String(proxy.port));
  });

  it("appends to X-Forwarded-For from a trusted proxy and takes the client ip from it", async () => {
    await setup("proxy:\n  trusted_proxies: [127.0.0.0/8]\n");
    await send(proxy.url, { headers: { "x-forwarded-for": "198.51.100.4", "x-forwarded-proto": "https", "x-forwarded-host": "shop.example", "x-forwarded-port": "443" } });
    const h = backend.seen[0]!.headers;
    expect(h["x-forwarded-for"]).toBe("198.51.100.4, 127.0.0.1");
    expect(h["x-real-ip"]).toBe("198.51.100.4");
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-forwarded-host"]).toBe("shop.example");
    expect(h["x-forwarded-port"]).toBe("443");
    expect(proxy.accessLogs()[0]!.client_ip).toBe("198.51.100.4");
  });

  it("passes Host through by default", async () => {
    await setup();
    await send(proxy.url, { headers: { host: "shop.example:8443" } });
    expect(backend.seen[0]!.headers.host).toBe("shop.example:8443");
  });

  it("sends the backend's host when preserve_host is off", async () => {
    await setup("proxy:\n  preserve_host: false\n");
    await send(proxy.url, { headers: { host: "shop.example" } });
    expect(backend.seen[0]!.headers.host).toBe(`127.0.0.1:${backend.port}`);
    expect(backend.seen[0]!.headers["x-forwarded-host"]).toBe("shop.example");
  });

  it("keeps header case and order of end-to-end headers", async () => {
    await setup();
    await send(proxy.url, { headers: ["Host", "h", "X-Camel-Case", "1", "x-lower", "2", "X-Camel-Case", "3"] });
    const raw = backend.seen[0]!.rawHeaders;
    const names = raw.filter((_, i) => i % 2 === 0);
    expect(names.filter((n) => n.startsWith("X-Camel") || n === "x-lower")).toEqual(["X-Camel-Case", "x-lower", "X-Camel-Case"]);
  });
});

describe("request id", () => {
  it("generates one, sends it upstream and returns it to the client", async () => {
    await setup();
    const res = await send(proxy.url);
    const id = res.headers["x-request-id"] as string;
    expect(id).toMatch(UUID);
    expect(backend.seen[0]!.headers["x-request-id"]).toBe(id);
    expect(proxy.accessLogs()[0]!.req_id).toBe(id);
  });

  it("keeps a well-formed incoming id and replaces a malformed one", async () => {
    await setup();
    const kept = await send(proxy.url, { headers: { "x-request-id": "trace-abc.123" } });
    expect(kept.headers["x-request-id"]).toBe("trace-abc.123");
    expect(backend.seen[0]!.headers["x-request-id"]).toBe("trace-abc.123");
    const replaced = await send(proxy.url, { headers: { "x-request-id": "has spaces and \"quotes\"" } });
    expect(replaced.headers["x-request-id"]).toMatch(UUID);
  });

  it("ignores incoming ids when preserve is never, and uses the configured header name", async () => {
    await setup("proxy:\n  request_id:\n    header: X-Correlation-Id\n    preserve: never\n");
    const res = await send(proxy.url, { headers: { "x-correlation-id": "from-client" } });
    expect(res.headers["x-correlation-id"]).toMatch(UUID);
    expect(backend.seen[0]!.headers["x-correlation-id"]).toBe(res.headers["x-correlation-id"]);
    expect(backend.seen[0]!.headers["x-request-id"]).toBeUndefined();
  });

  it("overrides a request id the backend sets on its response", async () => {
    await setup("", (_req, res) => res.writeHead(200, { "x-request-id": "backend-made" }).end());
    const res = await send(proxy.url, { headers: { "x-request-id": "client-made" } });
    expect(res.rawHeaders.filter((h) => h.toLowerCase() === "x-request-id")).toHaveLength(1);
    expect(res.headers["x-request-id"]).toBe("client-made");
  });
});

describe("response headers", () => {
  it("strips hop-by-hop and Connection-listed headers from the backend, keeps repeated ones", async () => {
    await setup("", (_req, res) => {
      res.setHeader("Connection", "keep-alive, X-Internal-Node");
      res.setHeader("X-Internal-Node", "10.1.2.3:5042");
      res.setHeader("Keep-Alive", "timeout=4");
      res.setHeader("Set-Cookie", ["a=1; Path=/", "b=2; Path=/"]);
      res.end("x");
    });
    const res = await send(proxy.url);
    expect(res.headers["x-internal-node"]).toBeUndefined();
    expect(res.headers["keep-alive"]).not.toBe("timeout=4");
    expect(res.headers["set-cookie"]).toEqual(["a=1; Path=/", "b=2; Path=/"]);
  });

  it("rewrites a Location on the backend's origin and leaves others alone", async () => {
    await setup("", (req, res) => {
      res.writeHead(302, { location: req.url === "/own" ? `${backend.url}/login?next=%2F` : "https://sso.example/login" }).end();
    });
    const own = await send(proxy.url, { path: "/own", headers: { host: "shop.example" } });
    expect(own.headers.location).toBe("http://shop.example/login?next=%2F");
    const other = await send(proxy.url, { path: "/other" });
    expect(other.headers.location).toBe("https://sso.example/login");
  });

  it("never names the backend's address in any header", async () => {
    await setup("", (_req, res) => res.end("x"));
    const res = await send(proxy.url);
    const values = res.rawHeaders.join("\n");
    expect(values).not.toContain(String(backend.port));
  });
});

describe("request targets and methods", () => {
  it("forwards the canonical path it matched and the query byte for byte", async () => {
    await setup();
    const target = "/api/1/./ping/..//x%2Fy/%2e%2e;a=b?q=%41%zz&&x=1+2&empty=";
    const out = await rawExchange(proxy.port, `GET ${target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(backend.seen[0]!.url).toBe("/api/1/x/y/..;a=b?q=%41%zz&&x=1+2&empty=");
  });

  it("forwards an already canonical path and query untouched", async () => {
    await setup();
    const target = "/api/1/users/~bob/a:b@c!$&'()*+,;=/?q=%41%zz&&x=1+2&empty=";
    await rawExchange(proxy.port, `GET ${target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
    expect(backend.seen[0]!.url).toBe(target);
  });

  it.each(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "PROPFIND"])("forwards %s with its body", async (method) => {
    await setup("", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => res.end(`${req.method}:${Buffer.concat(chunks).toString()}`));
    });
    const res = await send(proxy.url, { method, body: "payload", headers: { "content-type": "text/plain", "content-length": 7 } });
    expect(res.body.toString()).toBe(`${method}:payload`);
  });

  it("answers HEAD with the backend's headers and no body", async () => {
    await setup("", (req, res) => res.writeHead(200, { "content-length": 1234, "content-type": "text/plain" }).end(req.method === "HEAD" ? undefined : "x".repeat(1234)));
    const res = await send(proxy.url, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers["content-length"]).toBe("1234");
    expect(res.body.length).toBe(0);
    expect(backend.seen[0]!.method).toBe("HEAD");
  });

  it("turns an absolute-form target into origin-form with its authority as Host", async () => {
    await setup();
    const out = await rawExchange(proxy.port, "GET http://shop.example/a?b=1 HTTP/1.1\r\nHost: ignored.example\r\nConnection: close\r\n\r\n");
    expect(out).toMatch(/^HTTP\/1.1 200/);
    expect(backend.seen[0]!.url).toBe("/a?b=1");
    expect(backend.seen[0]!.headers.host).toBe("shop.example");
  });

  it("refuses two Host headers, CONNECT, unknown transfer codings, and TE on HTTP/1.0 without reaching the backend", async () => {
    await setup();
    const cases: [string, number][] = [
      ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
      ["CONNECT shop.example:443 HTTP/1.1\r\nHost: shop.example:443\r\n\r\n", 405],
      ["POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501],
      ["POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400],
      ["GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400],
      ["GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    ];
    for (const [request, status] of cases) {
      const out = await rawExchange(proxy.port, request);
      expect(out.slice(0, 12), request).toBe(`HTTP/1.1 ${status}`);
      expect(out).toMatch(/x-request-id: \S+/i);
    }
    expect(backend.seen).toHaveLength(0);
  });

  it("handles Expect: 100-continue: invites the body, strips Expect upstream", async () => {
    await setup("", (req, res) => {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(String(n)));
    });
    const out = await rawExchange(proxy.port, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", 300);
    expect(out).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\n$/);
    const full = await new Promise<string>((resolve, reject) => {
      import("node:net").then(({ connect }) => {
        const s = connect(proxy.port, "127.0.0.1");
        let buf = "";
        s.on("data", (d) => {
          buf += d.toString("latin1");
          if (buf.startsWith("HTTP/1.1 100 Continue\r\n\r\n") && !buf.includes("200")) s.write("hello");
        });
        s.on("end", () => resolve(buf));
        s.on("error", reject);
        s.write("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
      }, reject);
    });
    expect(full).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200/);
    expect(full.endsWith("5")).toBe(true);
    expect(backend.seen.at(-1)!.headers.expect).toBeUndefined();
  });

  it("passes response trailers through", async () => {
    await setup("", (_req, res) => {
      res.writeHead(200, { trailer: "X-Checksum", "content-type": "text/plain" });
      res.write("body");
      res.addTrailers({ "X-Checksum": "abc123" });
      res.end();
    });
    const res = await send(proxy.url, { headers: { te: "trailers" } });
    expect(res.body.toString()).toBe("body");
    expect(res.trailers["x-checksum"]).toBe("abc123");
  });
});
