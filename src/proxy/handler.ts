// The request path: check what Node's parser lets through, decide, and hand the stream to undici.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { BackendTarget, Snapshot } from "../config/compile.ts";
import { ProxyError, type ErrorCode } from "../errors/codes.ts";
import { Exchange, type ProxyState } from "../forward/exchange.ts";
import type { BackendPools } from "../forward/pools.ts";
import { decide, describeDecision, stickyCookie, type RequestFacts } from "../routing/decide.ts";
import type { ShadowRunner, ShadowTicket } from "../shadow/mirror.ts";
import { isTrusted, normalizeIp, resolveClientIp } from "./client-ip.ts";
import { buildUpstreamHeaders, isValidRequestId, readRequestHeaderFacts, type RequestHeaderFacts } from "./request-headers.ts";

export interface ListenerInfo {
  readonly proto: "http" | "https";
  /** Port the client connected to, for X-Forwarded-Port. */
  port: number;
}

export interface HandlerDeps {
  readonly state: ProxyState;
  readonly pools: BackendPools;
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
  // The host the client addressed: an absolute-form authority wins over Host (RFC 9112 3.2.2).
  const clientHost = target?.authority ?? facts.host ?? "";
  const ex = new Exchange(req, res, deps.state, snap, requestId, clientIp, `${listener.proto}://${clientHost}`, startedAt);

  const refusal = target === null ? "SY_BAD_REQUEST_TARGET" : checkRequest(req, facts);
  if (refusal !== null) {
    ex.fail(refusal);
    return null;
  }
  const { path, authority } = target!;

  const declared = facts.contentLength === undefined ? -1 : Number(facts.contentLength);
  const max = snap.maxBodyBytes;
  if (max > 0 && declared > max) {
    ex.mustClose = true; // the body stays unread
    ex.fail("SY_BODY_TOO_LARGE", `Content-Length ${declared} exceeds limits.max_body_size ${max}`);
    return null;
  }

  const decisionFacts: RequestFacts = { method: req.method!, target: path, host: clientHost, clientIp, headers: req.headers, requestId, mintId: ex.mintId };
  const decision = decide(decisionFacts, snap.routing);
  const backend = snap.backends[decision.backend];
  ex.backend = backend;
  ex.decision = decision;
  if (decision.identity?.minted) ex.addResponseHeader("set-cookie", stickyCookie(snap.routing, decision.identity.key, listener.proto === "https"));
  if (snap.routing.decisionHeader) ex.addResponseHeader("x-switchyard-decision", describeDecision(decision));
  if (snap.configHashHeader) ex.addResponseHeader("x-switchyard-config", snap.hash);

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
    hostOverride: authority ?? (snap.preserveHost ? undefined : backend.hostHeader),
    drop: snap.proxyOnlyHeaders,
  });
  return { ex, snap, path, backend, headers, facts, decisionFacts };
}

function handle(deps: HandlerDeps, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): void {
  const routed = route(deps, listener, req, res);
  if (routed === null) return;
  const { ex, snap, path, backend, headers, facts } = routed;
  const declared = facts.contentLength === undefined ? -1 : Number(facts.contentLength);
  let body: Readable | AsyncIterable<Buffer> | null = null;
  if (facts.transferEncoding !== undefined) body = countedBody(req, ex, snap.maxBodyBytes);
  else if (declared > 0) {
    body = req;
    req.once("end", () => (ex.bytesIn = declared));
  }
  if (snap.shadow.enabled && deps.shadow) {
    const ticket = deps.shadow.begin({ snap, decision: ex.decision!, backend, method: req.method!, path, headers, requestId: ex.requestId, bodyBytes: body === null ? 0 : facts.transferEncoding !== undefined ? -1 : declared });
    if (ticket !== null) {
      ex.tap = ticket;
      if (body !== null) body = teeBody(body, ticket);
    }
  }

  deps.pools.get(backend).dispatch(
    {
      path,
      method: req.method as "GET",
      headers,
      body: body as Readable | null,
      headersTimeout: backend.responseHeaderTimeoutMs,
      bodyTimeout: backend.readTimeoutMs,
    },
    ex,
  );
}

/** Requests Node accepts but an edge proxy must not forward (see RELIABILITY.md). */
function checkRequest(req: IncomingMessage, facts: RequestHeaderFacts): ErrorCode | null {
  if (facts.hostCount > 1) return "SY_DUPLICATE_HOST";
  if (req.method === "CONNECT") return "SY_METHOD_NOT_ALLOWED";
  if (facts.transferEncoding !== undefined) {
    if (req.httpVersionMinor === 0 && req.httpVersionMajor === 1) return "SY_BAD_REQUEST";
    if (facts.transferEncoding.trim().toLowerCase() !== "chunked") return "SY_UNSUPPORTED_TRANSFER_ENCODING";
  }
  return null;
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

/** The request body on its way to the primary, copied for the shadow. */
async function* teeBody(source: AsyncIterable<Buffer>, ticket: ShadowTicket): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    ticket.addBody(chunk);
    yield chunk;
  }
  ticket.bodyEnd();
}

/** A chunked body, counted and cut at the size limit (0 = no limit). */
async function* countedBody(req: IncomingMessage, ex: Exchange, max: number): AsyncGenerator<Buffer> {
  for await (const chunk of req as AsyncIterable<Buffer>) {
    ex.bytesIn += chunk.length;
    if (max > 0 && ex.bytesIn > max) {
      ex.mustClose = true;
      throw new ProxyError("SY_BODY_TOO_LARGE", `chunked body exceeds limits.max_body_size ${max}`);
    }
    yield chunk;
  }
}
