// HTTP/2 from clients on a TLS listener (ALPN h2 beside http/1.1 on the same port), spoken to the
// backends as HTTP/1.1. The TLS server stays Node's https server, with every limit and timeout its
// HTTP/1.1 connections have; a connection that chose h2 is handed to an HTTP/2 session instead.
// Each HTTP/2 request is then made to look like the HTTP/1.1 request it becomes upstream - pseudo-
// headers mapped (:authority as Host), split Cookie fields joined - and takes the same path from
// there: checks, routing decision, header rules, shadow, metrics, access log, error answers.
//
// The downgrade is where HTTP/2-to-HTTP/1.1 request smuggling lives, so every field is checked here
// as well as by nghttp2: names lowercase tokens, values without CR, LF or NUL, no connection-specific
// fields (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE other than
// "trailers"), and Host agreeing with :authority. A refused request gets the usual 400 answer on its
// stream; the connection and its other streams go on.
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import type http from "node:http";
import type https from "node:https";
import tls from "node:tls";
import type { Socket } from "node:net";
import type { Config } from "../config/schema.ts";

/** Whether a request arrived over HTTP/2 (the compatibility API's request object). */
export function isHttp2(req: object): req is http2.Http2ServerRequest {
  return req instanceof http2.Http2ServerRequest;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

export interface Http1View {
  /** Name/value pairs as an HTTP/1.1 request would carry them (no pseudo-headers; Host first if it came from :authority). */
  raw: string[];
  /** Why the request cannot be forwarded, or null. */
  problem: string | null;
}

/** The HTTP/1.1 header list an HTTP/2 request's fields become, or why they cannot (pure; see the top of the file). */
export function http1View(rawHeaders: readonly string[]): Http1View {
  const raw: string[] = [];
  let authority: string | undefined;
  let host: string | undefined;
  let cookies: string[] | null = null;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (BAD_VALUE.test(value)) return { raw: [], problem: `the value of ${JSON.stringify(name)} holds CR, LF or NUL` };
    if (name.charCodeAt(0) === 58 /* : */) {
      if (name === ":authority") authority = value;
      else if (name !== ":method" && name !== ":path" && name !== ":scheme" && name !== ":protocol") return { raw: [], problem: `unknown pseudo-header ${JSON.stringify(name)}` };
      continue;
    }
    if (!TOKEN.test(name)) return { raw: [], problem: `field name ${JSON.stringify(name)} is not a lowercase token (RFC 9113 8.2.1)` };
    if (CONNECTION_SPECIFIC.has(name)) return { raw: [], problem: `connection-specific field ${JSON.stringify(name)} is not allowed in HTTP/2 (RFC 9113 8.2.2)` };
    if (name === "te" && value.trim().toLowerCase() !== "trailers") return { raw: [], problem: `TE ${JSON.stringify(value)}: HTTP/2 allows only "trailers"` };
    if (name === "host") {
      if (host !== undefined) return { raw: [], problem: "more than one Host field" };
      host = value;
    }
    if (name === "cookie") {
      // RFC 9113 8.2.3: cookie pairs may come as separate fields; HTTP/1.1 wants one.
      (cookies ??= []).push(value);
      continue;
    }
    raw.push(name, value);
  }
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return { raw: [], problem: `Host ${JSON.stringify(host)} disagrees with :authority ${JSON.stringify(authority)}` };
  }
  if (host === undefined) {
    if (authority === undefined) return { raw: [], problem: "neither :authority nor Host says which host the request is for" };
    raw.unshift("host", authority);
  }
  if (cookies !== null) raw.push("cookie", cookies.join("; "));
  return { raw, problem: null };
}

/** The headers object Node would build from `raw` (lowercase names, repeats joined as Node joins them). */
function headersObject(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const prev = out[name];
    if (prev === undefined) out[name] = name === "set-cookie" ? [raw[i + 1]!] : raw[i + 1]!;
    else if (Array.isArray(prev)) prev.push(raw[i + 1]!);
    else out[name] = `${prev}, ${raw[i + 1]!}`;
  }
  return out;
}

const kProblem = Symbol("switchyard.http2Problem");
/** What an HTTP/2 client sends first (RFC 9113 3.4): how a cleartext listener tells h2c from HTTP/1.1. */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

const pseudoHeader = (raw: readonly string[], name: string): string | undefined => {
  for (let i = 0; i < raw.length; i += 2) if (raw[i] === name) return raw[i + 1];
  return undefined;
};

/** Why an HTTP/2 request was refused at the downgrade, if it was (the handler answers 400 with it). */
export function http2Problem(req: object): string | null {
  return (req as { [kProblem]?: string })[kProblem] ?? null;
}

/** Give an HTTP/2 request the HTTP/1.1 header view the handler reads (rawHeaders, headers). */
function adapt(req: http2.Http2ServerRequest): void {
  const view = http1View(req.rawHeaders);
  Object.defineProperty(req, "rawHeaders", { value: view.raw, configurable: true });
  Object.defineProperty(req, "headers", { value: headersObject(view.raw), configurable: true });
  if (view.problem !== null) (req as unknown as { [kProblem]: string })[kProblem] = view.problem;
}

export interface Http2Front {
  /** Open HTTP/2 connections. */
  readonly sessions: Set<http2.ServerHttp2Session>;
  /** Requests (streams) served over HTTP/2. */
  streams: number;
  /** Connections nghttp2 closed for a protocol error or a flood. */
  protocolErrors: number;
  /** GOAWAY to every connection: streams in flight finish, no new ones start. */
  drain(): void;
  /** Close whatever is still open. */
  destroy(): void;
}

