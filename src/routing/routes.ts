// Route patterns, compiled once per config into matchers ordered most specific first.
//
//   "GET /api/1/ping"          exact path, one method        "/api/1/history/**"  the prefix and all below
//   "GET,HEAD /api/1/*/info"   * = exactly one segment       "/users/:id/settings" :name = one segment
//   { path, methods, host }    host is exact or "*.example.com"
//
// Specificity, compared in order: a host beats no host (an exact host beats a wildcard one); then
// segment by segment from the left, a literal beats * or :param, which beats **, and a longer pattern
// beats its prefix; then a method list beats any method. Two routes that compare equal and can match
// the same request are a config error (see findTies).

export type Segment = { kind: "literal"; value: string } | { kind: "one"; name: string | null } | { kind: "rest" };

export interface RouteSpec {
  /** As written in the config, for messages and explain. */
  readonly source: string;
  readonly methods: readonly string[] | null;
  readonly host: string | null;
  readonly segments: readonly Segment[];
}

export interface CompiledRoute<T> extends RouteSpec {
  readonly target: T;
  /** Position in the config (feature order, then route order): only for stable messages. */
  readonly order: number;
}

export type RouteInput = string | { path: string; methods?: string[]; host?: string };

const METHOD = /^[A-Z][A-Z0-9_-]*$/;

/** Parse one route as written; throws an Error whose message says what is wrong and what is expected. */
export function parseRoute(input: RouteInput): RouteSpec {
  let methods: string[] | null = null;
  let path: string;
  let host: string | null = null;
  let source: string;
  if (typeof input === "string") {
    source = input;
    const parts = input.trim().split(/\s+/);
    if (parts.length === 1) path = parts[0]!;
    else if (parts.length === 2) {
      path = parts[1]!;
      methods = parts[0] === "*" ? null : parts[0]!.split(",");
    } else throw new Error(`expected "METHOD /path" or "/path", got ${JSON.stringify(input)}`);
  } else {
    path = input.path;
    methods = input.methods && input.methods.length > 0 && !input.methods.includes("*") ? input.methods : null;
    host = input.host?.toLowerCase() ?? null;
    source = `${methods ? `${methods.join(",")} ` : ""}${host ?? ""}${path}`;
  }
  if (methods) {
    for (const m of methods) if (!METHOD.test(m)) throw new Error(`expected an upper-case HTTP method such as GET, got ${JSON.stringify(m)}`);
    methods = [...new Set(methods)].sort();
  }
  if (host !== null && !/^(\*\.)?[a-z0-9.-]+(:\d+)?$/.test(host)) throw new Error(`expected a host such as api.example.com or *.example.com, got ${JSON.stringify(host)}`);
  return { source, methods, host, segments: parsePath(path) };
}

function parsePath(path: string): Segment[] {
  if (!path.startsWith("/")) throw new Error(`a route path must start with "/", got ${JSON.stringify(path)}`);
  if (path.includes("?") || path.includes("#")) throw new Error(`a route path cannot hold a query or fragment, got ${JSON.stringify(path)}`);
  const raw = path.split("/").slice(1);
  if (raw.length > 0 && raw[raw.length - 1] === "") raw.pop(); // "/api/" is "/api"
  const segments: Segment[] = raw.map((seg, i) => {
    if (seg === "**") {
      if (i !== raw.length - 1) throw new Error(`"**" may only end a route path, got ${JSON.stringify(path)}`);
      return { kind: "rest" };
    }
    if (seg === "*") return { kind: "one", name: null };
    if (seg.startsWith(":")) {
      if (!/^:[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) throw new Error(`expected a parameter such as :id, got ${JSON.stringify(seg)}`);
      return { kind: "one", name: seg.slice(1) };
    }
    if (seg === "" || seg === "." || seg === ".." || seg.includes("*")) throw new Error(`unsupported segment ${JSON.stringify(seg)} in ${JSON.stringify(path)}`);
    return { kind: "literal", value: seg };
  });
  return segments;
}

const RANK = { literal: 3, one: 2, rest: 1 } as const;

/** Negative when a is more specific than b. */
export function compareSpecificity(a: RouteSpec, b: RouteSpec): number {
  const hostRank = (r: RouteSpec) => (r.host === null ? 0 : r.host.startsWith("*.") ? 1 : 2);
  if (hostRank(a) !== hostRank(b)) return hostRank(b) - hostRank(a);
  const n = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const sa = a.segments[i];
    const sb = b.segments[i];
    const ra = sa ? RANK[sa.kind] : 0;
    const rb = sb ? RANK[sb.kind] : 0;
    if (ra !== rb) return rb - ra;
  }
  if ((a.methods === null) !== (b.methods === null)) return a.methods === null ? 1 : -1;
  return 0;
}

/** Route pairs that compare equal and could both match one request: ambiguous, so an error. */
export function findTies<T>(routes: readonly CompiledRoute<T>[]): [CompiledRoute<T>, CompiledRoute<T>][] {
  const ties: [CompiledRoute<T>, CompiledRoute<T>][] = [];
  for (let i = 0; i < routes.length; i++) {
    for (let j = i + 1; j < routes.length; j++) {
      const a = routes[i]!;
      const b = routes[j]!;
      if (compareSpecificity(a, b) !== 0 || !overlap(a, b)) continue;
      ties.push([a, b]);
    }
  }
  return ties;
}

function overlap(a: RouteSpec, b: RouteSpec): boolean {
  if (a.host !== b.host) return false; // distinct exact hosts never meet (nested wildcard hosts are not compared)
  if (a.methods && b.methods && !a.methods.some((m) => b.methods!.includes(m))) return false;
  if (a.segments.length !== b.segments.length) return false;
  return a.segments.every((s, i) => {
    const t = b.segments[i]!;
    return s.kind !== "literal" || t.kind !== "literal" || s.value === t.value;
  });
}

export function sortBySpecificity<T>(routes: CompiledRoute<T>[]): CompiledRoute<T>[] {
  return routes.sort((a, b) => compareSpecificity(a, b) || a.order - b.order);
}

/** Whether a route matches (method, host, normalised path split into segments). */
export function routeMatches(r: RouteSpec, method: string, host: string | undefined, segments: readonly string[]): boolean {
  if (!methodAndHostMatch(r, method, host)) return false;
  const pat = r.segments;
  for (let i = 0; i < pat.length; i++) {
    const p = pat[i]!;
    if (p.kind === "rest") return true; // "**" matches the prefix itself and anything below
    const s = segments[i];
    if (s === undefined) return false;
    if (p.kind === "literal" && p.value !== s) return false;
  }
  return segments.length === pat.length;
}

/** The method and host parts of a route match (the path part is the caller's). */
export function methodAndHostMatch(r: RouteSpec, method: string, host: string | undefined): boolean {
  if (r.methods !== null && !r.methods.includes(method)) return false;
  if (r.host === null) return true;
  const h = (host ?? "").toLowerCase().replace(/:\d+$/, "");
  const want = r.host.replace(/:\d+$/, "");
  return want.startsWith("*.") ? h.endsWith(want.slice(1)) : h === want;
}

/** "/a/b/" -> ["a", "b"]; "/" -> []. The path must already be normalised. */
export function splitPath(normalized: string): string[] {
  return normalized === "/" ? [] : normalized.slice(1).split("/");
}
