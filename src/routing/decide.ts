// The routing decision: a pure function of request facts and the compiled routing table.
// No I/O, no clock; randomness only through facts.mintId. HTTP, WebSocket, explain and rollout-diff
// all call this one function. Precedence, first rule that applies wins:
//   kill switch > forced (QA header/cookie, gated) > mode disabled/full > no feature matched (default)
//   > pilot mode and feature not in pilot > feature disabled > user deny list > user allow list
//   > fixed target > user bucket < percent > unidentified policy (backend or per-request weights)
import { timingSafeEqual } from "node:crypto";
import { inCidrs } from "../config/cidr.ts";
import { bucketOf } from "./hash.ts";
import { cookieValue, headerValue, resolveIdentity, type Headers, type Identity } from "./identity.ts";
import { normalizePath } from "./normalize.ts";
import { splitPath, type CompiledRoute } from "./routes.ts";
import type { BackendName, CompiledFeature, Mode, RoutingTable } from "./table.ts";

export type { BackendName, RoutingTable } from "./table.ts";
export { compileRoutingTable } from "./table.ts";

export interface RequestFacts {
  readonly method: string;
  /** Raw request target (path and query) as received; normalised here for matching only. */
  readonly target: string;
  readonly host: string | undefined;
  readonly clientIp: string;
  /** Lower-case header names, as node:http gives them. */
  readonly headers: Headers;
  /** Request id: the seed of a per-request weighted split, so a decision can be replayed. */
  readonly requestId: string;
  /** Makes a fresh random sticky id; called only for a client that needs one and has none. */
  readonly mintId: () => string;
}

export type DecisionReason =
  | "kill_switch"
  | "forced"
  | "mode_disabled"
  | "mode_full"
  | "no_feature"
  | "not_in_pilot"
  | "feature_disabled"
  | "user_denied"
  | "user_allowed"
  | "feature_target"
  | "user_bucket"
  | "unidentified"
  | "weighted";

export interface Decision {
  readonly backend: BackendName;
  /** Feature that claimed the request; null when none did (or a rule above features decided). */
  readonly feature: string | null;
  readonly reason: DecisionReason;
  readonly mode: Mode;
  /** The matching route as written in the config. */
  readonly route: string | null;
  readonly identity: Identity | null;
  /** The user's (or, for weighted, the request's) bucket 0..9999 and the threshold it was compared with. */
  readonly bucket: number | null;
  readonly threshold: number | null;
}

export function decide(facts: RequestFacts, t: RoutingTable): Decision {
  if (t.killSwitch) return result(t, "legacy", "kill_switch");
  const forced = t.force === null ? null : forcedBackend(facts, t);
  if (forced !== null) return result(t, forced, "forced");
  if (t.mode === "disabled") return result(t, "legacy", "mode_disabled");
  if (t.mode === "full") return result(t, "new", "mode_full");

  const route = matchRoute(t, facts);
  if (route === null) return result(t, t.defaultBackend, "no_feature");
  const f = route.target;
  if (t.mode === "pilot" && !f.pilot) return result(t, "legacy", "not_in_pilot", route);
  if (!f.enabled) return result(t, "legacy", "feature_disabled", route);
  if (!f.needsIdentity && f.target.kind === "backend") return result(t, f.target.backend, "feature_target", route);

  const identity = resolveIdentity(t.identity, { headers: facts.headers, target: facts.target, clientIp: facts.clientIp, mintId: facts.mintId });
  if (identity !== null) {
    if (f.deny.has(identity.key)) return result(t, "legacy", "user_denied", route, identity);
    if (f.allow.has(identity.key)) return result(t, "new", "user_allowed", route, identity);
  }
  if (f.target.kind === "backend") return result(t, f.target.backend, "feature_target", route, identity);
  if (identity !== null) {
    const bucket = bucketOf(f.salt, identity.key);
    return result(t, bucket < f.target.threshold ? "new" : "legacy", "user_bucket", route, identity, bucket, f.target.threshold);
  }
  const u = f.unidentified;
  if (u.kind === "backend") return result(t, u.backend, "unidentified", route);
  const bucket = bucketOf("switchyard-weights", facts.requestId);
  return result(t, bucket < u.threshold ? "new" : "legacy", "weighted", route, null, bucket, u.threshold);
}

function result(
  t: RoutingTable,
  backend: BackendName,
  reason: DecisionReason,
  route: CompiledRoute<CompiledFeature> | null = null,
  identity: Identity | null = null,
  bucket: number | null = null,
  threshold: number | null = null,
): Decision {
  return { backend, feature: route?.target.name ?? null, reason, mode: t.mode, route: route?.source ?? null, identity, bucket, threshold };
}

export function matchRoute(t: RoutingTable, facts: Pick<RequestFacts, "method" | "target" | "host">): CompiledRoute<CompiledFeature> | null {
  if (t.routes.length === 0) return null;
  return t.index.find(facts.method, facts.host, splitPath(normalizePath(facts.target)));
}

/** The backend a QA request may force, or null when none is asked for or the client may not. */
function forcedBackend(facts: RequestFacts, t: RoutingTable): BackendName | null {
  const f = t.force!;
  const asked = headerValue(facts.headers, f.headerLower) ?? cookieValue(headerValue(facts.headers, "cookie"), f.cookie);
  if (asked !== "legacy" && asked !== "new") return null;
  if (inCidrs(f.trusted, facts.clientIp)) return asked;
  if (f.secret !== null) {
    const given = headerValue(facts.headers, f.secretHeaderLower);
    if (given !== undefined && safeEqual(given, f.secret)) return asked;
  }
  return null;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The Set-Cookie value for a freshly minted sticky id (the cookie holds the id, never a backend). */
export function stickyCookie(t: RoutingTable, id: string, secureListener: boolean): string {
  const secure = t.sticky.secureByDefault ?? secureListener;
  return `${t.sticky.name}=${id}; ${t.sticky.attributes}${secure ? "; Secure" : ""}`;
}

/** "backend=new; feature=ping; reason=user_bucket; bucket=1234/2500" for the debug response header. */
export function describeDecision(d: Decision): string {
  let s = `backend=${d.backend}; reason=${d.reason}`;
  if (d.feature !== null) s += `; feature=${d.feature}`;
  if (d.bucket !== null) s += `; bucket=${d.bucket}/${d.threshold}`;
  return s;
}
