// WebSocket through the proxy with real `ws` clients and servers: echo, large messages, subprotocols,
// refusals that must not become tunnels, closes in both directions, stickiness, limits, drain.
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { json, send } from "../helpers/client.ts";
import { rawExchange, startProxy, waitFor, type TestProxy } from "../helpers/servers.ts";
import { configFrom } from "../helpers/routing.ts";

interface WsBackend {
  name: string;
  url: string;
  wss: WebSocketServer;
  server: http.Server;
  /** Sockets the backend holds (to check the proxy closed them). */
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

/** An HTTP + WebSocket backend that stamps its name on every answer and echoes messages. */
async function wsBackend(name: string, opts: { handleProtocols?: (p: Set<string>) => string | false } = {}): Promise<WsBackend> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ backend: name, path: req.url }));
  });
  const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024, perMessageDeflate: true, ...(opts.handleProtocols && { handleProtocols: opts.handleProtocols }) });
  const sockets = new Set<WebSocket>();
  wss.on("connection", (ws, req) => {
    sockets.add(ws);
    ws.on("close", () => sockets.delete(ws));
    ws.send(JSON.stringify({ hello: name, protocol: ws.protocol, xff: req.headers["x-forwarded-for"], requestId: req.headers["x-request-id"] }));
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    name,
    url,
    wss,
    server,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function open(url: string, opts: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<{ ws: WebSocket; hello: Record<string, unknown>; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), opts.protocols ?? [], { maxPayload: 64 * 1024 * 1024, ...opts });
    let res: http.IncomingMessage;
    ws.once("upgrade", (r) => (res = r));
    ws.once("message", (data) => resolve({ ws, hello: JSON.parse(String(data)) as Record<string, unknown>, res }));
    ws.once("error", reject);
  });
}

const nextMessage = (ws: WebSocket) => new Promise<{ data: Buffer; binary: boolean }>((r) => ws.once("message", (data, binary) => r({ data: data as Buffer, binary })));
const closed = (ws: WebSocket) => new Promise<{ code: number; at: number }>((r) => ws.once("close", (code) => r({ code, at: Date.now() })));

let legacy: WsBackend;
let neu: WsBackend;
let proxy: TestProxy;
const cleanup: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
  await proxy?.close();
  await legacy?.close();
  await neu?.close();
});

async function setup(yaml = "", backendOpts: Parameters<typeof wsBackend>[1] = {}) {
  legacy = await wsBackend("legacy", backendOpts);
  neu = await wsBackend("new", backendOpts);
  proxy = await startProxy(yaml, legacy.url, neu.url);
}

