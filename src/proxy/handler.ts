// The request path: check what Node's parser lets through, decide, and hand the stream to undici.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { BackendTarget, Snapshot } from "../config/compile.ts";
import type { ErrorCode } from "../errors/codes.ts";
import { Exchange, HEADER_TIMEOUT_BACKSTOP_MS, type ProxyState } from "../forward/exchange.ts";
import { decide, describeDecision, stickyCookie, type RequestFacts } from "../routing/decide.ts";
import { canonicalPath } from "../routing/normalize.ts";
import type { ShadowRunner, ShadowTicket } from "../shadow/mirror.ts";
import { RequestBody } from "./body.ts";
import { isTrusted, normalizeIp, resolveClientIp } from "./client-ip.ts";
import { isRefused } from "./connection.ts";
import { http2Problem, isHttp2 } from "./http2.ts";
import { buildUpstreamHeaders, isValidHost, isValidRequestId, readRequestHeaderFacts, type RequestHeaderFacts } from "./request-headers.ts";

export interface ListenerInfo {
  readonly proto: "http" | "https";
  /** Strict-Transport-Security value sent on every answer (tls.hsts), or null. */
  readonly hsts: string | null;
  /** Port the client connected to, for X-Forwarded-Port. */
  port: number;
}

export interface HandlerDeps {
  readonly state: ProxyState;
  /** Mirrors sampled requests to the other backend (plain requests only, not upgrades). */
  readonly shadow?: ShadowRunner;
  /** The current snapshot; read once per request. */
  snapshot(): Snapshot;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createRequestHandler(deps: HandlerDeps, listener: ListenerInfo): RequestHandler {
  return (req, res) => handle(deps, listener, req, res);
}

/** A request that passed the checks and has a decision: everything forwarding needs. */
export interface Routed {
  readonly ex: Exchange;
  readonly snap: Snapshot;
  readonly path: string;
  readonly backend: BackendTarget;
  readonly headers: string[];
  readonly facts: RequestHeaderFacts;
  readonly decisionFacts: RequestFacts;
}

/**
 * Checks, identity and the routing decision, shared by plain requests and upgrades. Returns null when
 * the request was already answered (refused), so the caller has nothing left to do.
 */
export function route(deps: HandlerDeps, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): Routed | null {
  const startedAt = performance.now();
  const snap = deps.snapshot();
  const peer = normalizeIp(req.socket.remoteAddress ?? "");
  const facts = readRequestHeaderFacts(req.rawHeaders, snap.requestIdLower);
  const peerTrusted = isTrusted(snap.trustedProxies, peer);
  const clientIp = peerTrusted ? resolveClientIp(peer, facts.forwardedFor, snap.trustedProxies) : peer;
  const requestId = pickRequestId(facts.requestId, peerTrusted, snap.requestIdPreserve);
  const target = parseTarget(req.url ?? "");
  // The host the client addressed: an absolute-form authority wins over Host (RFC 9112 3.2.2); an
  // HTTP/1.0 request without either addressed the listener itself.
  const clientHost = target?.authority ?? facts.host ?? localAuthority(req);
  const ex = new Exchange(req, res, deps.state, snap, requestId, clientIp, `${listener.proto}://${clientHost}`, startedAt);

  const downgrade = http2Problem(req);
  if (downgrade !== null) {
    ex.fail("SY_BAD_REQUEST", `HTTP/2 request refused: ${downgrade}`);
    return null;
  }
  const refusal = target === null ? "SY_BAD_REQUEST_TARGET" : checkRequest(req, facts, target.authority);
  if (refusal !== null) {
    ex.fail(refusal, refusalDetail(refusal, req, facts));
    return null;
  }
  const raw = target!.path;
  const q = raw.indexOf("?");
  const rawPath = q === -1 ? raw : raw.slice(0, q);
  const canonical = canonicalPath(rawPath);
  if (canonical === null) {
    ex.fail("SY_BAD_REQUEST_TARGET", "the path has a broken percent-escape or an encoded NUL");
    return null;
  }
  if (canonical !== rawPath && snap.pathNormalization === "refuse") {
    ex.fail("SY_NON_CANONICAL_PATH", `send ${canonical} instead (proxy.path_normalization: refuse)`);
    return null;
  }
  // What is matched is what is sent: the canonical path, the query as the client wrote it.
  const path = canonical === rawPath ? raw : q === -1 ? canonical : canonical + raw.slice(q);
  const authority = target!.authority;

  const declared = facts.contentLength === undefined ? -1 : Number(facts.contentLength);
  const max = snap.maxBodyBytes;
  if (max > 0 && declared > max) {
    ex.fail("SY_BODY_TOO_LARGE", `Content-Length ${declared} exceeds limits.max_body_size ${max}`);
    return null;
  }
  const cap = snap.maxRequestsPerClient;
  if (cap > 0) {
    const per = deps.state.perClient;
    const n = per.get(clientIp) ?? 0;
    if (n >= cap) {
      ex.fail("SY_CLIENT_LIMIT", `${n} requests from ${clientIp} in flight (limits.max_requests_per_client ${cap})`);
      return null;
    }
    per.set(clientIp, n + 1);
    ex.countedForClient = true;
  }

  const decisionFacts: RequestFacts = { method: req.method!, target: path, host: clientHost, clientIp, headers: req.headers, requestId, mintId: ex.mintId };
  const decision = decide(decisionFacts, snap.routing);
  let backend = snap.backends[decision.backend];
  const health = deps.state.health;
  health.budget.request(startedAt);
  const policy = decision.feature === null ? snap.failoverDefault : (snap.failover.get(decision.feature) ?? snap.failoverDefault);
  const other = snap.backends[decision.backend === "legacy" ? "new" : "legacy"];
  if (policy.enabled && other.origin !== backend.origin) {
    // The user's backend is out of rotation: the other stack answers until it is back (the routing
    // decision itself does not change, so the user returns to it then).
    if (!health.available(backend) && health.available(other)) {
      health.countFailover(decision.feature, backend.name, other.name, "ejected");
      ex.failedOver = { from: backend.name, reason: "ejected" };
      backend = other;
    } else {
      ex.failoverPolicy = policy;
      ex.failoverTo = other;
    }
  }
  ex.backend = backend;
  ex.decision = decision;
  if (decision.identity?.minted) ex.addResponseHeader("set-cookie", stickyCookie(snap.routing, decision.identity.key, listener.proto === "https"));
  if (snap.routing.decisionHeader) ex.addResponseHeader("x-switchyard-decision", describeDecision(decision) + (ex.failedOver === null ? "" : `; failover ${ex.failedOver.from}->${backend.name} (ejected)`));
  if (snap.configHashHeader) ex.addResponseHeader("x-switchyard-config", snap.hash);
  if (listener.hsts !== null) ex.addResponseHeader("strict-transport-security", listener.hsts);

  const headers = buildUpstreamHeaders(req.rawHeaders, facts, {
    peerTrusted,
    peerIp: peer,
    clientIp,
    clientHost,
    proto: listener.proto,
    listenerPort: listener.port,
    requestId,
    requestIdHeader: snap.requestIdHeader,
    requestIdLower: snap.requestIdLower,
    hostOverride: authority ?? (snap.preserveHost ? (facts.host === undefined ? clientHost : undefined) : backend.hostHeader),
    drop: snap.proxyOnlyHeaders,
  });
  return { ex, snap, path, backend, headers, facts, decisionFacts };
}

function handle(deps: HandlerDeps, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): void {
  // Bytes after a refused request on this connection are not trusted to be a request.
  if (req.httpVersionMajor !== 2 && isRefused(req.socket)) return;
  const routed = route(deps, listener, req, res);
  if (routed === null) return;
  const { ex, snap, path, backend, headers, facts } = routed;
  const declared = facts.contentLength === undefined ? -1 : Number(facts.contentLength);
  // HTTP/2 frames its body itself: without Content-Length, a stream not ended with its headers has
  // one of unknown length (sent upstream chunked, like an HTTP/1.1 chunked body).
  const unsized = facts.transferEncoding !== undefined || (declared === -1 && isHttp2(req) && !req.stream.endAfterHeaders);
  const hasBody = unsized || declared > 0;
  const upstream = deps.state.pools.get(backend);
  const opts = { path, method: req.method as "GET", headers, body: null as Buffer | Readable | null, headersTimeout: backend.responseHeaderTimeoutMs + HEADER_TIMEOUT_BACKSTOP_MS, bodyTimeout: backend.readTimeoutMs };
  let tap: ShadowTicket | null = null;
  // A request moved off its ejected backend has no answer of the chosen one to compare.
  if (snap.shadow.enabled && deps.shadow && ex.failedOver === null) {
    tap = deps.shadow.begin({ snap, decision: ex.decision!, backend, method: req.method!, path, headers, requestId: ex.requestId, bodyBytes: !hasBody ? 0 : unsized ? -1 : declared });
    if (tap !== null) ex.tap = tap;
  }
  if (!hasBody) {
    ex.send(upstream, opts, backend.responseHeaderTimeoutMs, false);
    return;
  }
  const body = new RequestBody(req, ex, snap.bodyLimits, unsized ? -1 : declared);
  body.tap = tap;
  body.whenReady((ready) => {
    opts.body = ready as Buffer | Readable; // undici pulls an async iterable chunk by chunk
    ex.send(upstream, opts, backend.responseHeaderTimeoutMs, ready === body);
  });
}

/** "127.0.0.1:8080": the listener address a client reached, for HTTP/1.0 requests without a Host. */
function localAuthority(req: IncomingMessage): string {
  const addr = normalizeIp(req.socket.localAddress ?? "127.0.0.1");
  return `${addr.includes(":") ? `[${addr}]` : addr}:${req.socket.localPort ?? 0}`;
}

/** Requests Node accepts but an edge proxy must not forward (see RELIABILITY.md). */
function checkRequest(req: IncomingMessage, facts: RequestHeaderFacts, authority: string | undefined): ErrorCode | null {
  if (req.httpVersionMajor !== 1 && !isHttp2(req)) return "SY_HTTP_VERSION";
  if (facts.hostCount > 1) return "SY_DUPLICATE_HOST";
  if (facts.hostCount === 0 && req.httpVersionMinor === 1 && authority === undefined) return "SY_BAD_HOST";
  if (facts.host !== undefined && !isValidHost(facts.host)) return "SY_BAD_HOST";
  if (authority !== undefined && !isValidHost(authority)) return "SY_BAD_HOST";
  if (req.method === "CONNECT") return "SY_METHOD_NOT_ALLOWED";
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== "100-continue") return "SY_EXPECTATION_FAILED";
  if (facts.transferEncoding !== undefined) {
    if (req.httpVersionMinor === 0) return "SY_BAD_REQUEST";
    if (facts.transferEncoding.trim().toLowerCase() !== "chunked") return "SY_UNSUPPORTED_TRANSFER_ENCODING";
  }
  return null;
}

