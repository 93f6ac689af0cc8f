// HTTP/2 to clients on a TLS listener (ALPN h2 beside http/1.1), HTTP/1.1 to the backends: the same
// path as HTTP/1.1 (routing, header rules, body, errors, access log), the downgrade refused where a
// field could be read two ways, the rapid-reset flood cut, and GOAWAY at shutdown with the streams in
// flight finishing.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import { send } from "../helpers/client.ts";
import { parseProm } from "../helpers/prom.ts";
import { captureLogger } from "../helpers/control.ts";
import { FRAME, frame, headerBlock, pseudo, rawH2 } from "../helpers/h2-raw.ts";
import { startBackend, waitFor, type TestBackend } from "../helpers/servers.ts";
import { Switchyard } from "../../src/app.ts";

const dir = mkdtempSync(join(tmpdir(), "switchyard-h2-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
  "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
const ca = readFileSync(join(dir, "cert.pem"));

let backend: TestBackend;
let proxy: Switchyard | null = null;
let logs: Record<string, unknown>[] = [];
let url = "";
let port = 0;
const sessions: http2.ClientHttp2Session[] = [];

beforeAll(async () => {
  backend = await startBackend((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const delay = Number(new URL(req.url!, "http://x").searchParams.get("delay") ?? 0);
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json", "set-cookie": ["a=1", "b=2"], connection: "keep-alive", "keep-alive": "timeout=5" });
        res.end(JSON.stringify({ url: req.url, httpVersion: req.httpVersion, host: req.headers.host, cookie: req.headers.cookie ?? null, body: Buffer.concat(chunks).toString() }));
      }, delay);
    });
  });
});
afterAll(() => backend.close());
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  await proxy?.shutdown(2000);
  proxy = null;
});

