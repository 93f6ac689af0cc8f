// The header block sent to the client from the backend's raw response headers (case, order and
// duplicates such as Set-Cookie kept): hop-by-hop dropped, Location pointing at the backend rewritten,
// the request id set.
import { connectionListed, isHopByHop, mayBeHopByHop } from "./hop-by-hop.ts";

export interface ResponseHeaderContext {
  requestIdHeader: string;
  requestIdLower: string;
  requestId: string;
  /** The backend's origin as it may appear in Location (e.g. "http://127.0.0.1:5043"), or null to keep Location. */
  backendOrigin: string | null;
  /** The origin the client used, e.g. "https://shop.example". */
  publicOrigin: string;
  /** Ask the client to close (draining, or the request body was not read). */
  close: boolean;
  /** Headers the proxy adds (sticky cookie, decision header), flat name/value pairs. */
  extra: readonly string[] | null;
}

type Raw = readonly (Buffer | string)[];

const LOCATION_LENGTH = "location".length;

const str = (v: Buffer | string): string => (typeof v === "string" ? v : v.toString("latin1"));

export function buildClientHeaders(raw: Raw, ctx: ResponseHeaderContext): string[] {
  // One pass, each name converted once; only names as long as one the proxy acts on are lowercased.
  const idLength = ctx.requestIdLower.length;
  let listed: Set<string> | null = null;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = str(raw[i]!);
    if (!mayBeHopByHop(name.length) && name.length !== idLength && name.length !== LOCATION_LENGTH) {
      out.push(name, str(raw[i + 1]!));
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === "connection") {
      const names = connectionListed(str(raw[i + 1]!));
      if (names) for (const n of names) (listed ??= new Set()).add(n);
      continue;
    }
    if (isHopByHop(lower) || lower === ctx.requestIdLower) continue;
    let value = str(raw[i + 1]!);
    if (lower === "location" && ctx.backendOrigin !== null) value = rewriteLocation(value, ctx.backendOrigin, ctx.publicOrigin);
    out.push(name, value);
  }
  // Names the backend listed in Connection go too (rare: most answers list none but keep-alive/close).
  const kept = listed === null ? out : withoutListed(out, listed);
  kept.push(ctx.requestIdHeader, ctx.requestId);
  if (ctx.extra !== null) kept.push(...ctx.extra);
  if (ctx.close) kept.push("connection", "close");
  return kept;
}

function withoutListed(pairs: string[], listed: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (!listed.has(pairs[i]!.toLowerCase())) out.push(pairs[i]!, pairs[i + 1]!);
  return out;
}

/** nginx's `proxy_redirect default`: a Location on the backend's own origin is moved to the public one. */
export function rewriteLocation(location: string, backendOrigin: string, publicOrigin: string): string {
  if (!location.startsWith(backendOrigin)) return location;
  const rest = location.slice(backendOrigin.length);
  if (rest !== "" && rest[0] !== "/" && rest[0] !== "?" && rest[0] !== "#") return location; // e.g. :50430 is another port
  return publicOrigin + rest;
}

/** Trailers from the backend, minus hop-by-hop names, as Node's addTrailers wants them. */
export function filterTrailers(trailers: Record<string, string | string[] | undefined>): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || isHopByHop(name.toLowerCase())) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  return out;
}
