// Listening sockets: Node servers configured with the limits an edge needs, parse errors answered
// with a request id, and a drain that really drains (server.close() alone leaves keep-alive sockets open).
import { randomUUID } from "node:crypto";
import type tls from "node:tls";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Config, ListenerConfig } from "../config/schema.ts";
import { ERRORS, errorBody, type ErrorCode } from "../errors/codes.ts";
import { logAccess } from "../observe/access-log.ts";
import type { Logger } from "../observe/logger.ts";
import { normalizeIp } from "./client-ip.ts";
import { bodyReaderOf, refuseConnection } from "./connection.ts";
import type { ListenerInfo, RequestHandler } from "./handler.ts";
import type { Http2Front } from "./http2.ts";
import type { IdleParker } from "./park.ts";
import type { TlsKeeper, TlsMaterial } from "./tls.ts";

export interface BoundListener {
  readonly config: ListenerConfig;
  readonly server: http.Server;
  /** The HTTP/2 side of a listener with http2: true. */
  readonly http2: Http2Front | null;
  /** The certificates of a TLS listener, kept current. */
  readonly tls: TlsKeeper | null;
  /** Parks idle keep-alive connections (null: off on this Node). */
  readonly parker: IdleParker | null;
  readonly info: ListenerInfo;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
}

export function createServer(listener: ListenerConfig, limits: Config["limits"], shouldUpgrade: (req: http.IncomingMessage) => boolean, tlsSetup: { material: TlsMaterial; sni: NonNullable<tls.TlsOptions["SNICallback"]> } | null = null): http.Server {
  const options: http.ServerOptions & { shouldUpgradeCallback?: (req: http.IncomingMessage) => boolean } = {
    maxHeaderSize: limits.max_header_size,
    headersTimeout: limits.header_timeout,
    requestTimeout: limits.request_timeout,
    keepAliveTimeout: limits.keep_alive_timeout,
    // Node checks the two timeouts above only this often (30 s by default), so a 10 s header deadline
    // would really be 40 s; check at a tenth of the deadline instead.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.header_timeout / 10) || 1000)),
    // Node would answer a missing Host itself, then go on parsing what is pipelined behind it; the
    // handler refuses it instead, so the refusal closes the connection like every other.
    requireHostHeader: false,
    joinDuplicateHeaders: false,
    noDelay: true,
    // Node >= 24.9: only accepted Upgrade tokens become 'upgrade' events; others (h2c, ...) are served
    // as plain requests with Upgrade removed.
    shouldUpgradeCallback: shouldUpgrade,
  };
  if (!listener.tls || tlsSetup === null) return http.createServer(options);
  // With http2, clients choose h2 or http/1.1 by ALPN (serveHttp2 takes the h2 connections).
  return https.createServer({ ...options, ...tlsSetup.material.options, SNICallback: tlsSetup.sni, ALPNProtocols: listener.http2 ? ["h2", "http/1.1"] : ["http/1.1"] });
}

/** Parse errors and client-side timeouts, answered like the rest: small JSON, request id, one log line. */
export function handleClientErrors(server: http.Server, logger: Logger, requestIdHeader: () => string): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = clientErrorCode(err.code);
    if (code === null || !socket.writable) {
      socket.destroy();
      return;
    }
    // A body still arriving broke its framing (bad chunk size, data past a chunk) or passed Node's
    // request deadline: its exchange answers 400/408, aborts the upstream request and closes.
    const reader = bodyReaderOf(socket);
    if (reader !== null) {
      refuseConnection(socket);
      reader.fault(code === "SY_REQUEST_TIMEOUT" ? "SY_REQUEST_TIMEOUT" : "SY_BAD_REQUEST_BODY", code === "SY_REQUEST_TIMEOUT" ? "the request was not received within limits.request_timeout" : err.message);
      return;
    }
    // Bytes after a request still in flight do not parse (pipelined garbage, data after
    // `Connection: close`): that request keeps its answer and its one log line, then the connection
    // closes; nothing after the bad bytes is read.
    const inflight = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (inflight) {
      refuseConnection(socket);
      inflight.shouldKeepAlive = false;
      inflight.once("finish", () => socket.end());
      return;
    }
    answerOnSocket(socket, code, logger, requestIdHeader(), "", "", err.message);
  });
  // CONNECT would turn the proxy into an open tunnel; refuse it like any unsupported method.
  server.on("connect", (req: http.IncomingMessage, socket: Socket) => {
    answerOnSocket(socket, "SY_METHOD_NOT_ALLOWED", logger, requestIdHeader(), req.method ?? "", req.url ?? "", "CONNECT is not supported");
  });
}

/**
 * A client that connects and sends nothing is closed after limits.header_timeout, as nginx's
 * client_header_timeout closes it: node:http's header deadline starts at a request's first byte, so
 * a silent connection would otherwise stay open (with its parser) until the client leaves. On a TLS
 * listener both the TCP connection (no handshake) and the TLS one (handshake, then no request) are
 * watched. Nothing is answered, as nginx answers nothing: there is no request to answer.
 */
export function closeSilentClients(server: http.Server, tls: boolean, headerTimeoutMs: () => number): void {
  const watch = (socket: Socket) => {
    const ms = headerTimeoutMs();
    if (ms <= 0) return;
    const timer = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, ms).unref();
    socket.once("close", () => clearTimeout(timer));
  };
  server.on("connection", watch);
  if (tls) server.on("secureConnection", watch);
}

/** Write a complete error response straight to a socket (no ServerResponse exists) and close it. */
function answerOnSocket(socket: Socket, code: ErrorCode, logger: Logger, requestIdHeader: string, method: string, path: string, detail: string): void {
  const requestId = randomUUID();
  const spec = ERRORS[code];
  const body = errorBody(code, requestId);
  socket.end(
    `HTTP/1.1 ${spec.status} ${http.STATUS_CODES[spec.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `${requestIdHeader}: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
  logAccess(logger, true, {
    req_id: requestId, method, path, status: spec.status, backend: null,
    client_ip: normalizeIp(socket.remoteAddress ?? ""), upstream_ms: null, total_ms: 0, bytes_in: 0, bytes_out: 0,
    error: code, error_detail: detail,
  });
}

function clientErrorCode(code: string | undefined): ErrorCode | null {
  if (code === "ECONNRESET" || code === "EPIPE" || code === "HPE_INVALID_EOF_STATE") return null; // the client is gone
  if (code === "HPE_HEADER_OVERFLOW") return "SY_HEADERS_TOO_LARGE";
  if (code === "ERR_HTTP_REQUEST_TIMEOUT" || code === "HPE_HEADERS_TIMEOUT") return "SY_REQUEST_TIMEOUT";
  return "SY_BAD_REQUEST";
}

export function listen(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function urlOf(proto: string, addr: AddressInfo): string {
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return `${proto}://${host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host}:${addr.port}`;
}
