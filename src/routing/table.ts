// Config -> RoutingTable: routes parsed and sorted once, user lists as sets, thresholds as buckets,
// cookie attributes as a ready string. Pure: no I/O; the hot path only looks things up.
import { compileCidrs, type CidrSet } from "../config/cidr.ts";
import type { FeatureConfig, IdentitySourceConfig, RoutingConfig } from "../config/routing-schema.ts";
import { BUCKETS, thresholdOf } from "./hash.ts";
import type { IdentitySource } from "./identity.ts";
import { buildRouteIndex, type RouteIndex } from "./route-index.ts";
import { parseRoute, sortBySpecificity, type CompiledRoute } from "./routes.ts";

export type BackendName = "legacy" | "new";
export type Mode = "disabled" | "pilot" | "mixed" | "full";

export type FeatureTarget = { kind: "backend"; backend: BackendName } | { kind: "percent"; percent: number; threshold: number };
export type Unidentified = { kind: "backend"; backend: BackendName } | { kind: "weights"; legacy: number; new: number; threshold: number };

export interface CompiledFeature {
  readonly name: string;
  readonly enabled: boolean;
  readonly pilot: boolean;
  readonly target: FeatureTarget;
  readonly unidentified: Unidentified;
  readonly salt: string;
  readonly allow: ReadonlySet<string>;
  readonly deny: ReadonlySet<string>;
  /** What happens to this feature's open tunnels when a config change moves their user elsewhere. */
  readonly tunnelsOnMove: "keep" | "drain" | "close";
  /** Whether a decision needs the user's identity at all (percent target or user lists). */
  readonly needsIdentity: boolean;
}

export interface ForceOverride {
  readonly headerLower: string;
  readonly cookie: string;
  readonly trusted: CidrSet;
  readonly secret: string | null;
  readonly secretHeaderLower: string;
}

export interface RoutingTable {
  readonly mode: Mode;
  readonly killSwitch: boolean;
  readonly defaultBackend: BackendName;
  /** Every route, most specific first (explain, rollout-diff, checks). */
  readonly routes: readonly CompiledRoute<CompiledFeature>[];
  /** The same routes as a trie, for the hot path. */
  readonly index: RouteIndex<CompiledFeature>;
  readonly features: ReadonlyMap<string, CompiledFeature>;
  readonly identity: readonly IdentitySource[];
  readonly sticky: { readonly name: string; readonly attributes: string; readonly secureByDefault: boolean | null };
  readonly force: ForceOverride | null;
  readonly decisionHeader: boolean;
}

export function compileRoutingTable(routing: RoutingConfig, features: Record<string, FeatureConfig> = {}): RoutingTable {
  const compiled = new Map<string, CompiledFeature>();
  const routes: CompiledRoute<CompiledFeature>[] = [];
  for (const [name, f] of Object.entries(features)) {
    const feature = compileFeature(name, f, routing.salt);
    compiled.set(name, feature);
    for (const r of f.routes) routes.push({ ...parseRoute(r), target: feature, order: routes.length });
  }
  const sc = routing.identity.sticky_cookie;
  const attributes = [`Path=${sc.path}`, `Max-Age=${Math.floor(sc.max_age / 1000)}`, `SameSite=${sc.same_site}`, "HttpOnly", ...(sc.domain ? [`Domain=${sc.domain}`] : [])].join("; ");
  const f = routing.force;
  return Object.freeze({
    mode: routing.mode,
    killSwitch: routing.kill_switch,
    defaultBackend: routing.default_backend,
    routes: sortBySpecificity(routes),
    index: buildRouteIndex(routes),
    features: compiled,
    identity: routing.identity.sources.map((s) => compileSource(s, sc.name)),
    sticky: { name: sc.name, attributes, secureByDefault: sc.secure ?? (sc.same_site === "None" ? true : null) },
    force: f.enabled
      ? { headerLower: f.header.toLowerCase(), cookie: f.cookie, trusted: compileCidrs(f.trusted_cidrs), secret: f.secret ?? null, secretHeaderLower: f.secret_header.toLowerCase() }
      : null,
    decisionHeader: routing.decision_header,
  });
}

function compileFeature(name: string, f: FeatureConfig, sharedSalt: string): CompiledFeature {
  const target: FeatureTarget = typeof f.target === "string" ? { kind: "backend", backend: f.target } : { kind: "percent", percent: f.target.percent, threshold: thresholdOf(f.target.percent) };
  const u = f.unidentified;
  const unidentified: Unidentified =
    typeof u === "string" ? { kind: "backend", backend: u } : { kind: "weights", legacy: u.legacy, new: u.new, threshold: Math.round((u.new / (u.legacy + u.new)) * BUCKETS) };
  const allow = new Set(f.users.allow);
  const deny = new Set(f.users.deny);
  return Object.freeze({
    name,
    enabled: f.enabled,
    pilot: f.pilot,
    target,
    unidentified,
    salt: f.salt ?? sharedSalt,
    allow,
    deny,
    tunnelsOnMove: f.tunnels_on_move,
    needsIdentity: target.kind === "percent" || allow.size > 0 || deny.size > 0,
  });
}

function compileSource(s: IdentitySourceConfig, stickyName: string): IdentitySource {
  if (s === "client_ip") return { kind: "client_ip" };
  if (s === "sticky_cookie") return { kind: "sticky_cookie", name: stickyName };
  if ("header" in s) return { kind: "header", name: s.header.toLowerCase() };
  if ("cookie" in s) return { kind: "cookie", name: s.cookie };
  if ("query" in s) return { kind: "query", name: s.query };
  const j = s.jwt;
  return { kind: "jwt", header: j.header?.toLowerCase() ?? (j.cookie ? null : "authorization"), cookie: j.cookie ?? null, claim: j.claim };
}

