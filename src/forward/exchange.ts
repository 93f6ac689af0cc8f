// One client request and its upstream counterpart: an undici dispatch handler that streams the
// backend's answer to the client with backpressure, and the single place that logs the outcome.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { randomUUID } from "node:crypto";
import type { BackendTarget, Snapshot } from "../config/compile.ts";
import type { Decision } from "../routing/decide.ts";
import { ERRORS, ProxyError, errorBody, type ErrorCode } from "../errors/codes.ts";
import { logAccess, round3 } from "../observe/access-log.ts";
import type { Logger } from "../observe/logger.ts";
import type { Metrics } from "../observe/metrics.ts";
import { buildClientHeaders, filterTrailers } from "../proxy/response-headers.ts";
import { classifyUpstreamError } from "./classify.ts";

/** Process-wide state an exchange reads and reports to. */
export interface ProxyState {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** True once shutdown began: every response asks the client to close. */
  draining: boolean;
  inflight: number;
  /** Resolved when inflight drops to zero while draining. */
  onIdle: (() => void) | null;
}

type Controller = Dispatcher.DispatchController;

/** Something that watches the primary answer go by (the shadow comparison keeps a bounded copy). */
export interface ResponseTap {
  primaryStart(status: number, rawHeaders: readonly (Buffer | string)[]): void;
  primaryData(chunk: Buffer): void;
  primaryEnd(error: ErrorCode | undefined, upstreamMs: number | null, clientGone: boolean): void;
}

export class Exchange implements Dispatcher.DispatchHandler {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly state: ProxyState;
  readonly snapshot: Snapshot;
  readonly requestId: string;
  readonly clientIp: string;
  readonly publicOrigin: string;
  readonly startedAt: number;
  backend: BackendTarget | null = null;
  decision: Decision | null = null;
  /** Headers the proxy adds to the answer (sticky cookie, decision), as flat name/value pairs. */
  extraHeaders: string[] | null = null;
  upstreamStartedAt = 0;
  upstreamEndedAt = 0;
  /** Request body bytes read from the client (counted when chunked, trusted from Content-Length otherwise). */
  bytesIn = 0;
  bytesOut = 0;
  error: ErrorCode | undefined;
  errorDetail: string | undefined;
  /** The client went away before the response was complete. */
  clientGone = false;
  /** The request body was not (fully) read, so the connection cannot be reused. */
  mustClose = false;
  /** Set for upgrade requests: what to do when the backend answers. */
  upgrade: {
    onSwitch(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import("node:net").Socket): void;
    onRefused(): void;
  } | null = null;
  /** The tunnel an upgrade became; the exchange is logged when its client side closes. */
  tunnel: { readonly bytesFromClient: number; readonly bytesFromUpstream: number; readonly closedBy: string | null } | null = null;
  /** Set when the request is mirrored. */
  tap: ResponseTap | null = null;
  #controller: Controller | null = null;
  #resume: (() => void) | null = null;

  constructor(req: IncomingMessage, res: ServerResponse, state: ProxyState, snapshot: Snapshot, requestId: string, clientIp: string, publicOrigin: string, startedAt: number) {
    this.req = req;
    this.res = res;
    this.state = state;
    this.snapshot = snapshot;
    this.requestId = requestId;
    this.clientIp = clientIp;
    this.publicOrigin = publicOrigin;
    this.startedAt = startedAt;
    state.inflight++;
    res.once("close", this.#onClientClose);
  }

  /** Mints a sticky id for a client that has none (the routing decision calls it at most once). */
  readonly mintId = (): string => randomUUID();

  addResponseHeader(name: string, value: string): void {
    (this.extraHeaders ??= []).push(name, value);
  }

  // --- undici DispatchHandler ---

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    this.upstreamStartedAt = performance.now();
    if (this.clientGone) controller.abort(new ProxyError("SY_CLIENT_CLOSED"));
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import("node:stream").Duplex): void {
    this.upstreamEndedAt = performance.now();
    if (this.upgrade === null) {
      socket.destroy(); // never tunnel what was not asked for
      return;
    }
    this.upgrade.onSwitch(controller, statusCode, headers, socket as import("node:net").Socket);
  }