describe("websocket tunnels", () => {
  it("echoes text and binary, with X-Forwarded-For and the request id on the handshake", async () => {
    await setup();
    const { ws, hello, res } = await open(`${proxy.url}/ws`);
    cleanup.push(() => ws.terminate());
    expect(hello).toMatchObject({ hello: "legacy", xff: "127.0.0.1" });
    expect(res.headers["x-request-id"]).toBe(hello.requestId);
    ws.send("text message");
    expect(await nextMessage(ws)).toEqual({ data: Buffer.from("text message"), binary: false });
    const bin = Buffer.from([0, 1, 2, 250, 255]);
    ws.send(bin);
    expect(await nextMessage(ws)).toEqual({ data: bin, binary: true });
    // Plain TCP both sides: the tunnel reads into reused buffers (relay.ts), not through pipe().
    expect([...proxy.app.tunnels.open].map((t) => t.reusesBuffers)).toEqual([true]);
  });

  it("carries a 16 MiB message both ways intact", async () => {
    await setup();
    const { ws } = await open(`${proxy.url}/ws`);
    cleanup.push(() => ws.terminate());
    const big = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    ws.send(big);
    const echoed = await nextMessage(ws);
    expect(echoed.data.length).toBe(big.length);
    expect(echoed.data.equals(big)).toBe(true);
  });

  it("negotiates subprotocols and extensions end to end", async () => {
    await setup("", { handleProtocols: (p) => (p.has("chat.v2") ? "chat.v2" : false) });
    const { ws, hello, res } = await open(`${proxy.url}/ws`, { protocols: ["chat.v1", "chat.v2"], perMessageDeflate: true });
    cleanup.push(() => ws.terminate());
    expect(ws.protocol).toBe("chat.v2");
    expect(hello.protocol).toBe("chat.v2");
    expect(ws.extensions).toContain("permessage-deflate");
    expect(res.headers["sec-websocket-extensions"]).toContain("permessage-deflate");
    ws.send("compressed ".repeat(1000));
    expect(String((await nextMessage(ws)).data)).toBe("compressed ".repeat(1000));
  });

  it("forwards a backend's refusal as a plain response and never tunnels", async () => {
    legacy = await wsBackend("legacy");
    neu = await wsBackend("new");
    const refusing = http.createServer((_req, res) => res.writeHead(403, { "content-type": "text/plain" }).end("no websockets here"));
    refusing.on("upgrade", (_req, socket) => socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nno websockets here"));
    await new Promise<void>((r) => refusing.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => refusing.close(() => r())));
    proxy = await startProxy("", `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`, neu.url);
    const key = Buffer.alloc(16, 1).toString("base64");
    const out = await rawExchange(proxy.port, `GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\nAFTER`);
    expect(out).toMatch(/^HTTP\/1.1 403 Forbidden\r\n/);
    expect(out).toContain("no websockets here");
    // (Not just "101": the random X-Request-Id may contain those digits.)
    expect(out).not.toMatch(/ 101 |Switching Protocols/);
    expect(proxy.app.tunnels.open.size).toBe(0);
    await waitFor(() => proxy.accessLogs().length === 1, "the log line");
    expect(proxy.accessLogs()[0]).toMatchObject({ status: 403 });
  });

  it("refuses a 101 that does not accept the client's key (no smuggled tunnel)", async () => {
    const rogue = net.createServer((s) => s.once("data", () => s.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bogus\r\n\r\nRAW")));
    await new Promise<void>((r) => rogue.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => rogue.close(() => r())));
    proxy = await startProxy("", `http://127.0.0.1:${(rogue.address() as AddressInfo).port}`);
    const key = Buffer.alloc(16, 2).toString("base64");
    const out = await rawExchange(proxy.port, `GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1.1 502 /);
    expect(out).not.toContain("RAW");
    expect(proxy.app.tunnels.open.size).toBe(0);
  });

  it("answers 504 when the backend does not answer the handshake within websocket.handshake_timeout", async () => {
    const held = new Set<net.Socket>();
    const silent = net.createServer((s) => held.add(s)); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => {
      for (const s of held) s.destroy();
      silent.close(() => r());
    }));
    proxy = await startProxy("websocket:\n  handshake_timeout: 300ms\n", `http://127.0.0.1:${(silent.address() as AddressInfo).port}`);
    const key = Buffer.alloc(16, 3).toString("base64");
    const out = await rawExchange(proxy.port, `GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`, 2000);
    expect(out).toMatch(/^HTTP\/1.1 504 /);
    expect(proxy.app.tunnels.active).toEqual({ legacy: 0, new: 0 });
  });

  it("rejects a malformed handshake with 400 and serves Upgrade: h2c as plain HTTP", async () => {
    await setup();
    const bad = await rawExchange(proxy.port, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect(bad).toMatch(/^HTTP\/1.1 400 /);
    expect(bad).toContain("Sec-WebSocket-Key");
    const h2c = await rawExchange(proxy.port, "GET /plain HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    expect(h2c).toMatch(/^HTTP\/1.1 200 /);
    expect(h2c).toContain('"backend":"legacy"');
  });

  it("closes the client within a second when the backend dies mid-stream", async () => {
    await setup();
    const { ws } = await open(`${proxy.url}/ws`);
    const gone = closed(ws);
    const killedAt = Date.now();
    for (const s of legacy.sockets) s.terminate(); // the backend's TCP connection drops
    const { at } = await gone;
    expect(at - killedAt).toBeLessThan(1000);
    await waitFor(() => proxy.app.tunnels.open.size === 0, "the tunnel to be gone");
  });

  it("closes the client within a second when the backend process is SIGKILLed", async () => {
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, [new URL("../../bench/targets/ws-backend.ts", import.meta.url).pathname], { stdio: ["ignore", "pipe", "inherit"] });
    cleanup.push(() => child.kill("SIGKILL"));
    const backendUrl = await new Promise<string>((resolve) => child.stdout!.on("data", (d: Buffer) => {
      const m = /READY (\S+)/.exec(String(d));
      if (m) resolve(m[1]!);
    }));
    proxy = await startProxy("", backendUrl);
    const ws = new WebSocket(`${proxy.url.replace("http", "ws")}/ws`);
    await new Promise((r) => ws.once("open", r));
    ws.send("ping");
    expect(String((await nextMessage(ws)).data)).toBe("ping");
    const gone = closed(ws);
    const killedAt = Date.now();
    child.kill("SIGKILL");
    const { code, at } = await gone;
    expect(code).toBe(1006); // abnormal closure: the backend vanished without a close frame
    expect(at - killedAt).toBeLessThan(1000);
    await waitFor(() => proxy.app.tunnels.open.size === 0, "the tunnel to be gone");
  });

  it("closes the backend socket when the client goes away", async () => {
    await setup();
    const { ws } = await open(`${proxy.url}/ws`);
    await waitFor(() => legacy.sockets.size === 1, "the backend socket");
    ws.terminate();
    await waitFor(() => legacy.sockets.size === 0, "the backend socket to close");
    await waitFor(() => proxy.accessLogs().some((l) => l.status === 101), "the tunnel log line");
    const line = proxy.accessLogs().find((l) => l.status === 101)!;
    expect(line).toMatchObject({ backend: "legacy", method: "GET", path: "/ws" });
    expect(line.bytes_out).toBeGreaterThan(0);
  });

  it("puts a user on the same backend for WebSocket as for HTTP (cookie and query identities)", async () => {
    await setup("routing:\n  identity:\n    sources: [{header: X-User-Id}, {query: user_id}, sticky_cookie]\nfeatures:\n  live:\n    routes: ['/api/**', '/ws']\n    target: { percent: 50 }\n");
    let both = 0;
    for (let i = 0; i < 24; i++) {
      const user = `user-${i}`;
      const http1 = json(await send(proxy.url, { path: "/api/1/x", headers: { "x-user-id": user } })).backend;
      const { ws, hello } = await open(`${proxy.url}/ws?user_id=${user}`);
      ws.terminate();
      expect(hello.hello, user).toBe(http1);
      if (http1 === "new") both++;
    }
    expect(both).toBeGreaterThan(0);
    expect(both).toBeLessThan(24);
    // A browser: the polling request gets the sticky cookie, the WebSocket carries it back.
    const first = await send(proxy.url, { path: "/api/socket.io/?EIO=4&transport=polling" });
    const cookie = (first.headers["set-cookie"] as string[])[0]!.split(";")[0]!;
    const { ws, hello } = await open(`${proxy.url}/ws`, { headers: { cookie } });
    ws.terminate();
    expect(hello.hello).toBe(json(first).backend);
  });

  it("refuses upgrades past websocket.max_tunnels with 503", async () => {
    await setup("websocket:\n  max_tunnels: 2\n");
    const a = await open(`${proxy.url}/ws`);
    const b = await open(`${proxy.url}/ws`);
    cleanup.push(() => a.ws.terminate(), () => b.ws.terminate());
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${proxy.url.replace("http", "ws")}/ws`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode!));
      ws.on("error", () => {});
    });
    expect(refused).toBe(503);
    a.ws.terminate();
    await waitFor(() => proxy.app.tunnels.open.size === 1, "a slot to free");
    const c = await open(`${proxy.url}/ws`);
    c.ws.terminate();
  });

  it("closes idle tunnels after websocket.idle_timeout with 1001", async () => {
    await setup("websocket:\n  idle_timeout: 300ms\n");
    const { ws } = await open(`${proxy.url}/ws`);
    expect((await closed(ws)).code).toBe(1001);
  });

  it("lets tunnels finish on shutdown, then closes them with 1001 at the drain deadline", async () => {
    await setup();
    const { ws } = await open(`${proxy.url}/ws`);
    const gone = closed(ws);
    const shutdown = proxy.app.shutdown(400);
    // Still usable during the drain.
    ws.send("during drain");
    expect(String((await nextMessage(ws)).data)).toBe("during drain");
    // No new upgrades: the listener is closed.
    await expect(open(`${proxy.url}/ws`)).rejects.toThrow();
    expect((await gone).code).toBe(1001);
    expect(await shutdown).toMatchObject({ drained: false, cut: 1 });
    expect(proxy.app.tunnels.open.size).toBe(0);
  });

  describe("config change while tunnels are open", () => {
    const cfg = (percent: number, policy: string) =>
      configFrom(`routing:\n  identity:\n    sources: [{query: user}]\nwebsocket:\n  move_drain_timeout: 300ms\nfeatures:\n  live:\n    routes: ['/ws']\n    target: { percent: ${percent} }\n    tunnels_on_move: ${policy}\n`);

    async function twoUsers(policy: string) {
      await setup(`routing:\n  identity:\n    sources: [{query: user}]\nfeatures:\n  live:\n    routes: ['/ws']\n    target: { percent: 100 }\n    tunnels_on_move: ${policy}\n`);
      const a = await open(`${proxy.url}/ws?user=a`);
      const b = await open(`${proxy.url}/ws?user=b`);
      cleanup.push(() => a.ws.terminate(), () => b.ws.terminate());
      expect([a.hello.hello, b.hello.hello]).toEqual(["new", "new"]);
      return [a.ws, b.ws] as const;
    }

    const withBackends = (c: ReturnType<typeof cfg>) => ({ ...c, backends: { legacy: { ...c.backends.legacy, url: legacy.url }, new: { ...c.backends.new, url: neu.url } } });

    it("keep (default): a rollback leaves open tunnels where they are", async () => {
      const [a, b] = await twoUsers("keep");
      const result = proxy.app.applyConfig(withBackends(cfg(0, "keep")));
      expect(result.tunnels).toEqual({ kept: 2, draining: 0, closed: 0 });
      a.send("still here");
      expect(String((await nextMessage(a)).data)).toBe("still here");
      expect(b.readyState).toBe(WebSocket.OPEN);
      // New connections follow the new decision.
      const c = await open(`${proxy.url}/ws?user=a`);
      c.ws.terminate();
      expect(c.hello.hello).toBe("legacy");
    });

    it("close: moved users' tunnels close with 1012 at once, so clients reconnect to the new backend", async () => {
      const [a, b] = await twoUsers("close");
      const codes = Promise.all([closed(a), closed(b)]);
      expect(proxy.app.applyConfig(withBackends(cfg(0, "close"))).tunnels).toEqual({ kept: 0, draining: 0, closed: 2 });
      expect((await codes).map((c) => c.code)).toEqual([1012, 1012]);
    });

    it("drain: moved tunnels close with 1012 after move_drain_timeout; unmoved ones stay", async () => {
      const [a] = await twoUsers("drain");
      const startedAt = Date.now();
      const gone = closed(a);
      expect(proxy.app.applyConfig(withBackends(cfg(0, "drain"))).tunnels).toEqual({ kept: 0, draining: 2, closed: 0 });
      a.send("draining but open");
      expect(String((await nextMessage(a)).data)).toBe("draining but open");
      const { code, at } = await gone;
      expect(code).toBe(1012);
      expect(at - startedAt).toBeGreaterThanOrEqual(250);
    });
  });
});