function refusalDetail(code: ErrorCode, req: IncomingMessage, facts: RequestHeaderFacts): string | undefined {
  switch (code) {
    case "SY_EXPECTATION_FAILED": return `Expect: ${req.headers.expect} (only 100-continue is supported)`;
    case "SY_HTTP_VERSION": return `HTTP/${req.httpVersion} (only HTTP/1.x here)`;
    case "SY_BAD_HOST": return facts.hostCount === 0 ? "HTTP/1.1 requires a Host header" : "Host must be a name, IPv4 address or [IPv6] address with an optional :port";
    case "SY_BAD_REQUEST": return "Transfer-Encoding is not allowed in HTTP/1.0";
    case "SY_UNSUPPORTED_TRANSFER_ENCODING": return `Transfer-Encoding ${JSON.stringify(facts.transferEncoding)}: only "chunked" is accepted`;
    default: return undefined;
  }
}

export interface RequestTarget {
  /** Origin-form path and query, byte for byte as the client sent it. */
  path: string;
  /** The authority of an absolute-form target (RFC 9112 3.2.2: it replaces Host). */
  authority: string | undefined;
}

/** Origin-form passes unchanged; absolute-form http(s) becomes origin-form + authority; anything else is refused. */
export function parseTarget(url: string): RequestTarget | null {
  if (url.charCodeAt(0) === 47 /* / */) return url.includes("#") ? null : { path: url, authority: undefined };
  const m = /^https?:\/\/([^/?#\s@]+)((?:[/?][^#]*)?)$/i.exec(url);
  if (!m) return null;
  const rest = m[2]!;
  return { path: rest === "" ? "/" : rest[0] === "?" ? `/${rest}` : rest, authority: m[1]! };
}

function pickRequestId(incoming: string | undefined, peerTrusted: boolean, preserve: Snapshot["requestIdPreserve"]): string {
  if (incoming !== undefined && (preserve === "any" || (preserve === "trusted" && peerTrusted)) && isValidRequestId(incoming)) return incoming;
  return randomUUID();
}