  onResponseStart(controller: Controller, statusCode: number, _headers: unknown, statusMessage?: string): void {
    if (this.clientGone) return;
    this.upgrade?.onRefused();
    const headers = buildClientHeaders(controller.rawHeaders as (Buffer | string)[] ?? [], {
      requestIdHeader: this.snapshot.requestIdHeader,
      requestIdLower: this.snapshot.requestIdLower,
      requestId: this.requestId,
      backendOrigin: this.snapshot.rewriteLocation && this.backend ? this.backend.origin : null,
      publicOrigin: this.publicOrigin,
      close: this.state.draining || this.mustClose,
      extra: this.extraHeaders,
    });
    this.tap?.primaryStart(statusCode, (controller.rawHeaders as (Buffer | string)[]) ?? []);
    try {
      this.res.writeHead(statusCode, statusMessage || undefined, headers);
    } catch (err) {
      // Node refuses header bytes it would not send itself (CR/LF/NUL, bad names): the backend's fault.
      controller.abort(new ProxyError("SY_UPSTREAM_BAD_RESPONSE", (err as Error).message));
    }
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    this.tap?.primaryData(chunk);
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once("drain", (this.#resume ??= () => controller.resume()));
    }
  }

  onResponseEnd(_controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    this.upstreamEndedAt = performance.now();
    for (const _ in trailers) {
      this.res.addTrailers(filterTrailers(trailers));
      break;
    }
    this.res.end();
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.upstreamEndedAt = performance.now();
    if (this.clientGone) return;
    const code = classifyUpstreamError(err);
    if (!this.res.headersSent) {
      this.fail(code, err.message);
      return;
    }
    // Headers are out: the only honest signal left is cutting the response short.
    this.error = code;
    this.errorDetail = err.message;
    this.res.destroy();
  }

  // --- local answers ---

  /** Answer with a small error body; the request is logged once when the response closes. */
  fail(code: ErrorCode, detail?: string): void {
    this.error = code;
    this.errorDetail = detail;
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const spec = ERRORS[code];
    const body = errorBody(code, this.requestId, detail);
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
      [this.snapshot.requestIdHeader]: this.requestId,
    };
    if (this.state.draining || this.mustClose || spec.status === 400) headers.connection = "close";
    if (code === "SY_METHOD_NOT_ALLOWED") headers.allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    res.writeHead(spec.status, headers);
    res.end(this.req.method === "HEAD" ? undefined : body);
  }

  #onClientClose = (): void => {
    const res = this.res;
    const tunnel = this.tunnel;
    if (tunnel !== null) {
      this.bytesIn = tunnel.bytesFromClient;
      this.bytesOut = tunnel.bytesFromUpstream;
    } else if (!res.writableFinished) {
      this.clientGone = true;
      this.#controller?.abort(new ProxyError("SY_CLIENT_CLOSED"));
      if (this.error === undefined) this.error = "SY_CLIENT_CLOSED";
    }
    const now = performance.now();
    const status = tunnel !== null ? 101 : this.clientGone && !res.headersSent ? ERRORS.SY_CLIENT_CLOSED.status : res.statusCode;
    const upstreamMs = this.upstreamStartedAt > 0 ? (this.upstreamEndedAt || now) - this.upstreamStartedAt : null;
    this.tap?.primaryEnd(this.error, upstreamMs, this.clientGone);
    // Tunnels are counted by the tunnel metrics; their lifetime is not a request latency.
    if (tunnel === null && this.snapshot.metricsEnabled) {
      this.state.metrics.record({
        feature: this.decision?.feature ?? null,
        backend: this.backend?.name ?? null,
        method: this.req.method ?? "",
        status,
        upstreamSeconds: upstreamMs === null ? null : upstreamMs / 1000,
        totalSeconds: (now - this.startedAt) / 1000,
        error: this.error,
      });
    }
    logAccess(this.state.logger, this.snapshot.config.log.access_log, {
      req_id: this.requestId,
      method: this.req.method ?? "",
      path: this.req.url ?? "",
      status,
      backend: this.backend?.name ?? null,
      feature: this.decision?.feature ?? null,
      reason: this.decision?.reason ?? null,
      client_ip: this.clientIp,
      upstream_ms: upstreamMs === null ? null : round3(upstreamMs),
      total_ms: round3(now - this.startedAt),
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      ...(this.error !== undefined && { error: this.error, error_detail: this.errorDetail ?? ERRORS[this.error].message }),
    });
    const state = this.state;
    if (--state.inflight === 0 && state.onIdle) state.onIdle();
  };
}
