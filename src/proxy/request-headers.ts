// The header block sent upstream, built in one pass over the client's raw headers (case and order kept).
// Order of work matters: hop-by-hop and Connection-listed headers are dropped first, then the proxy adds
// its own, so a client can never remove X-Forwarded-For or the request id by listing them in Connection.
import { connectionListed, isHopByHop } from "./hop-by-hop.ts";

/** Headers the proxy owns and rebuilds; client copies are read (when trusted) but never forwarded as is. */
const PROXY_OWNED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "forwarded"]);

export interface RequestHeaderFacts {
  hostCount: number;
  host: string | undefined;
  forwardedFor: string | undefined;
  forwardedProto: string | undefined;
  forwardedHost: string | undefined;
  forwardedPort: string | undefined;
  /** RFC 7239 Forwarded, all copies joined. */
  forwarded: string | undefined;
  requestId: string | undefined;
  connection: string | undefined;
  transferEncoding: string | undefined;
  contentLength: string | undefined;
  /** Every header name lowercased, in rawHeaders order (one per name/value pair). */
  lowerNames: string[];
}

/** One pass over rawHeaders collecting what the proxy decides on. */
export function readRequestHeaderFacts(raw: readonly string[], requestIdLower: string): RequestHeaderFacts {
  const f: RequestHeaderFacts = {
    hostCount: 0, host: undefined, forwardedFor: undefined, forwardedProto: undefined, forwardedHost: undefined,
    forwardedPort: undefined, forwarded: undefined, requestId: undefined, connection: undefined, transferEncoding: undefined, contentLength: undefined,
    lowerNames: [],
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    f.lowerNames.push(name);
    const value = raw[i + 1]!;
    switch (name) {
      case "host": f.hostCount++; f.host ??= value; break;
      case "x-forwarded-for": f.forwardedFor = f.forwardedFor === undefined ? value : `${f.forwardedFor}, ${value}`; break;
      case "x-forwarded-proto": f.forwardedProto ??= value; break;
      case "x-forwarded-host": f.forwardedHost ??= value; break;
      case "x-forwarded-port": f.forwardedPort ??= value; break;
      case "forwarded": f.forwarded = f.forwarded === undefined ? value : `${f.forwarded}, ${value}`; break;
      case "connection": f.connection = f.connection === undefined ? value : `${f.connection}, ${value}`; break;
      case "transfer-encoding": f.transferEncoding = f.transferEncoding === undefined ? value : `${f.transferEncoding}, ${value}`; break;
      case "content-length": f.contentLength ??= value; break;
      default: if (name === requestIdLower) f.requestId ??= value;
    }
  }
  return f;
}

export interface UpstreamHeaderContext {
  /** The socket peer is in trusted_proxies, so its X-Forwarded-* headers are believed and extended. */
  peerTrusted: boolean;
  peerIp: string;
  clientIp: string;
  /** The host the client addressed (Host, or an absolute-form authority), for X-Forwarded-Host. */
  clientHost: string;
  proto: "http" | "https";
  listenerPort: number;
  requestId: string;
  requestIdHeader: string;
  requestIdLower: string;
  /** Host to send instead of the client's (backend host when preserve_host is off, or an absolute-form authority). */
  hostOverride: string | undefined;
  /** Lower-case names the proxy consumes itself (e.g. the force-backend header and its secret). */
  drop: ReadonlySet<string> | null;
}

export function buildUpstreamHeaders(raw: readonly string[], facts: RequestHeaderFacts, ctx: UpstreamHeaderContext): string[] {
  const listed = connectionListed(facts.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = facts.lowerNames[i >> 1]!;
    if (isHopByHop(lower) || PROXY_OWNED.has(lower) || lower === ctx.requestIdLower || lower === "expect") continue;
    if (listed !== null && listed.has(lower)) continue;
    if (ctx.drop !== null && ctx.drop.has(lower)) continue;
    if (lower === "host" && ctx.hostOverride !== undefined) continue;
    out.push(name, raw[i + 1]!);
  }
  const trusted = ctx.peerTrusted;
  if (ctx.hostOverride !== undefined) out.push("host", ctx.hostOverride);
  out.push(
    "x-forwarded-for", trusted && facts.forwardedFor !== undefined ? `${facts.forwardedFor}, ${ctx.peerIp}` : ctx.peerIp,
    "x-forwarded-proto", trusted && facts.forwardedProto !== undefined ? facts.forwardedProto : ctx.proto,
    "x-forwarded-host", trusted && facts.forwardedHost !== undefined ? facts.forwardedHost : ctx.clientHost,
    "x-forwarded-port", trusted && facts.forwardedPort !== undefined ? facts.forwardedPort : String(ctx.listenerPort),
    "x-real-ip", ctx.clientIp,
    ctx.requestIdHeader, ctx.requestId,
  );
  // RFC 7239 is believed like X-Forwarded-For: only from trusted proxies, extended with this hop.
  if (trusted && facts.forwarded !== undefined) out.push("forwarded", `${facts.forwarded}, for=${forwardedNode(ctx.peerIp)}`);
  return out;
}

/** An address as a Forwarded node: IPv6 quoted and bracketed (RFC 7239 6). */
function forwardedNode(ip: string): string {
  return ip.includes(":") ? `"[${ip}]"` : ip;
}

/**
 * A Host header (or absolute-form authority) as nginx accepts it: a name of letters, digits, "-" and
 * "_" in dot-separated labels (one trailing dot allowed), an IPv4 address, or an [IPv6] literal, with
 * an optional :port. Anything else (spaces, "/", "\\", "@", empty labels) is a 400: a backend or a
 * route could read such a host differently from us.
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)(?::[0-9]{1,5})?$/;

export function isValidHost(host: string): boolean {
  return HOST.test(host);
}

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/;

/** A client-supplied request id is kept only when well-formed (no CR/LF, no quotes, bounded length). */
export function isValidRequestId(id: string): boolean {
  return REQUEST_ID.test(id);
}
