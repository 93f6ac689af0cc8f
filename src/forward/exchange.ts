// One client request and its upstream counterpart: an undici dispatch handler that streams the
// backend's answer to the client with backpressure, and the single place that logs the outcome.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { randomUUID } from "node:crypto";
import type { BackendTarget, FailoverPolicy, Snapshot } from "../config/compile.ts";
import type { Decision } from "../routing/decide.ts";
import { ERRORS, ProxyError, errorBody, type ErrorCode, type ErrorSpec } from "../errors/codes.ts";
import { logAccess } from "../observe/access-log.ts";
import type { Logger } from "../observe/logger.ts";
import type { Metrics } from "../observe/metrics.ts";
import { refuseConnection } from "../proxy/connection.ts";
import { buildClientHeaders, filterTrailers } from "../proxy/response-headers.ts";
import { classifyUpstreamError, tlsFailureDetail } from "./classify.ts";
import type { Waiter } from "./gate.ts";
import type { BackendPools, Upstream } from "./pools.ts";
import { failedBeforeSending, failoverReason, type FailoverReason, type HealthRegistry } from "../health/registry.ts";
import { responseFramingProblem } from "./response-checks.ts";

/** Process-wide state an exchange reads and reports to. */
export interface ProxyState {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** True once shutdown began: every response asks the client to close. */
  draining: boolean;
  inflight: number;
  /** Requests (and upgrades) started since the process did. */
  started: number;
  /** Resolved when inflight drops to zero while draining. */
  onIdle: (() => void) | null;
  readonly pools: BackendPools;
  /** Requests in flight per client address (kept only when limits.max_requests_per_client is on). */
  readonly perClient: Map<string, number>;
  readonly health: HealthRegistry;
}

type Controller = Dispatcher.DispatchController;

/** Something that watches the primary answer go by (the shadow comparison keeps a bounded copy). */
export interface ResponseTap {
  primaryStart(status: number, rawHeaders: readonly (Buffer | string)[]): void;
  primaryData(chunk: Buffer): void;
  primaryEnd(error: ErrorCode | undefined, upstreamMs: number | null, clientGone: boolean): void;
}

/**
 * undici's own header timeout stays on as a backstop a little behind the exchange's (its timers tick
 * every 500 ms, so it would fire up to 25 % late; the exchange keeps a precise one).
 */
export const HEADER_TIMEOUT_BACKSTOP_MS = 1000;

/** RFC 9112 reason-phrase: HTAB, SP, VCHAR, obs-text. */
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A fresh sticky id: one function for every exchange (no closure per request). */
const mintStickyId = (): string => randomUUID();

/** The header deadline fired: a module-level function, so arming it allocates no closure per request. */
function onHeaderTimeout(ex: Exchange): void {
  ex.headerTimedOut();
}

export class Exchange implements Dispatcher.DispatchHandler, Waiter {
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
  /** The client spoke HTTP/2: no Connection header, no reason phrase, nothing per connection. */
  readonly h2: boolean;
  /** The whole request body has been read from the client (true when there is none). */
  bodyComplete = true;
  /** Counted in ProxyState.perClient until the exchange ends. */
  countedForClient = false;
  /** Set by the routing step when this request may go once to `failoverTo` (null: it may not). */
  failoverPolicy: FailoverPolicy | null = null;
  failoverTo: BackendTarget | null = null;
  /** The backend the request moved away from, and why, once it did (it never moves twice). */
  failedOver: { from: string; reason: FailoverReason } | null = null;
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
  #upstream: Upstream | null = null;
  #dispatch: Dispatcher.DispatchOptions | null = null;
  #holdsSlot = false;
  /** An attempt went to a backend (its outcome says something of that backend's health). */
  #dispatched = false;
  #cancelQueued: (() => void) | null = null;
  /** A streamed request body is still on its way upstream: the header deadline starts when it is done. */
  #bodyStreaming = false;
  #headerTimeoutMs = 0;
  #headerTimer: NodeJS.Timeout | null = null;
  /** Why the exchange was aborted before undici started it (applied when it does). */
  #aborted: ProxyError | null = null;
  /** The proxy wrote its own answer (fail): upstream callbacks that come after change nothing. */
  #answered = false;
  /** An HTTP/2 answer sent before the whole request body: the stream is reset (NO_ERROR) after it. */
  #closeStreamAfterAnswer = false;

