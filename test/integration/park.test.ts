// Idle keep-alive connections parked (their HTTP parser handed back) and woken by their next bytes:
// every kind of next request still gets its right answer, deadlines still hold while parked and
// after, and a shutdown closes parked connections at once. The tests sweep by hand
// (park_idle_connections_after: 0 arms no timer): a connection is parked on the second sweep that
// finds it idle with no request in between.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { parseConfigText } from "../../src/config/load.ts";
import type { IdleParker } from "../../src/proxy/park.ts";
import { startBackend, startProxy, startProxyWithConfig, waitFor, type TestBackend, type TestProxy } from "../helpers/servers.ts";
import { selfSigned } from "../helpers/tls.ts";

/** A client connection read by hand: responses parsed by content-length, in order. */
class Conn {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      this.#wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.#wake?.();
    });
    socket.on("error", () => undefined);
  }

  static async open(port: number, secure = false): Promise<Conn> {
    const socket = secure ? tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }) : net.connect(port, "127.0.0.1");
    await once(socket, secure ? "secureConnect" : "connect");
    return new Conn(socket);
  }

  send(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** The next whole response (status, headers, body), or null when the connection closed first. */
  async response(): Promise<{ status: number; headers: Record<string, string>; body: string } | null> {
    for (;;) {
      const end = this.#buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        const head = this.#buf.subarray(0, end).toString("latin1").split("\r\n");
        const headers: Record<string, string> = {};
        for (const line of head.slice(1)) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 1).trim();
        const length = Number(headers["content-length"] ?? 0);
        if (this.#buf.length >= end + 4 + length) {
          const body = this.#buf.subarray(end + 4, end + 4 + length).toString("utf8");
          this.#buf = this.#buf.subarray(end + 4 + length);
          return { status: Number(head[0]!.split(" ")[1]), headers, body };
        }
      }
      if (this.closed) return null;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }

  async get(path: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    this.send(`GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`);
    const r = await this.response();
    if (r === null) throw new Error(`connection closed before the answer to GET ${path}`);
    return r;
  }

  async waitClosed(ms = 5000): Promise<void> {
    await waitFor(() => this.closed, "the proxy to close the connection", ms);
  }
}

const parkerOf = (p: TestProxy): IdleParker => p.app.listeners[0]!.parker!;