async function start(extra = ""): Promise<void> {
  const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nlog:\n  access_log: true\n${extra}`;
  const result = parseConfigText(text, "h2.yaml", {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  logs = [];
  proxy = await Switchyard.start(result.config, { logger: captureLogger(logs) });
  url = proxy.urls[0]!;
  port = Number(new URL(url).port);
}

function connect(): http2.ClientHttp2Session {
  const s = http2.connect(url, { ca, servername: "localhost" });
  s.on("error", () => {});
  sessions.push(s);
  return s;
}

interface H2Answer { status: number; headers: http2.IncomingHttpHeaders; body: string }
function request(s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const r = s.request(headers, { endStream: body === undefined });
    let status = 0;
    let h: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    r.on("response", (rh) => {
      h = rh;
      status = Number(rh[":status"]);
    });
    r.on("data", (c: Buffer) => chunks.push(c));
    r.on("end", () => resolve({ status, headers: h, body: Buffer.concat(chunks).toString() }));
    r.on("error", reject);
    if (body !== undefined) r.end(body);
  });
}

describe("HTTP/2 to clients", () => {
  it("serves h2 and http/1.1 on one TLS port: pseudo-headers mapped, HTTP/1.1 upstream, hop-by-hop dropped, the usual headers added", async () => {
    await start();
    const s = connect();
    const r = await request(s, { ":path": "/a/b?q=1", ":method": "GET", cookie: "x=1" });
    expect(s.alpnProtocol).toBe("h2");
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body) as { url: string; httpVersion: string; host: string; cookie: string };
    expect(seen).toMatchObject({ url: "/a/b?q=1", httpVersion: "1.1", host: `localhost:${port}` }); // :authority, as the client named the server
    const up = backend.seen.at(-1)!;
    expect(up.rawHeaders.filter((_, i) => i % 2 === 0).some((n) => n.startsWith(":"))).toBe(false);
    expect(up.headers["x-forwarded-proto"]).toBe("https");
    expect(up.headers["x-forwarded-for"]).toBe("127.0.0.1");
    // The answer: the backend's Connection/Keep-Alive gone, both cookies kept, the request id added.
    expect(r.headers.connection).toBeUndefined();
    expect(r.headers["keep-alive"]).toBeUndefined();
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    // The access log says which protocol; HTTP/1.1 lines do not carry the field.
    const h1 = await send(url, { path: "/over-h1", ca });
    expect(h1.status).toBe(200);
    await new Promise((res) => setTimeout(res, 50));
    const lines = logs.filter((l) => l.msg === "request");
    expect(lines.find((l) => l.path === "/a/b?q=1")).toMatchObject({ protocol: "HTTP/2.0", status: 200, backend: "legacy" });
    expect(lines.find((l) => l.path === "/over-h1")).not.toHaveProperty("protocol");
  });

  it("joins split Cookie fields, forwards bodies (buffered and streamed), multiplexes 50 streams on one connection", async () => {
    await start("limits:\n  body_buffer_size: 16\n");
    const s = connect();
    const split = await request(s, { ":path": "/c", cookie: ["a=1", "b=2"] });
    expect((JSON.parse(split.body) as { cookie: string }).cookie).toBe("a=1; b=2");
    const small = await request(s, { ":path": "/post", ":method": "POST", "content-type": "text/plain" }, "hello");
    expect(JSON.parse(small.body)).toMatchObject({ body: "hello" });
    const big = "x".repeat(100_000);
    const streamed = await request(s, { ":path": "/post", ":method": "POST" }, big);
    expect((JSON.parse(streamed.body) as { body: string }).body).toHaveLength(100_000);
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => request(s, { ":path": `/m/${i}?delay=20` })));
    expect(many.map((m) => m.status)).toEqual(Array(50).fill(200));
    expect(many.map((m) => (JSON.parse(m.body) as { url: string }).url)).toEqual(Array.from({ length: 50 }, (_, i) => `/m/${i}?delay=20`));
  });

  it("curl --http2 gets an HTTP/2 answer", async () => {
    await start();
    const out = await promisify(execFile)("curl", ["-s", "-i", "--http2", "--cacert", join(dir, "cert.pem"), `https://localhost:${port}/curl`], { encoding: "utf8" });
    expect(out.stdout).toMatch(/^HTTP\/2 200 ?\r\n/);
    expect(out.stdout).toContain('"url":"/curl"');
  });

  it("announces the stream limit and the header list size from the config", async () => {
    await start("limits:\n  http2_max_concurrent_streams: 7\n  max_header_size: 8KiB\n");
    const s = connect();
    await new Promise<void>((r) => s.once("remoteSettings", () => r()));
    expect(s.remoteSettings.maxConcurrentStreams).toBe(7);
    expect(s.remoteSettings.maxHeaderListSize).toBe(8192);
  });

  it("answers its own errors on the stream, the connection's other streams unaffected", async () => {
    await start("limits:\n  max_body_size: 10\n");
    const s = connect();
    const [tooBig, ok] = await Promise.all([request(s, { ":path": "/big", ":method": "POST", "content-length": "20" }, "x".repeat(20)), request(s, { ":path": "/fine" })]);
    expect(tooBig.status).toBe(413);
    expect(JSON.parse(tooBig.body)).toMatchObject({ error: { code: "SY_BODY_TOO_LARGE" } });
    expect(tooBig.headers.connection).toBeUndefined();
    expect(ok.status).toBe(200);
    expect((await request(s, { ":path": "/after" })).status).toBe(200); // the connection goes on
  });
});