  constructor(req: IncomingMessage, res: ServerResponse, state: ProxyState, snapshot: Snapshot, requestId: string, clientIp: string, publicOrigin: string, startedAt: number) {
    this.req = req;
    this.res = res;
    this.state = state;
    this.snapshot = snapshot;
    this.requestId = requestId;
    this.clientIp = clientIp;
    this.publicOrigin = publicOrigin;
    this.startedAt = startedAt;
    this.h2 = req.httpVersionMajor === 2;
    state.inflight++;
    state.started++;
    res.once("close", this.#onClientClose);
  }

  /** Mints a sticky id for a client that has none (the routing decision calls it at most once). */
  readonly mintId = mintStickyId;

  addResponseHeader(name: string, value: string): void {
    (this.extraHeaders ??= []).push(name, value);
  }

  // --- upstream admission ---

  /**
   * Send the request to the upstream once its gate admits it. `headerTimeoutMs` bounds the wait for
   * the response headers, counted from the end of the request (a native timer: undici's coarse ones
   * fire up to 25 % late); `streamingBody` says the body is still arriving from the client.
   */
  send(upstream: Upstream, opts: Dispatcher.DispatchOptions, headerTimeoutMs: number, streamingBody: boolean): void {
    this.#upstream = upstream;
    this.#dispatch = opts;
    this.#headerTimeoutMs = headerTimeoutMs;
    this.#bodyStreaming = streamingBody;
    this.#cancelQueued = upstream.gate.enter(this);
  }

  startUpstream(): void {
    this.#cancelQueued = null;
    this.#holdsSlot = true;
    if (this.clientGone || this.#aborted !== null || this.#answered) {
      this.#releaseSlot();
      return;
    }
    const upstream = this.#upstream!;
    if (upstream.pool.closed || upstream.pool.destroyed) {
      // A reload retired this pool while the request waited (for its body or a slot): use the current one.
      this.#releaseSlot();
      this.#upstream = this.state.pools.get(upstream.target);
      this.#cancelQueued = this.#upstream.gate.enter(this);
      return;
    }
    this.#dispatched = true;
    upstream.pool.dispatch(this.#dispatch!, this);
  }

  queueExpired(waitedMs: number): void {
    this.#cancelQueued = null;
    if (this.#tryFailover("SY_POOL_QUEUE_TIMEOUT", null)) return;
    const up = this.#upstream!;
    this.fail("SY_POOL_QUEUE_TIMEOUT", `waited ${Math.round(waitedMs)} ms for one of ${up.gate.limit} connections to ${up.target.name} (backends.${up.target.name}.pool.queue_timeout)`);
  }

  #releaseSlot(): void {
    if (!this.#holdsSlot) return;
    this.#holdsSlot = false;
    this.#upstream!.gate.leave();
  }

  /**
   * Stop the exchange because of the client (a broken or stalled body, a size limit): the upstream
   * request is aborted (its connection is not reused) and the client gets the error if nothing was sent.
   */
  abort(err: ProxyError): void {
    if (this.#controller !== null) {
      this.#controller.abort(err);
      return;
    }
    this.#aborted ??= err;
    this.#cancelQueued?.();
    this.#cancelQueued = null;
    this.fail(err.code, err.message);
  }

  /** A streamed request body has been handed to undici in full: the wait for the answer starts now. */
  bodySent(): void {
    this.#bodyStreaming = false;
    if (this.#controller !== null && this.upstreamEndedAt === 0) this.#armHeaderTimer();
  }

  #armHeaderTimer(): void {
    if (this.#headerTimeoutMs > 0 && this.#headerTimer === null) this.#headerTimer = setTimeout(onHeaderTimeout, this.#headerTimeoutMs, this);
  }

  #clearHeaderTimer(): void {
    if (this.#headerTimer !== null) {
      clearTimeout(this.#headerTimer);
      this.#headerTimer = null;
    }
  }

  headerTimedOut(): void {
    this.#headerTimer = null;
    this.#controller?.abort(new ProxyError("SY_UPSTREAM_HEADERS_TIMEOUT", `no response headers within ${this.#headerTimeoutMs} ms`));
  }

  // --- undici DispatchHandler ---

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    this.upstreamStartedAt = performance.now();
    if (this.clientGone) controller.abort(new ProxyError("SY_CLIENT_CLOSED"));
    else if (this.#aborted !== null) controller.abort(this.#aborted);
    else if (!this.#bodyStreaming) this.#armHeaderTimer();
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import("node:stream").Duplex): void {
    this.upstreamEndedAt = performance.now();
    this.#clearHeaderTimer();
    this.#releaseSlot(); // the socket has left the pool
    if (this.upgrade === null) {
      socket.destroy(); // never tunnel what was not asked for
      return;
    }
    this.upgrade.onSwitch(controller, statusCode, headers, socket as import("node:net").Socket);
  }

  onResponseStart(controller: Controller, statusCode: number, _headers: unknown, statusMessage?: string): void {
    this.#clearHeaderTimer();
    const raw = (controller.rawHeaders as (Buffer | string)[] | undefined) ?? [];
    if (statusCode < 200 && statusCode !== 101) {
      // 102 Processing, 103 Early Hints: informational, not forwarded; the final answer follows.
      this.#armHeaderTimer();
      return;
    }
    const problem = statusCode === 101 ? (this.upgrade === null ? "101 Switching Protocols to a request that did not ask to upgrade" : "101 Switching Protocols without Connection: upgrade") : statusCode > 599 ? `status ${statusCode} is not an HTTP status` : responseFramingProblem(raw);
    if (problem !== null) {
      // Never relay what a client could read differently from us; the connection is not reused.
      controller.abort(new ProxyError("SY_UPSTREAM_BAD_RESPONSE", problem));
      return;
    }
    if (this.clientGone) return;
    this.upgrade?.onRefused();
    const headers = buildClientHeaders(raw, {
      requestIdHeader: this.snapshot.requestIdHeader,
      requestIdLower: this.snapshot.requestIdLower,
      requestId: this.requestId,
      backendOrigin: this.snapshot.rewriteLocation && this.backend ? this.backend.origin : null,
      publicOrigin: this.publicOrigin,
      close: !this.h2 && (this.state.draining || this.mustClose || !this.bodyComplete),
      extra: this.extraHeaders,
    });
    this.tap?.primaryStart(statusCode, raw);
    try {
      // A reason phrase carries no meaning; one Node would refuse to write (control characters) is dropped.
      if (this.h2) this.res.writeHead(statusCode, headers); // HTTP/2 has no reason phrase
      else this.res.writeHead(statusCode, statusMessage && REASON.test(statusMessage) ? statusMessage : STATUS_CODES[statusCode] ?? "", headers);
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
    this.#releaseSlot();
    for (const _ in trailers) {
      this.res.addTrailers(filterTrailers(trailers));
      break;
    }
    this.res.end();
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.upstreamEndedAt = performance.now();
    this.#clearHeaderTimer();
    this.#releaseSlot();
    if (this.clientGone || this.#answered) return;
    const code = classifyUpstreamError(err);
    if (!this.res.headersSent && this.#tryFailover(code, this.upstreamStartedAt > 0 ? performance.now() - this.upstreamStartedAt : null)) return;
    if (!this.res.headersSent) {
      this.fail(code, code === "SY_UPSTREAM_TLS" ? tlsFailureDetail(err, this.backend?.name ?? "?") : err.message);
      return;
    }
    // Headers are out: the only honest signal left is cutting the response short.
    this.error = code;
    this.errorDetail = err.message;
    this.res.destroy();
  }

  // --- failover ---

  /**
   * Send the request once to the other backend when this attempt failed before any answer reached
   * the client: for any method when nothing was sent (connect refused, pool deadline), for the
   * policy's methods when it was (reset, timeout, invalid answer). Never twice, never a streamed body
   * (it cannot be sent again), never an upgrade, never past the retry budget or to an ejected backend.
   * The failed attempt counts against its backend (metrics, the guard's windows, health).
   */
  #tryFailover(code: ErrorCode, upstreamMs: number | null): boolean {
    const policy = this.failoverPolicy;
    const other = this.failoverTo;
    if (policy === null || other === null || this.failedOver !== null || this.upgrade !== null || this.clientGone) return false;
    const reason = failoverReason(code);
    if (reason === null) return false;
    if (!failedBeforeSending(code) && !policy.methods.has(this.req.method ?? "")) return false;
    const opts = this.#dispatch!;
    if (opts.body !== null && opts.body !== undefined && !Buffer.isBuffer(opts.body)) return false;
    const health = this.state.health;
    if (!health.available(other) || !health.budget.take(performance.now())) return false;
    const from = this.backend!;
    const feature = this.decision?.feature ?? null;
    health.observe(from, code, ERRORS[code].status);
    health.countFailover(feature, from.name, other.name, reason);
    if (this.snapshot.metricsEnabled) {
      this.state.metrics.record({ feature, backend: from.name, method: this.req.method ?? "", status: ERRORS[code].status, upstreamSeconds: upstreamMs === null ? null : upstreamMs / 1000, totalSeconds: (performance.now() - this.startedAt) / 1000, error: code });
    }
    // The shadow comparison was of the chosen backend's answer: there is none to compare.
    this.tap?.primaryEnd(code, upstreamMs, false);
    this.tap = null;
    this.failedOver = { from: from.name, reason };
    this.backend = other;
    this.#noteInDecisionHeader(`; failover ${from.name}->${other.name} (${reason})`);
    this.#controller = null;
    this.#aborted = null;
    this.upstreamStartedAt = 0;
    this.upstreamEndedAt = 0;
    this.#dispatched = false;
    this.#headerTimeoutMs = other.responseHeaderTimeoutMs;
    const headers = this.snapshot.preserveHost ? opts.headers : withHost(opts.headers as string[], from.hostHeader, other.hostHeader);
    this.send(this.state.pools.get(other), { ...opts, headers, headersTimeout: other.responseHeaderTimeoutMs + HEADER_TIMEOUT_BACKSTOP_MS, bodyTimeout: other.readTimeoutMs }, other.responseHeaderTimeoutMs, false);
    return true;
  }

  #noteInDecisionHeader(note: string): void {
    const extra = this.extraHeaders;
    if (extra === null) return;
    for (let i = 0; i < extra.length; i += 2) if (extra[i] === "x-switchyard-decision") extra[i + 1] += note;
  }

  // --- local answers ---

  /**
   * Answer with a small error body; the request is logged once when the response closes. A refusal
   * of the request's framing, or an answer before the body was read, closes the connection.
   */
  fail(code: ErrorCode, detail?: string): void {
    if (this.#answered) return;
    this.error = code;
    this.errorDetail = detail;
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    this.#answered = true;
    const spec: ErrorSpec = ERRORS[code];
    const body = errorBody(code, this.requestId, detail);
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
      [this.snapshot.requestIdHeader]: this.requestId,
    };
    // One HTTP/2 stream failing says nothing about the connection's other streams.
    if (!this.h2) {
      if (spec.close) refuseConnection(this.req.socket);
      if (spec.close || this.state.draining || this.mustClose || !this.bodyComplete) headers.connection = "close";
    }
    if (code === "SY_METHOD_NOT_ALLOWED") headers.allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    if (this.h2) {
      res.writeHead(spec.status, headers);
      // The rest of the request body is not wanted: once the answer is out, close the stream with
      // RST_STREAM(NO_ERROR) (RFC 9113 8.1), as HTTP/1.1 closes the connection.
      if (!this.bodyComplete) this.#closeStreamAfterAnswer = true;
    } else res.writeHead(spec.status, STATUS_CODES[spec.status], headers);
    res.end(this.req.method === "HEAD" ? undefined : body);
    if (this.#closeStreamAfterAnswer) setImmediate(() => (res as unknown as { stream?: { close(code: number): void } }).stream?.close(0));
  }

  /** A tunnel took over (or the exchange ended): the client's slot under max_requests_per_client is free. */
  releaseClientSlot(): void {
    if (!this.countedForClient) return;
    this.countedForClient = false;
    const per = this.state.perClient;
    const n = (per.get(this.clientIp) ?? 1) - 1;
    if (n <= 0) per.delete(this.clientIp);
    else per.set(this.clientIp, n);
  }

  /**
   * An HTTP/2 response reached its end: the stream closed without a reset (the compatibility API's
   * writableFinished is true for a reset stream too, answered or not).
   */
  #h2Delivered(): boolean {
    const stream = (this.res as unknown as { stream?: { rstCode?: number } }).stream;
    return this.res.writableEnded && (stream?.rstCode ?? 0) === 0;
  }

  #onClientClose = (): void => {
    const res = this.res;
    const tunnel = this.tunnel;
    this.#clearHeaderTimer();
    this.#cancelQueued?.();
    this.#cancelQueued = null;
    this.releaseClientSlot();
    if (tunnel !== null) {
      this.bytesIn = tunnel.bytesFromClient;
      this.bytesOut = tunnel.bytesFromUpstream;
    } else if (!(this.h2 ? this.#h2Delivered() : res.writableFinished)) {
      this.clientGone = true;
      this.#controller?.abort(new ProxyError("SY_CLIENT_CLOSED"));
      if (this.error === undefined) this.error = "SY_CLIENT_CLOSED";
    }
    const now = performance.now();
    // A tunnel's answer was 101, or 200 on an HTTP/2 stream (RFC 8441).
    const status = tunnel !== null ? (this.h2 ? 200 : 101) : this.clientGone && !res.headersSent ? ERRORS.SY_CLIENT_CLOSED.status : res.statusCode;
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
    if (this.#dispatched && this.backend !== null && !this.clientGone) this.state.health.observe(this.backend, this.error, status);
    // Every failure leaves a line; a success only with the access log on (the record is not built otherwise).
    if (this.snapshot.config.log.access_log || this.error !== undefined) this.#logAccess(status, upstreamMs, now);
    const state = this.state;
    if (--state.inflight === 0 && state.onIdle) state.onIdle();
  };

  #logAccess(status: number, upstreamMs: number | null, now: number): void {
    const path = this.req.url ?? "";
    const sent = this.upstreamStartedAt > 0 ? this.#dispatch!.path : path;
    // One shape for every record (absent fields undefined, not spread in): the writer's reads stay monomorphic.
    logAccess(this.state.logger, this.snapshot.config.log.access_log, {
      req_id: this.requestId,
      method: this.req.method ?? "",
      path,
      // What the backend got, when it differs from what the client sent (the canonical path).
      upstream_path: sent !== path ? sent : undefined,
      protocol: this.h2 ? "HTTP/2.0" : undefined,
      failover: this.failedOver !== null ? `${this.failedOver.from}->${this.backend?.name} (${this.failedOver.reason})` : undefined,
      status,
      backend: this.backend?.name ?? null,
      feature: this.decision?.feature ?? null,
      reason: this.decision?.reason ?? null,
      client_ip: this.clientIp,
      upstream_ms: upstreamMs,
      total_ms: now - this.startedAt,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      error: this.error,
      error_detail: this.error !== undefined ? (this.errorDetail ?? ERRORS[this.error].message) : undefined,
    });
  }
}

/** The header block with the Host a backend's own host gave replaced by another backend's. */
function withHost(headers: readonly string[], from: string, to: string): string[] {
  const out = [...headers];
  for (let i = 0; i < out.length; i += 2) if (out[i] === "host" && out[i + 1] === from) out[i + 1] = to;
  return out;
}
