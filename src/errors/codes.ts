// Every error the proxy answers with, in one table: stable code -> HTTP status, log level, short text.
// Code branches on these codes, never on message text.

export type LogLevel = "info" | "warn" | "error";

export interface ErrorSpec {
  readonly status: number;
  readonly level: LogLevel;
  readonly message: string;
  /**
   * A refusal of the request's framing: the answer carries `Connection: close` and nothing after the
   * refused request on that connection is forwarded (the bytes after it cannot be trusted to be a request).
   */
  readonly close?: true;
}

export const ERRORS = {
  SY_BAD_REQUEST: { status: 400, level: "info", message: "malformed request", close: true },
  SY_BAD_REQUEST_TARGET: { status: 400, level: "info", message: "request target must be an absolute path", close: true },
  SY_NON_CANONICAL_PATH: { status: 400, level: "info", message: "request path is not in canonical form", close: true },
  SY_DUPLICATE_HOST: { status: 400, level: "info", message: "more than one Host header", close: true },
  SY_BAD_HOST: { status: 400, level: "info", message: "invalid Host header", close: true },
  SY_BAD_REQUEST_BODY: { status: 400, level: "info", message: "malformed request body", close: true },
  SY_HEADER_TIMEOUT: { status: 408, level: "info", message: "request headers not received in time", close: true },
  SY_REQUEST_TIMEOUT: { status: 408, level: "info", message: "request not received in time", close: true },
  SY_BODY_TIMEOUT: { status: 408, level: "info", message: "request body not received in time", close: true },
  SY_METHOD_NOT_ALLOWED: { status: 405, level: "info", message: "method not supported by this proxy", close: true },
  SY_BODY_TOO_LARGE: { status: 413, level: "info", message: "request body too large", close: true },
  SY_EXPECTATION_FAILED: { status: 417, level: "info", message: "expectation not supported", close: true },
  SY_CLIENT_LIMIT: { status: 429, level: "warn", message: "too many concurrent requests from this client" },
  SY_HEADERS_TOO_LARGE: { status: 431, level: "info", message: "request header fields too large", close: true },
  SY_UNSUPPORTED_TRANSFER_ENCODING: { status: 501, level: "info", message: "transfer-encoding not supported", close: true },
  SY_HTTP_VERSION: { status: 505, level: "info", message: "HTTP version not supported", close: true },
  SY_CLIENT_CLOSED: { status: 499, level: "info", message: "client closed the connection" },
  SY_UPSTREAM_CONNECT_REFUSED: { status: 502, level: "error", message: "backend refused the connection" },
  SY_UPSTREAM_UNREACHABLE: { status: 502, level: "error", message: "backend unreachable" },
  SY_UPSTREAM_TLS: { status: 502, level: "error", message: "backend TLS handshake failed" },
  SY_UPSTREAM_RESET: { status: 502, level: "error", message: "backend closed the connection" },
  SY_UPSTREAM_BAD_RESPONSE: { status: 502, level: "error", message: "backend sent an invalid response" },
  SY_UPSTREAM_CONNECT_TIMEOUT: { status: 504, level: "error", message: "backend connect timed out" },
  SY_UPSTREAM_HEADERS_TIMEOUT: { status: 504, level: "error", message: "backend response timed out" },
  SY_UPSTREAM_BODY_TIMEOUT: { status: 504, level: "error", message: "backend response body timed out" },
  SY_POOL_QUEUE_TIMEOUT: { status: 503, level: "warn", message: "no connection to the backend became free in time" },
  SY_SHUTTING_DOWN: { status: 503, level: "warn", message: "proxy is shutting down" },
  SY_TUNNEL_LIMIT: { status: 503, level: "warn", message: "too many open WebSocket tunnels" },
  SY_INTERNAL: { status: 500, level: "error", message: "internal proxy error" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error that already knows its code; thrown or passed at module edges. */
export class ProxyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ?? ERRORS[code].message, options);
    this.name = "ProxyError";
    this.code = code;
  }
}

/**
 * The small JSON body of an error answer; the request id lets a user quote it in a support ticket.
 * Client errors (4xx) say what was wrong with the request; server-side details (which may name a
 * backend address) stay in the log.
 */
export function errorBody(code: ErrorCode, requestId: string, detail?: string): string {
  const spec = ERRORS[code];
  const why = detail !== undefined && spec.status < 500 && detail !== spec.message ? `,"detail":${JSON.stringify(detail)}` : "";
  return `{"error":{"status":${spec.status},"code":"${code}","message":"${spec.message}"${why},"request_id":${JSON.stringify(requestId)}}}\n`;
}