describe("h2c: HTTP/2 with prior knowledge on a plain listener", () => {
  it("serves clients that open with the HTTP/2 preface as HTTP/2 and the others as HTTP/1.1, on one port", async () => {
    const result = parseConfigText(`listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nlog:\n  access_log: true\n`, "h2c.yaml", {});
    if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
    logs = [];
    proxy = await Switchyard.start(result.config, { logger: captureLogger(logs) });
    url = proxy.urls[0]!;
    expect(url).toMatch(/^http:\/\//);
    const s = http2.connect(url);
    s.on("error", () => {});
    sessions.push(s);
    const h2c = await request(s, { ":path": "/h2c", ":method": "POST" }, "over h2c");
    expect(h2c.status).toBe(200);
    expect(JSON.parse(h2c.body)).toMatchObject({ url: "/h2c", httpVersion: "1.1", body: "over h2c" });
    expect(backend.seen.at(-1)!.headers["x-forwarded-proto"]).toBe("http");
    // HTTP/1.1 on the same port: a GET, a POST with a body, and two requests on one keep-alive connection.
    expect((await send(url, { path: "/h1" })).status).toBe(200);
    const post = await send(url, { path: "/h1-post", method: "POST", body: "hello", headers: { "content-type": "text/plain" } });
    expect(JSON.parse(post.body.toString())).toMatchObject({ body: "hello" });
    const { rawExchange } = await import("../helpers/servers.ts");
    const two = await rawExchange(Number(new URL(url).port), `GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(two.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    await waitFor(() => logs.filter((l) => l.msg === "request").length >= 5, "five request lines");
    const lines = logs.filter((l) => l.msg === "request");
    expect(lines.find((l) => l.path === "/h2c")).toMatchObject({ protocol: "HTTP/2.0" });
    expect(lines.find((l) => l.path === "/h1")).not.toHaveProperty("protocol");
  });
});

describe("HTTP/2 with workers", () => {
  it("`switchyard start --workers 2` serves HTTP/2 on its TLS listener from both workers", async () => {
    const { writeFileSync } = await import("node:fs");
    const { spawnSwitchyard } = await import("../helpers/replica.ts");
    const file = join(dir, "workers.yaml");
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`);
    const sy = await spawnSwitchyard(["start", "-c", file, "--workers", "2", "--state-file", join(dir, "workers-state.json")]);
    try {
      url = sy.url;
      // Connections are dealt round-robin: eight of them reach both workers.
      const answers = await Promise.all(Array.from({ length: 8 }, () => request(connect(), { ":path": "/w" })));
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
      let streams = 0;
      for (let t0 = Date.now(); streams < 8 && Date.now() - t0 < 5000; await new Promise((r) => setTimeout(r, 200))) {
        streams = parseProm((await send(sy.admin, { path: "/metrics" })).body.toString()).get("switchyard_http2_streams_total") ?? 0;
      }
      expect(streams).toBe(8); // summed over both workers
      // Each worker logged some of the eight, as HTTP/2.
      await waitFor(() => sy.logs.filter((l) => l.msg === "request" && l.path === "/w").length === 8, "eight request lines");
      const lines = sy.logs.filter((l) => l.msg === "request" && l.path === "/w");
      expect(lines.every((l) => l.protocol === "HTTP/2.0")).toBe(true);
      expect(new Set(lines.map((l) => l.worker)).size).toBe(2);
    } finally {
      for (const s of sessions.splice(0)) s.destroy();
      expect(await sy.stop()).toBe(0);
    }
  });
});

describe("HTTP/2 slow clients", () => {
  it("a stream whose body stalls past limits.request_timeout gets 408, then its stream is reset and the exchange logged; the connection's other streams go on", async () => {
    await start("limits:\n  header_timeout: 400ms\n  request_timeout: 400ms\n  body_timeout: 30s\n  body_buffer_size: 0\n");
    const s = connect();
    const stalled = s.request({ ":path": "/slow-upload", ":method": "POST" }, { endStream: false });
    stalled.write("part of a body");
    const status = await new Promise<number>((resolve) => stalled.once("response", (h) => resolve(Number(h[":status"]))));
    expect(status).toBe(408);
    let body = "";
    stalled.on("data", (c: Buffer) => (body += c.toString()));
    await new Promise((r) => stalled.once("end", r));
    expect(JSON.parse(body)).toMatchObject({ error: { code: "SY_REQUEST_TIMEOUT" } });
    expect((await request(s, { ":path": "/still-fine" })).status).toBe(200);
    // The stream is reset (NO_ERROR) after the answer, so the exchange ends and is logged.
    await waitFor(() => logs.some((l) => l.error === "SY_REQUEST_TIMEOUT" && l.path === "/slow-upload"), "the 408 log line");
  });
});

describe("WebSocket over HTTP/2 (RFC 8441 extended CONNECT)", () => {
  let wsBackend: import("node:http").Server;
  let wsUrl = "";
  beforeAll(async () => {
    const { createServer } = await import("node:http");
    const { WebSocketServer } = await import("ws");
    wsBackend = createServer((_req, res) => res.end("not a websocket"));
    new WebSocketServer({ server: wsBackend }).on("connection", (ws, req) => {
      ws.send(`hello ${req.headers.host} ${req.headers["x-forwarded-proto"]}`);
      ws.on("message", (m) => ws.send(`echo:${String(m)}`));
    });
    await new Promise<void>((r) => wsBackend.listen(0, "127.0.0.1", r));
    wsUrl = `http://127.0.0.1:${(wsBackend.address() as import("node:net").AddressInfo).port}`;
  });
  afterAll(async () => {
    wsBackend.closeAllConnections();
    await new Promise((r) => wsBackend.close(r));
  });

  /** A masked client text frame, and the text of unmasked server frames in `buf`. */
  const clientFrame = (text: string) => {
    const payload = Buffer.from(text);
    const mask = Buffer.from([1, 2, 3, 4]);
    return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
  };
  const serverTexts = (buf: Buffer) => {
    const out: string[] = [];
    for (let i = 0; i + 2 <= buf.length; ) {
      const len = buf[i + 1]! & 0x7f;
      if ((buf[i]! & 0x0f) === 1) out.push(buf.subarray(i + 2, i + 2 + len).toString());
      i += 2 + len;
    }
    return out;
  };

  it("announces extended CONNECT, tunnels to the backend as an HTTP/1.1 upgrade, and both ways work; shutdown closes it with 1001", async () => {
    const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${wsUrl}\n  new:\n    url: ${wsUrl}\nadmin:\n  port: 0\nlog:\n  access_log: true\n`;
    const result = parseConfigText(text, "h2ws.yaml", {});
    if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
    logs = [];
    proxy = await Switchyard.start(result.config, { logger: captureLogger(logs) });
    url = proxy.urls[0]!;
    const s = connect();
    await new Promise<void>((r) => s.once("remoteSettings", () => r()));
    expect(s.remoteSettings.enableConnectProtocol).toBe(true);
    const stream = s.request({ ":method": "CONNECT", ":protocol": "websocket", ":scheme": "https", ":path": "/ws", ":authority": new URL(url).host, "sec-websocket-version": "13" }, { endStream: false });
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => stream.once("response", resolve).once("error", reject));
    expect(head[":status"]).toBe(200);
    expect(head["sec-websocket-accept"]).toBeUndefined();
    let got = Buffer.alloc(0);
    stream.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    stream.write(clientFrame("hi"));
    await waitFor(() => serverTexts(got).length >= 2, "the greeting and the echo", 3000);
    expect(serverTexts(got)).toEqual([`hello ${new URL(url).host} https`, "echo:hi"]);
    // The backend saw an ordinary HTTP/1.1 WebSocket handshake.
    const closed = new Promise<void>((r) => stream.once("close", () => r()));
    await proxy!.shutdown(1000);
    proxy = null;
    await closed;
    expect(got.subarray(-4).equals(Buffer.from([0x88, 0x02, 0x03, 0xe9]))).toBe(true); // close 1001 going away
  });
});

describe("HTTP/2 downgrade safety: what could be read two ways is never forwarded", () => {
  const authority = () => `127.0.0.1:${port}`;
  const END_STREAM_HEADERS = 0x1 | 0x4;
  const cases: [string, () => Buffer[]][] = [
    ["an uppercase field name", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["X-Smuggle", "1"]]))]],
    ["Connection", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["connection", "keep-alive"]]))]],
    ["Transfer-Encoding", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority(), "/", "POST"), ["transfer-encoding", "chunked"]]))]],
    ["Upgrade", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["upgrade", "websocket"]]))]],
    ["Keep-Alive", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["keep-alive", "timeout=5"]]))]],
    ["Proxy-Connection", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["proxy-connection", "close"]]))]],
    ["TE other than trailers", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["te", "gzip"]]))]],
    ["a pseudo-header after a regular field", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([[":method", "GET"], [":scheme", "https"], ["x-a", "1"], [":authority", authority()], [":path", "/"]]))]],
    ["Content-Length larger than the DATA", () => [frame(FRAME.HEADERS, 0x4, 1, headerBlock([...pseudo(authority(), "/cl", "POST"), ["content-length", "10"]])), frame(FRAME.DATA, 0x1, 1, Buffer.from("12345"))]],
    ["Content-Length smaller than the DATA", () => [frame(FRAME.HEADERS, 0x4, 1, headerBlock([...pseudo(authority(), "/cl", "POST"), ["content-length", "3"]])), frame(FRAME.DATA, 0x1, 1, Buffer.from("12345"))]],
    ["Host disagreeing with :authority", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["host", "evil.example"]]))]],
    ["two Host fields", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([[":method", "GET"], [":scheme", "https"], [":path", "/"], ["host", "a.example"], ["host", "b.example"]]))]],
    ["no :authority and no Host", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([[":method", "GET"], [":scheme", "https"], [":path", "/"]]))]],
    ["no :path", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([[":method", "GET"], [":scheme", "https"], [":authority", authority()]]))]],
  ];

  it.each(cases)("%s: refused (stream reset or 400), nothing reaches the backend", async (_name, build) => {
    if (proxy === null) await start();
    const before = backend.seen.length;
    const answer = await rawH2(port, build(), { ca });
    expect(answer.reset || answer.goaway || answer.status === 400, JSON.stringify(answer.frames.map((f) => [f.type, f.stream]))).toBe(true);
    expect(answer.status).not.toBe(200);
    expect(backend.seen.length).toBe(before);
  });

  // Fields nghttp2 drops as it reads them (nginx's ignore_invalid_headers does the same): the request
  // goes on without them, and nothing of them - no injected line, no split name - reaches the backend.
  const droppedCases: [string, () => Buffer[]][] = [
    ["CR LF in a value", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["x-a", "1\r\nx-b: 2"]]))]],
    ["a bare LF in a value", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["x-a", "1\nx-b: 2"]]))]],
    ["NUL in a value", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["x-a", "1\u0000"]]))]],
    ["a colon inside a field name", () => [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority()), ["x-a:b", "1"]]))]],
  ];

  it.each(droppedCases)("%s: the field is dropped, nothing of it reaches the backend", async (_name, build) => {
    if (proxy === null) await start();
    const before = backend.seen.length;
    const answer = await rawH2(port, build(), { ca });
    expect(answer.status).toBe(200);
    expect(backend.seen.length).toBe(before + 1);
    const names = backend.seen.at(-1)!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain("x-a");
    expect(names).not.toContain("x-b");
    expect(names.filter((n) => n.startsWith("x-a"))).toEqual([]);
  });

  it("a well-formed request through the same raw client is served (the cases above fail for their field, not the client)", async () => {
    await start();
    const answer = await rawH2(port, [frame(FRAME.HEADERS, END_STREAM_HEADERS, 1, headerBlock([...pseudo(authority(), "/raw-ok"), ["x-fine", "1"]]))], { ca });
    expect(answer.status).toBe(200);
    expect(backend.seen.at(-1)!.url).toBe("/raw-ok");
  });
});

describe("HTTP/2 abuse and shutdown", () => {
  it("rapid reset: a client opening and cancelling streams past the configured burst gets GOAWAY and loses its connection; counted", async () => {
    await start("limits:\n  http2_reset_burst: 20\n  http2_reset_rate: 1\n");
    // HEADERS then RST_STREAM(CANCEL) for stream after stream, as the attack does.
    const attack = (n: number) =>
      Array.from({ length: n }, (_, i) => {
        const id = 1 + 2 * i;
        const cancel = Buffer.alloc(4);
        cancel.writeUInt32BE(http2.constants.NGHTTP2_CANCEL);
        return [frame(FRAME.HEADERS, 0x1 | 0x4, id, headerBlock(pseudo(`127.0.0.1:${port}`, `/r/${i}`))), frame(FRAME.RST_STREAM, 0, id, cancel)];
      }).flat();
    const within = await rawH2(port, attack(15), { ca });
    expect(within.goaway).toBe(false); // 15 resets: under the burst
    const flood = await rawH2(port, attack(200), { ca });
    expect(flood.goaway).toBe(true);
    const goaway = flood.frames.find((f) => f.type === FRAME.GOAWAY)!;
    expect(goaway.payload.readUInt32BE(0) & 0x7fffffff).toBeLessThan(2 * 200); // streams after the cut were not taken
    const m = parseProm(await proxy!.metrics.registry.metrics());
    expect(m.get("switchyard_http2_protocol_errors_total")).toBe(1);
    expect(m.get("switchyard_http2_streams_total")).toBeGreaterThan(0);
    // A well-behaved client on a new connection is served.
    const after = await request(connect(), { ":path": "/after-flood" });
    expect(after.status, `${after.body} inflight=${proxy!.state.inflight} active=${proxy!.state.pools.get(Object.values(proxy!.snapshot.backends)[0]!).gate.active}`).toBe(200);
  });

  it("shutdown sends GOAWAY: the stream in flight finishes with its answer, no new stream starts", async () => {
    await start("shutdown:\n  drain_timeout: 5s\n");
    const s = connect();
    await request(s, { ":path": "/warm" });
    let goaway = false;
    s.once("goaway", () => (goaway = true));
    const slow = request(s, { ":path": "/slow?delay=400" });
    await new Promise((r) => setTimeout(r, 100));
    const stopping = proxy!.shutdown(5000);
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect((await stopping).drained).toBe(true);
    proxy = null;
    expect(goaway).toBe(true);
  });
});