/**
 * Serve HTTP/2 on `server` beside HTTP/1.1: on an https server for connections that choose h2 by
 * ALPN, on a plain one (h2c) for connections that open with the HTTP/2 preface (prior knowledge).
 * `onRequest` gets each HTTP/2 request with its HTTP/1.1 header view.
 */
export function serveHttp2(
  server: https.Server | http.Server,
  limits: Config["limits"],
  onRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  /** WebSocket over HTTP/2 (RFC 8441): extended CONNECT requests, with the Sec-WebSocket-Key made up for the backend. Null: not announced. */
  onConnect: ((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, key: string) => void) | null = null,
): Http2Front {
  const h2 = http2.createServer({
    settings: { maxConcurrentStreams: limits.http2_max_concurrent_streams, maxHeaderListSize: limits.max_header_size, enablePush: false, enableConnectProtocol: onConnect !== null },
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    streamResetBurst: limits.http2_reset_burst,
    streamResetRate: limits.http2_reset_rate,
  } as http2.ServerOptions);
  const sessions = new Set<http2.ServerHttp2Session>();
  const front: Http2Front = {
    sessions,
    streams: 0,
    protocolErrors: 0,
    drain() {
      for (const s of sessions) s.close();
    },
    destroy() {
      for (const s of sessions) s.destroy();
    },
  };
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // An idle connection closes like an idle HTTP/1.1 keep-alive one.
    if (limits.keep_alive_timeout > 0) session.setTimeout(limits.keep_alive_timeout, () => session.close());
    // nghttp2 ended the session: a protocol error, or a flood past the limits (rapid reset, invalid
    // frames, refused streams). The client was sent GOAWAY; count it and let the socket go.
    session.on("error", (err: NodeJS.ErrnoException) => {
      // A client that merely went away (ECONNRESET, EPIPE) is no protocol error.
      if (err.code?.startsWith("ERR_HTTP2")) front.protocolErrors++;
      session.destroy();
    });
  });
  const serve = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    front.streams++;
    // Reset by the client before this event (rapid reset): nothing to answer, and no 'close' would
    // come to end an exchange begun now.
    if (req.stream.destroyed || req.stream.closed) return;
    const protocol = req.method === "CONNECT" && onConnect !== null ? pseudoHeader(req.rawHeaders, ":protocol") : undefined;
    adapt(req);
    if (protocol === undefined || http2Problem(req) !== null) return onRequest(req, res); // plain CONNECT: refused there (405)
    // Extended CONNECT becomes the HTTP/1.1 upgrade the backend knows: GET with Upgrade, and a key
    // of the proxy's own (HTTP/2 clients send none) whose accept the backend's 101 must carry.
    const key = randomBytes(16).toString("base64");
    const raw = [...req.rawHeaders, "upgrade", protocol, "connection", "upgrade", "sec-websocket-key", key];
    Object.defineProperty(req, "rawHeaders", { value: raw, configurable: true });
    Object.defineProperty(req, "headers", { value: headersObject(raw), configurable: true });
    Object.defineProperty(req, "method", { value: "GET", configurable: true });
    onConnect!(req, res, key);
  };
  h2.on("request", serve);
  // Node hands CONNECT to 'connect' (and answers 405 itself when nobody listens).
  h2.on("connect", serve);
  if (server instanceof tls.Server) {
    // The https server's own listener handles HTTP/1.1; h2 connections go to the HTTP/2 server.
    const [http1] = server.listeners("secureConnection") as ((socket: Socket) => void)[];
    server.removeAllListeners("secureConnection");
    server.on("secureConnection", (socket: Socket & { alpnProtocol?: string | false }) => {
      if (socket.alpnProtocol === "h2") h2.emit("connection", socket);
      else http1!.call(server, socket);
    });
  } else {
    // Cleartext: the first bytes tell. A connection that opens with the HTTP/2 preface is HTTP/2;
    // any other goes to the HTTP/1.1 server with its bytes put back. A client that sends nothing
    // is closed after limits.header_timeout, as an HTTP/1.1 one is (closeSilentClients).
    const [http1] = server.listeners("connection") as ((socket: Socket) => void)[];
    server.removeAllListeners("connection");
    server.on("connection", (socket: Socket) => {
      let seen: Buffer = Buffer.alloc(0);
      const timer = limits.header_timeout > 0 ? setTimeout(() => socket.destroy(), limits.header_timeout).unref() : null;
      const onData = (chunk: Buffer) => {
        seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, PREFACE.length);
        const h2Preface = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
        if (h2Preface && seen.length < PREFACE.length) return; // the preface so far: wait for the rest
        socket.off("data", onData);
        socket.off("close", onClose);
        if (timer !== null) clearTimeout(timer);
        socket.pause();
        socket.unshift(seen);
        if (h2Preface) h2.emit("connection", socket);
        else {
          http1!.call(server, socket);
          socket.resume(); // the bytes put back reach the HTTP/1.1 parser first, then the rest
        }
      };
      const onClose = () => {
        if (timer !== null) clearTimeout(timer);
      };
      socket.on("data", onData);
      socket.once("close", onClose);
      socket.on("error", () => socket.destroy());
    });
  }
  return front;
}