/** A proxy with one listener (`listener`: its extra lines, e.g. tls or http2) and `extra` top-level YAML. */
async function proxyWith(backendUrl: string, listener: string, extra: string): Promise<TestProxy> {
  const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\n${listener}backends:\n  legacy:\n    url: ${backendUrl}\n  new:\n    url: ${backendUrl}\nadmin:\n  port: 0\n${extra}`;
  const loaded = parseConfigText(text, "park.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  return startProxyWithConfig(loaded.config);
}

/** The listener lines of a TLS listener with a fresh self-signed certificate. */
function tlsListener(): string {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-park-tls-"));
  const { key, cert } = selfSigned();
  writeFileSync(join(dir, "key.pem"), key);
  writeFileSync(join(dir, "cert.pem"), cert);
  return `    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\n`;
}
const sweep2 = (p: TestProxy) => {
  parkerOf(p).sweep();
  parkerOf(p).sweep();
};

describe("idle keep-alive connections give their parser back and take a new one", () => {
  let backend: TestBackend;
  let proxy: TestProxy;
  const conns: Conn[] = [];
  const bodies: string[] = [];

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        bodies.push(body);
        const out = JSON.stringify({ url: req.url, method: req.method, bytes: Buffer.byteLength(body), xff: req.headers["x-forwarded-for"] ?? null });
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
        res.end(out);
      });
    });
    proxy = await startProxy("memory:\n  park_idle_connections_after: 0s\nlimits:\n  header_timeout: 800ms\n", backend.url);
  });
  afterAll(async () => {
    for (const c of conns) c.socket.destroy();
    await proxy?.close();
    await backend?.close();
  });
  const open = async () => {
    const c = await Conn.open(proxy.port);
    conns.push(c);
    return c;
  };

  it("parks only a connection idle at two sweeps in a row with no request between them", async () => {
    const c = await open();
    expect((await c.get("/a")).status).toBe(200);
    const p = parkerOf(proxy);
    const before = p.parks;
    p.sweep();
    expect(p.parks).toBe(before); // seen idle once: not yet
    expect((await c.get("/b")).status).toBe(200); // a request between the sweeps
    p.sweep();
    expect(p.parks).toBe(before);
    p.sweep();
    expect(p.parks).toBe(before + 1);
    expect(p.parked).toBeGreaterThanOrEqual(1);
  });

  it("a parked connection's next requests are answered as on a fresh one, through several park/wake cycles", async () => {
    const c = await open();
    const p = parkerOf(proxy);
    for (let round = 0; round < 4; round++) {
      const r = await c.get(`/round/${round}?q=${round}`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ url: `/round/${round}?q=${round}`, method: "GET", xff: "127.0.0.1" });
      expect(r.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
      const wakes = p.wakes;
      sweep2(proxy);
      expect(p.parked).toBeGreaterThanOrEqual(1);
      const again = await c.get("/after-park");
      expect(again.status).toBe(200);
      expect(p.wakes).toBe(wakes + 1);
    }
    expect(c.closed).toBe(false);
  });

  it("pipelined requests arriving together after a park are all answered, in order", async () => {
    const c = await open();
    await c.get("/first");
    sweep2(proxy);
    c.send("GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\nGET /p3 HTTP/1.1\r\nHost: t\r\n\r\n");
    const urls = [];
    for (let i = 0; i < 3; i++) urls.push(JSON.parse((await c.response())!.body).url);
    expect(urls).toEqual(["/p1", "/p2", "/p3"]);
  });

  it("a chunked POST whose head and body come in separate writes after a park reaches the backend whole", async () => {
    const c = await open();
    await c.get("/first");
    sweep2(proxy);
    c.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n");
    await new Promise((r) => setTimeout(r, 50));
    c.send("\r\n5\r\nhello\r\n");
    await new Promise((r) => setTimeout(r, 50));
    c.send("6\r\n world\r\n0\r\n\r\n");
    const r = await c.response();
    expect(JSON.parse(r!.body)).toMatchObject({ method: "POST", bytes: 11 });
    expect(bodies.at(-1)).toBe("hello world");
  });

  it("after a park the header deadline applies to the next request: a slow header block gets 408 and the connection closes", async () => {
    const c = await open();
    await c.get("/first");
    sweep2(proxy);
    c.send("GET /slow HTTP/1.1\r\nHost: t\r\n"); // never finished
    const r = await c.response();
    expect(r?.status).toBe(408);
    await c.waitClosed();
  });

  it("bytes that are not HTTP after a park: 400 and the connection closes", async () => {
    const c = await open();
    await c.get("/first");
    sweep2(proxy);
    c.send("THIS IS NOT HTTP\r\n\r\n");
    const r = await c.response();
    expect(r?.status).toBe(400);
    await c.waitClosed();
  });

  it("a client that half-closes or goes away while parked is let go: nothing stays parked", async () => {
    const a = await open();
    const b = await open();
    await a.get("/a");
    await b.get("/b");
    sweep2(proxy);
    const p = parkerOf(proxy);
    const parked = p.parked;
    a.socket.end();
    b.socket.destroy();
    await a.waitClosed();
    await waitFor(() => p.parked <= parked - 2, "both to leave the parked set");
  });

  it("the gauge counts parked connections", async () => {
    const c = await open();
    await c.get("/m");
    sweep2(proxy);
    const text = await proxy.app.metrics.registry.metrics();
    const value = Number(/^switchyard_client_connections_parked (\d+)$/m.exec(text)?.[1]);
    expect(value).toBe(parkerOf(proxy).parked);
    expect(value).toBeGreaterThanOrEqual(1);
  });
});

describe("deadlines and shutdown with parked connections", () => {
  let backend: TestBackend;
  beforeAll(async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
  });
  afterAll(() => backend?.close());

  it("limits.keep_alive_timeout still closes a parked connection", async () => {
    const proxy = await startProxy("memory:\n  park_idle_connections_after: 0s\nlimits:\n  keep_alive_timeout: 600ms\n", backend.url);
    try {
      const c = await Conn.open(proxy.port);
      await c.get("/");
      sweep2(proxy);
      expect(parkerOf(proxy).parked).toBe(1);
      await c.waitClosed(5000);
      await waitFor(() => parkerOf(proxy).parked === 0, "the parked set to empty");
    } finally {
      await proxy.close();
    }
  });

  it("a shutdown closes parked connections at once and drains", async () => {
    const proxy = await startProxy("memory:\n  park_idle_connections_after: 0s\n", backend.url);
    const conns = await Promise.all([0, 1, 2].map(() => Conn.open(proxy.port)));
    for (const c of conns) await c.get("/");
    sweep2(proxy);
    expect(parkerOf(proxy).parked).toBe(3);
    const t0 = Date.now();
    const result = await proxy.app.shutdown(20_000);
    expect(result.drained).toBe(true);
    for (const c of conns) await c.waitClosed(1000);
    expect(Date.now() - t0).toBeLessThan(15_000); // not the 75 s keep-alive, nor the drain deadline
  });

  it("the timer parks on its own when park_idle_connections_after is set, and a reload can turn it off", async () => {
    const proxy = await startProxy("memory:\n  park_idle_connections_after: 100ms\n", backend.url);
    try {
      const c = await Conn.open(proxy.port);
      await c.get("/");
      await waitFor(() => parkerOf(proxy).parked === 1, "the connection to be parked by the timer", 5000);
      expect((await c.get("/again")).status).toBe(200);
      const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nmemory:\n  park_idle_connections_after: 0s\n`;
      const loaded = parseConfigText(text, "t.yaml", {});
      if (!loaded.ok) throw new Error("config");
      proxy.app.applyConfig(loaded.config, proxy.app.snapshot.config);
      const parks = parkerOf(proxy).parks;
      await new Promise((r) => setTimeout(r, 400));
      expect(parkerOf(proxy).parks).toBe(parks);
    } finally {
      await proxy.close();
    }
  });
});

