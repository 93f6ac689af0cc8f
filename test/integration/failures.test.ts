// Each failure answered the way an edge proxy answers it: status, small JSON body with a request id,
// exactly one log line, and nothing leaked upstream.
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { json, send, type ClientResponse } from "../helpers/client.ts";
import { closedPort, rawExchange, startBackend, startProxy, waitFor, type TestBackend, type TestProxy } from "../helpers/servers.ts";

let backend: TestBackend | undefined;
let proxy: TestProxy;

afterEach(async () => {
  await proxy?.close();
  await backend?.close();
  backend = undefined;
});

/** The error answer is small JSON naming the code, with the same request id as the header and the log. */
function expectErrorAnswer(res: ClientResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toBe("application/json");
  expect(res.body.length).toBeLessThan(300);
  const body = json(res) as { error: { code: string; request_id: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.request_id).toBe(res.headers["x-request-id"]);
  const lines = proxy.accessLogs().filter((l) => l.req_id === body.error.request_id);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.error).toBe(code);
  expect(lines[0]!.status).toBe(status);
}

describe("upstream failures", () => {
  it("answers 502 when the backend refuses the connection", async () => {
    proxy = await startProxy("", `http://127.0.0.1:${await closedPort()}`);
    const res = await send(proxy.url);
    expectErrorAnswer(res, 502, "SY_UPSTREAM_CONNECT_REFUSED");
    expect(proxy.accessLogs()[0]!.level).toBe("error");
  });

  it("logs failures even with log.access_log off, and nothing for successes", async () => {
    backend = await startBackend((req, res) => (req.url === "/reset" ? req.socket.destroy() : res.end("ok")));
    proxy = await startProxy("log:\n  access_log: false\n", backend.url);
    for (let i = 0; i < 5; i++) expect((await send(proxy.url, { path: `/ok/${i}` })).status).toBe(200);
    expectErrorAnswer(await send(proxy.url, { path: "/reset" }), 502, "SY_UPSTREAM_RESET");
    expect(proxy.accessLogs().map((l) => l.path)).toEqual(["/reset"]);
  });

  it("answers 502 when the backend resets the connection before answering", async () => {
    backend = await startBackend((req) => req.socket.destroy());
    proxy = await startProxy("", backend.url);
    expectErrorAnswer(await send(proxy.url), 502, "SY_UPSTREAM_RESET");
  });

  it("answers 502 when the backend sends garbage", async () => {
    const garbage = net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 abc nonsense\r\n\r\n")));
    await new Promise<void>((r) => garbage.listen(0, "127.0.0.1", r));
    proxy = await startProxy("", `http://127.0.0.1:${(garbage.address() as net.AddressInfo).port}`);
    expectErrorAnswer(await send(proxy.url), 502, "SY_UPSTREAM_BAD_RESPONSE");
    garbage.close();
  });

  it("answers 504 when the backend does not send headers within response_header", async () => {
    backend = await startBackend(() => {
      /* never answers */
    });
    proxy = await startProxy("", backend.url);
    await proxy.close();
    proxy = await startProxy("", backend.url.replace(/$/, "\n    timeouts:\n      response_header: 200ms"));
    expectErrorAnswer(await send(proxy.url), 504, "SY_UPSTREAM_HEADERS_TIMEOUT");
  });

  it("cuts the response when the body stalls past read, and logs the timeout once", async () => {
    backend = await startBackend((_req, res) => {
      res.writeHead(200, { "content-length": 100 });
      res.write("partial");
    });
    proxy = await startProxy("", `${backend.url}\n    timeouts:\n      read: 200ms`);
    await expect(send(proxy.url)).rejects.toThrow(/aborted|socket hang up|ECONNRESET/);
    await waitFor(() => proxy.accessLogs().length === 1, "the access log line");
    const line = proxy.accessLogs()[0]!;
    expect(line.error).toBe("SY_UPSTREAM_BODY_TIMEOUT");
    expect(line.status).toBe(200);
    expect(line.bytes_out).toBe(7);
  });

  it("answers 502 to an unsolicited 101 and never tunnels", async () => {
    let afterUpgrade = "";
    const rogue = net.createServer((s) => {
      s.once("data", () => {
        s.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW-TUNNEL-BYTES");
        s.on("data", (d: Buffer) => (afterUpgrade += d.toString("latin1")));
      });
    });
    await new Promise<void>((r) => rogue.listen(0, "127.0.0.1", r));
    proxy = await startProxy("", `http://127.0.0.1:${(rogue.address() as net.AddressInfo).port}`);
    const out = await rawExchange(proxy.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nSMUGGLED / HTTP/1.1\r\n\r\n");
    expect(out).toMatch(/^HTTP\/1.1 502 /);
    expect(out).not.toContain("RAW-TUNNEL-BYTES");
    expect(afterUpgrade).not.toContain("SMUGGLED");
    rogue.close();
  });

  it("answers 502 when the backend sends an invalid header value Node would not forward", async () => {
    const bad = net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad: a\x01b\r\n\r\nok")));
    await new Promise<void>((r) => bad.listen(0, "127.0.0.1", r));
    proxy = await startProxy("", `http://127.0.0.1:${(bad.address() as net.AddressInfo).port}`);
    const res = await send(proxy.url);
    expect(res.status).toBe(502);
    bad.close();
  });
});

describe("client limits", () => {
  it("answers 413 for a declared body over max_body_size without sending a byte upstream", async () => {
    backend = await startBackend((_req, res) => res.end("should not be reached"));
    proxy = await startProxy("limits:\n  max_body_size: 1KiB\n", backend.url);
    const res = await send(proxy.url, { method: "POST", body: Buffer.alloc(4096), headers: { "content-length": 4096 } });
    expectErrorAnswer(res, 413, "SY_BODY_TOO_LARGE");
    expect(res.headers.connection).toBe("close");
    expect(backend.seen).toHaveLength(0);
  });

  it("refuses an oversized Expect: 100-continue upload before the body is sent", async () => {
    backend = await startBackend((_req, res) => res.end("no"));
    proxy = await startProxy("limits:\n  max_body_size: 1KiB\n", backend.url);
    const out = await rawExchange(proxy.port, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n");
    expect(out).toMatch(/^HTTP\/1.1 413 /);
    expect(out).not.toContain("100 Continue");
    expect(backend.seen).toHaveLength(0);
  });

  it("answers 413 when a chunked body grows past max_body_size", async () => {
    let upstreamBytes = 0;
    backend = await startBackend((req, res) => {
      req.on("data", (c: Buffer) => (upstreamBytes += c.length));
      req.on("end", () => res.end("read it all"));
      req.on("error", () => {});
    });
    proxy = await startProxy("limits:\n  max_body_size: 64KiB\n", backend.url);
    const body = new (await import("node:stream")).PassThrough();
    const pending = send(proxy.url, { method: "POST", body, headers: { "transfer-encoding": "chunked" } });
    for (let i = 0; i < 16; i++) body.write(Buffer.alloc(16 * 1024));
    body.end();
    const res = await pending;
    expectErrorAnswer(res, 413, "SY_BODY_TOO_LARGE");
    expect(upstreamBytes).toBeLessThanOrEqual(64 * 1024);
  });

  it("answers 431 for headers over max_header_size", async () => {
    backend = await startBackend((_req, res) => res.end("no"));
    proxy = await startProxy("limits:\n  max_header_size: 8KiB\n", backend.url);
    const out = await rawExchange(proxy.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(10_000)}\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 431 /);
    expect(out).toMatch(/x-request-id: [0-9a-f-]{36}/i);
    expect(out).toContain('"code":"SY_HEADERS_TOO_LARGE"');
    expect(backend.seen).toHaveLength(0);
    expect(proxy.logs.filter((l) => l.error === "SY_HEADERS_TOO_LARGE")).toHaveLength(1);
  });

  it("answers 408 to a client that does not finish its headers within header_timeout", async () => {
    backend = await startBackend((_req, res) => res.end("no"));
    proxy = await startProxy("limits:\n  header_timeout: 300ms\n", backend.url);
    const out = await rawExchange(proxy.port, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1\r\n", 3000);
    expect(out).toMatch(/^HTTP\/1.1 408 /);
    expect(backend.seen).toHaveLength(0);
  });

  it("closes a connection that sends nothing at all after header_timeout, and keeps one whose request came in time", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    proxy = await startProxy("limits:\n  header_timeout: 400ms\n  keep_alive_timeout: 60s\n", backend.url);
    const closedAfter = (s: net.Socket) => {
      const t0 = Date.now();
      return new Promise<number>((resolve) => s.once("close", () => resolve(Date.now() - t0)));
    };
    const silent = net.connect(proxy.port, "127.0.0.1");
    silent.on("error", () => {});
    const silentClosed = closedAfter(silent);
    const talker = net.connect(proxy.port, "127.0.0.1");
    talker.on("error", () => {});
    let answered = "";
    talker.on("data", (d: Buffer) => (answered += d.toString("latin1")));
    await new Promise((r) => talker.once("connect", r));
    talker.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(await silentClosed).toBeGreaterThanOrEqual(300);
    await waitFor(() => answered.startsWith("HTTP/1.1 200"), "the talker's answer");
    await new Promise((r) => setTimeout(r, 600));
    expect(talker.destroyed).toBe(false); // kept alive past header_timeout: its deadline is keep_alive_timeout
    talker.destroy();
  });

  it("answers 400 to malformed requests without reaching the backend", async () => {
    backend = await startBackend((_req, res) => res.end("no"));
    proxy = await startProxy("", backend.url);
    for (const req of [
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
    ]) {
      expect((await rawExchange(proxy.port, req)).slice(0, 12), JSON.stringify(req)).toBe("HTTP/1.1 400");
    }
    expect(backend.seen).toHaveLength(0);
  });
});

describe("client gone", () => {
  it("aborts the upstream request when the client disconnects while waiting, and leaks no socket", async () => {
    let upstreamClosed = false;
    backend = await startBackend((_req, res) => {
      res.on("close", () => (upstreamClosed = true));
    });
    proxy = await startProxy("", backend.url);
    const sock = net.connect(proxy.port, "127.0.0.1");
    sock.on("error", () => {});
    sock.write("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    await waitFor(() => backend!.seen.length === 1, "the request to reach the backend");
    sock.destroy();
    await waitFor(() => upstreamClosed, "the upstream request to be aborted");
    await waitFor(() => proxy.accessLogs().length === 1, "the access log line");
    expect(proxy.accessLogs()[0]).toMatchObject({ status: 499, error: "SY_CLIENT_CLOSED", backend: "legacy" });
    await waitFor(() => proxy.app.pools.stats().every((s) => s.running === 0 && s.pending === 0), "the pool to be idle");
    expect(proxy.app.state.inflight).toBe(0);
  });

  it("aborts the upstream response when the client disconnects mid-download", async () => {
    let upstreamClosed = false;
    backend = await startBackend((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024);
      const timer = setInterval(() => res.write(chunk), 5);
      res.on("close", () => {
        clearInterval(timer);
        upstreamClosed = true;
      });
    });
    proxy = await startProxy("", backend.url);
    await new Promise<void>((resolve) => {
      http.get(`${proxy.url}/stream`, { agent: false }, (res) => {
        let n = 0;
        res.on("data", (c: Buffer) => {
          n += c.length;
          if (n > 256 * 1024) {
            res.destroy();
            resolve();
          }
        });
        res.on("error", () => {});
      });
    });
    await waitFor(() => upstreamClosed, "the upstream response to be aborted");
    await waitFor(() => proxy.accessLogs().length === 1, "the access log line");
    expect(proxy.accessLogs()[0]).toMatchObject({ status: 200, error: "SY_CLIENT_CLOSED" });
    await waitFor(() => proxy.app.pools.stats().every((s) => s.running === 0), "the pool to be idle");
  });

  it("aborts the upstream request when the client disconnects mid-upload", async () => {
    let upstreamAborted = false;
    backend = await startBackend((req, res) => {
      req.on("data", () => {});
      req.on("error", () => {});
      req.on("close", () => (upstreamAborted = !req.complete));
      req.on("end", () => res.end("done"));
    });
    proxy = await startProxy("", backend.url);
    const sock = net.connect(proxy.port, "127.0.0.1");
    sock.on("error", () => {});
    sock.write("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
    sock.write(Buffer.alloc(100_000));
    await waitFor(() => backend!.seen.length === 1, "the request to reach the backend");
    sock.destroy();
    await waitFor(() => upstreamAborted, "the upstream upload to be aborted");
    await waitFor(() => proxy.accessLogs().length === 1, "the access log line");
    expect(proxy.accessLogs()[0]).toMatchObject({ status: 499, error: "SY_CLIENT_CLOSED" });
  });
});
