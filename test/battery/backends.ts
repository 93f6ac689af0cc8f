// Backends for the battery (RELIABILITY.md): real servers on 127.0.0.1 that record everything they
// receive — each request as their HTTP parser read it, and every raw byte on every connection — so a
// test can say exactly what crossed the proxy. Used by the tests and by bench/battery.ts alike.
import http from "node:http";
import net, { type AddressInfo } from "node:net";

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** The body arrived whole (false: the proxy aborted the request mid-body). */
  complete: boolean;
}

export interface SeenConnection {
  /** Raw bytes received on it. */
  readonly bytes: Buffer[];
  closed: boolean;
}

export interface RecordingBackend {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  /** Every connection since the last reset, with the raw bytes it carried. */
  readonly conns: SeenConnection[];
  /** Connections open now, and the most ever open at once. */
  readonly connections: { open: number; max: number; total: number };
  /** Everything received, as one latin1 string (for "did this marker ever arrive"). */
  rawText(): string;
  reset(): void;
  close(): Promise<void>;
}

/**
 * A Node HTTP server behind a recording TCP relay. It answers `{"backend", "url", "bytes"}` after
 * reading the body; `/slow/<ms>` waits that long first; `/hang...` never answers.
 */
export async function recordingBackend(name: string): Promise<RecordingBackend> {
  const seen: SeenRequest[] = [];
  let conns: SeenConnection[] = [];
  const connections = { open: 0, max: 0, total: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    const entry: SeenRequest = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: false };
    seen.push(entry);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    req.on("end", () => {
      entry.body = Buffer.concat(chunks);
      entry.complete = true;
      if (req.url?.startsWith("/hang")) return;
      const slow = /^\/slow\/(\d+)/.exec(req.url ?? "");
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ backend: name, url: req.url, bytes: entry.body.length }));
      };
      if (slow) setTimeout(answer, Number(slow[1])).unref();
      else answer();
    });
    req.on("close", () => {
      if (!entry.complete) entry.body = Buffer.concat(chunks);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on("clientError", (_err, socket) => socket.destroy());
  // The relay hands each accepted socket to the HTTP server after tapping its bytes.
  const open = new Set<net.Socket>();
  const relay = net.createServer((sock) => {
    open.add(sock);
    sock.once("close", () => open.delete(sock));
    connections.total++;
    connections.open++;
    connections.max = Math.max(connections.max, connections.open);
    const conn: SeenConnection = { bytes: [], closed: false };
    conns.push(conn);
    const inner = net.connect((server.address() as AddressInfo).port, "127.0.0.1");
    sock.on("data", (d: Buffer) => conn.bytes.push(d));
    sock.pipe(inner).pipe(sock);
    const done = () => {
      sock.destroy();
      inner.destroy();
    };
    sock.on("error", done);
    inner.on("error", done);
    sock.once("close", () => {
      connections.open--;
      conn.closed = true;
      inner.destroy();
    });
    inner.once("close", () => sock.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
  const port = (relay.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    get conns() {
      return conns;
    },
    connections,
    rawText: () => conns.map((c) => Buffer.concat(c.bytes).toString("latin1")).join(""),
    reset() {
      seen.length = 0;
      conns = [];
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.closeAllConnections();
        server.close();
        relay.close(() => resolve());
      }),
  };
}

export interface RogueBackend {
  readonly url: string;
  readonly port: number;
  /** Per connection, the request paths it carried, in order. */
  readonly connections: string[][];
  close(): Promise<void>;
}

/**
 * A backend that answers `GET /rogue/<id>` with the raw bytes `replies[id]` (whatever they are) and
 * anything else with a small valid 200, keeping each connection open unless the reply closes it.
 */
export async function rogueBackend(replies: Readonly<Record<string, string>>): Promise<RogueBackend> {
  const connections: string[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.once("close", () => sockets.delete(sock));
    const paths: string[] = [];
    connections.push(paths);
    let buffered = "";
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => {
      buffered += d.toString("latin1");
      // One request at a time (the proxy's pools do not pipeline): answer each header block.
      for (;;) {
        const end = buffered.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const path = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? "?";
        paths.push(path);
        const id = /^\/rogue\/([^/?]+)/.exec(path)?.[1];
        const reply = id !== undefined ? replies[id] : undefined;
        if (reply === undefined) sock.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
        else if (reply.endsWith("<close>")) sock.end(reply.slice(0, -"<close>".length));
        else sock.write(reply);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