describe("parking on the other kinds of listener", () => {
  let backend: TestBackend;
  let wsBackend: http.Server;
  let wsUrl: string;
  const proxies: TestProxy[] = [];
  beforeAll(async () => {
    backend = await startBackend((req, res) => res.end(`ok ${req.url}`));
    wsBackend = http.createServer((_q, s) => s.end("plain"));
    const wss = new WebSocketServer({ server: wsBackend });
    wss.on("connection", (sock) => sock.on("message", (m) => sock.send(`echo: ${m.toString()}`)));
    await new Promise<void>((r) => wsBackend.listen(0, "127.0.0.1", r));
    wsUrl = `http://127.0.0.1:${(wsBackend.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const p of proxies) await p.close();
    await backend?.close();
    wsBackend?.closeAllConnections();
    await new Promise((r) => wsBackend?.close(r));
  });

  it("a WebSocket upgrade on a woken connection is tunnelled", async () => {
    const proxy = await startProxy("memory:\n  park_idle_connections_after: 0s\nwebsocket:\n  enabled: true\n", wsUrl);
    proxies.push(proxy);
    const c = await Conn.open(proxy.port);
    expect((await c.get("/plain")).status).toBe(200);
    sweep2(proxy);
    expect(parkerOf(proxy).parked).toBe(1);
    // The same TCP connection, handed to ws as an already-open socket.
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/chat`, { createConnection: () => c.socket.removeAllListeners("data") && c.socket });
    await once(ws, "open");
    ws.send("hi");
    const [msg] = (await once(ws, "message")) as [Buffer];
    expect(msg.toString()).toBe("echo: hi");
    ws.close();
  });

  it("over TLS: parked and woken like cleartext", async () => {
    const proxy = await proxyWith(backend.url, tlsListener(), "memory:\n  park_idle_connections_after: 0s\n");
    proxies.push(proxy);
    const c = await Conn.open(proxy.port, true);
    expect((await c.get("/one")).body).toBe("ok /one");
    sweep2(proxy);
    expect(parkerOf(proxy).parked).toBe(1);
    expect((await c.get("/two")).body).toBe("ok /two");
    sweep2(proxy);
    expect((await c.get("/three")).body).toBe("ok /three");
    expect(parkerOf(proxy).wakes).toBe(2);
    c.socket.destroy();
  });

  it("over TLS, a client silent before its handshake or after it is closed after header_timeout", async () => {
    const proxy = await proxyWith(backend.url, tlsListener(), "limits:\n  header_timeout: 400ms\n");
    proxies.push(proxy);
    const raw = net.connect(proxy.port, "127.0.0.1");
    raw.on("error", () => undefined);
    const shaken = await Conn.open(proxy.port, true);
    await Promise.all([once(raw, "close"), shaken.waitClosed(5000)]);
    // One that asked in time is answered.
    const c = await Conn.open(proxy.port, true);
    expect((await c.get("/in-time")).body).toBe("ok /in-time");
    c.socket.destroy();
  });

  it("on a cleartext listener that also takes HTTP/2 (h2c): HTTP/1.1 connections park and wake", async () => {
    const h2c = await proxyWith(backend.url, "    http2: true\n", "memory:\n  park_idle_connections_after: 0s\n");
    proxies.push(h2c);
    const c = await Conn.open(h2c.port);
    expect((await c.get("/x")).body).toBe("ok /x");
    sweep2(h2c);
    expect(parkerOf(h2c).parked).toBe(1);
    expect((await c.get("/y")).body).toBe("ok /y");
    c.socket.destroy();
  });
});
