// nginx config -> Switchyard config. Pure: directives in (nginx-parse.ts), a config object and two
// lists out: what was decided (which pool became legacy and new, and why) and every directive not
// carried over, with its file:line and the reason. Nothing is dropped silently: each directive is
// either used by a rule below or listed.
//
// What maps (the nginx idioms of a two-backend migration):
//   upstream A {server x weight=70; server y weight=30;}   -> two backends, a per-request 70/30 split
//   upstream legacy {...}  upstream new {...}             -> the two backends
//   location = /p | /p/ | ^~ /p/ | ~ ^/a/[^/]+$          -> feature routes (/p, /p/**, /a/*)
//   proxy_pass http://legacy | http://new                 -> fixed target; location / -> default_backend
//   split_clients "$cookie_uid" $v {10% new; * legacy;}   -> target {percent: 10}, identity {cookie: uid}
//   map $cookie_X|$http_X $pool {default ...; new new;}   -> routing.force (cookie or header)
//   mirror /m; location = /m {internal; proxy_pass http://new$request_uri;} -> shadow to_new
//   proxy_*_timeout, client_max_body_size, large_client_header_buffers, keepalive_timeout,
//   client_header/body_timeout, proxy_set_header Host/X-Forwarded-*, listen ... ssl http2,
//   ssl_certificate*, ssl_protocols, ssl_ciphers, HSTS add_header, proxy_next_upstream, max_fails,
//   fail_timeout, access_log off, worker_processes, proxy_ssl_verify/_trusted_certificate/_name/
//   _certificate(_key) for https:// backends.
import { isAbsolute, resolve } from "node:path";
import { formatDuration, formatSize } from "../config/units.ts";
import type { Directive } from "./nginx-parse.ts";

export interface Skipped {
  file: string;
  line: number;
  /** The directive as written (name and arguments). */
  directive: string;
  why: string;
}

export interface ImportOptions {
  /** Upstream name, host:port or URL that is the legacy backend (default: guessed, and said so). */
  legacy?: string;
  /** Likewise for the new backend; a URL may name a backend the nginx config does not know yet. */
  new?: string;
  /** Folder relative paths (certificates) are resolved against: nginx's conf prefix. */
  prefix: string;
}

export interface ImportResult {
  config: Record<string, unknown>;
  /** The choices made, for the person reading the output. */
  decisions: string[];
  skipped: Skipped[];
}

export class ImportError extends Error {}

type Backend = "legacy" | "new";

interface Server {
  addr: string;
  weight: number;
  backup: boolean;
  maxFails: number | null;
  failTimeout: number | null;
  directive: Directive;
}

interface Upstream {
  name: string;
  servers: Server[];
  directive: Directive;
  idleTimeout: Directive | null;
}

interface Split {
  variable: string;
  key: string;
  parts: { percent: number | "*"; value: string }[];
  directive: Directive;
}

interface NginxMap {
  source: string;
  variable: string;
  entries: Map<string, string>;
  fallback: string | null;
  directive: Directive;
}

/** What a proxy_pass leads to. */
type Destination =
  | { kind: "pool"; pool: string }
  | { kind: "split"; split: Split }
  | { kind: "map"; map: NginxMap; then: Destination | null };

interface Location {
  directive: Directive;
  modifier: "" | "=" | "^~" | "~" | "~*";
  path: string;
  proxyPass: Directive;
  destination: Destination;
  scheme: "http" | "https";
  /** Effective inherited directives at this location, by name: the nearest level that sets it. */
  settings: Map<string, Directive[]>;
  server: ServerBlock;
  mirror: Directive[] | null;
}

interface ServerBlock {
  directive: Directive;
  names: string[];
  listens: Directive[];
  settings: Map<string, Directive[]>;
  locations: Location[];
}

/** nginx time ("60s", "60", "1m30s", "500ms") in milliseconds, or null. */
export function nginxTime(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const m = /^(\d+)(ms|s|m|h|d|w|M|y)\s*/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return text.length > 0 ? total : null;
}

/** nginx size ("10m", "8k", "1g", "512") in bytes, or null. */
export function nginxSize(text: string): number | null {
  const m = /^(\d+)([kKmMgG]?)$/.exec(text);
  if (!m) return null;
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * mult;
}

const show = (d: Directive) => [d.name, ...d.args.map((a) => (/[\s;{}"'#]/.test(a) || a === "" ? JSON.stringify(a) : a))].join(" ");

// Why the directives Switchyard has no place for are left behind: said once per name, in words a
// person migrating can act on. Anything not here gets the generic reason.
const REASONS: Record<string, string> = {
  user: "process user: run switchyard under the user you want (systemd User=, the container's USER)",
  pid: "Switchyard writes no pid file (systemd and containers track the process)",
  error_log: "Switchyard logs JSON to stdout (log.level sets the level)",
  events: "connection handling is Node's event loop: no worker_connections to set",
  types: "MIME types: Switchyard serves no files; the backends' Content-Type passes through",
  default_type: "Switchyard serves no files; the backends' Content-Type passes through",
  types_hash_max_size: "MIME types: Switchyard serves no files",
  types_hash_bucket_size: "MIME types: Switchyard serves no files",
  server_names_hash_bucket_size: "server names are matched without a hash table to size",
  server_names_hash_max_size: "server names are matched without a hash table to size",
  sendfile: "Switchyard serves no files",
  tcp_nopush: "socket tuning is Node's",
  tcp_nodelay: "socket tuning is Node's (Nagle is off on proxied connections)",
  gzip: "Switchyard does not compress answers; a backend's Content-Encoding passes through",
  log_format: "the access log is JSON lines with fixed fields (log.access_log)",
  access_log: "the access log is JSON lines on stdout (log.access_log: true); send stdout where the file went",
  server_tokens: "Switchyard adds no Server header of its own",
  proxy_buffering: "answers are streamed to the client with backpressure, never spooled to disk",
  proxy_buffers: "answers are streamed with backpressure; no buffers to size",
  proxy_buffer_size: "answers are streamed with backpressure; no buffers to size",
  proxy_busy_buffers_size: "answers are streamed with backpressure; no buffers to size",
  proxy_request_buffering: "request bodies up to limits.body_buffer_size (64KiB) are read whole, larger ones streamed",
  client_body_buffer_size: "request bodies up to limits.body_buffer_size (64KiB) are read whole, larger ones streamed",
  proxy_http_version: "Switchyard speaks HTTP/1.1 with keep-alive to backends",
  keepalive: "Switchyard keeps backends.<name>.pool.connections (default 128) connections per backend alive",
  keepalive_requests: "no per-connection request cap",
  proxy_cache: "Switchyard caches nothing",
  proxy_cache_path: "Switchyard caches nothing",
  proxy_cache_valid: "Switchyard caches nothing",
  root: "Switchyard serves no files: only proxy_pass locations are carried over",
  alias: "Switchyard serves no files: only proxy_pass locations are carried over",
  index: "Switchyard serves no files",
  try_files: "Switchyard serves no files",
  return: "Switchyard answers nothing by itself (no redirects or fixed answers): keep this in the backend or in front",
  rewrite: "no URL rewriting: Switchyard forwards the path unchanged",
  if: "no conditional blocks: Switchyard's decision comes from routes, flags and the user hash",
  set: "no variables",
  limit_req: "no request-rate limit; limits.max_requests_per_client caps requests in flight per client",
  limit_req_zone: "no request-rate limit; limits.max_requests_per_client caps requests in flight per client",
  limit_conn: "limits.max_requests_per_client caps requests in flight per client address (set it if you relied on this)",
  limit_conn_zone: "limits.max_requests_per_client caps requests in flight per client address",
  auth_basic: "no authentication at the edge: the backends authenticate",
  auth_basic_user_file: "no authentication at the edge: the backends authenticate",
  auth_request: "no authentication at the edge: the backends authenticate",
  allow: "no access rules by address",
  deny: "no access rules by address",
  add_header: "no headers added to answers (Strict-Transport-Security is carried by listeners[].tls.hsts)",
  proxy_hide_header: "answers pass through with hop-by-hop headers stripped; no other header is hidden",
  proxy_pass_header: "answers pass through with hop-by-hop headers stripped",
  proxy_redirect: "Location headers on a backend's own origin are rewritten to the client's (proxy.rewrite_location)",
  proxy_intercept_errors: "backend error pages pass through unchanged",
  error_page: "Switchyard's own errors (502, 504 ...) have JSON bodies; backend error pages pass through",
  ssl_session_cache: "TLS sessions are Node's (tickets on)",
  ssl_session_timeout: "TLS sessions are Node's (tickets on)",
  ssl_session_tickets: "TLS sessions are Node's (tickets on)",
  ssl_prefer_server_ciphers: "Node's TLS prefers the server's cipher order",
  ssl_dhparam: "ECDHE key exchange only: no DH parameters",
  ssl_stapling: "no OCSP stapling",
  ssl_stapling_verify: "no OCSP stapling",
  ssl_trusted_certificate: "no OCSP stapling",
  ssl_ecdh_curve: "Node's default curves",
  ssl_client_certificate: "no client certificates",
  ssl_verify_client: "no client certificates",
  resolver: "backend host names are resolved by the system resolver",
  resolver_timeout: "backend host names are resolved by the system resolver",
  internal: "internal locations are not carried over",
  set_real_ip_from: "a unix: socket is not an address proxy.trusted_proxies can name",
  proxy_send_timeout: "no upstream send timeout: a backend that stops reading a request body is bounded by timeouts.response_header",
  proxy_next_upstream_timeout: "failover is one attempt on the other backend, bounded by its own timeouts",
  proxy_ignore_client_abort: "a client that goes away aborts its upstream request",
  chunked_transfer_encoding: "chunked encoding is used where needed",
  proxy_protocol: "no PROXY protocol",
  worker_connections: "connection handling is Node's event loop",
  worker_rlimit_nofile: "raise the open-file limit of the switchyard process instead (LimitNOFILE=)",
  mirror_request_body: "shadow mirrors request bodies up to shadow.max_body_size (64KiB)",
};

const GENERIC = "no Switchyard equivalent";

// Headers Switchyard sets itself (X-Forwarded-*, X-Real-IP) or handles (Upgrade, Connection).
const BUILT_IN_HEADERS: Record<string, RegExp> = {
  "x-forwarded-for": /^\$proxy_add_x_forwarded_for$|^\$remote_addr$/,
  "x-real-ip": /^\$remote_addr$/,
  "x-forwarded-proto": /^\$scheme$/,
  "x-forwarded-host": /^\$host$|^\$http_host$|^\$server_name$/,
  "x-forwarded-port": /^\$server_port$/,
  upgrade: /^\$http_upgrade$/,
  connection: /^\$connection_upgrade$|^upgrade$|^"?"?$/i,
};

const LEGACY_NAME = /legacy|old|flask|gevent|django|rails|v1\b|stable|primary|sync\b|wsgi/i;
const NEW_NAME = /\bnew|async|fastapi|uvicorn|asgi|canary|next|v2\b|beta|aiohttp/i;

export function importNginx(directives: Directive[], opts: ImportOptions): ImportResult {
  const used = new Set<Directive>();
  const noDescend = new Set<Directive>();
  const skipped: Skipped[] = [];
  const decisions: string[] = [];
  const skip = (d: Directive, why: string) => {
    used.add(d);
    skipped.push({ file: d.file, line: d.line, directive: show(d), why });
  };
  const upstreams = new Map<string, Upstream>();
  const splits = new Map<string, Split>();
  const maps = new Map<string, NginxMap>();
  const servers: ServerBlock[] = [];
  const top = new Map<string, Directive[]>();

  // --- 1. Walk: collect upstreams, splits, maps, servers, locations; inherited settings per level.
  const inherit = (parent: Map<string, Directive[]>, list: Directive[]): Map<string, Directive[]> => {
    const out = new Map(parent);
    const here = new Map<string, Directive[]>();
    for (const d of list) if (!d.block) here.set(d.name, [...(here.get(d.name) ?? []), d]);
    for (const [k, v] of here) out.set(k, v);
    return out;
  };

  const walkHttp = (list: Directive[], settings: Map<string, Directive[]>) => {
    const here = inherit(settings, list);
    for (const d of list) {
      if (d.name === "http" && d.block) {
        used.add(d);
        walkHttp(d.block, here);
      } else if (d.name === "upstream" && d.block) {
        used.add(d);
        upstreams.set(d.args[0] ?? "", readUpstream(d, skip));
      } else if (d.name === "split_clients" && d.block) {
        const s = readSplit(d);
        if (s) splits.set(s.variable, s);
        else skip(d, "split_clients with a key or parts that cannot be read");
      } else if (d.name === "map" && d.block && (d.args[0] === "$http_upgrade" || d.args[1] === "$connection_upgrade")) {
        used.add(d); // the WebSocket idiom: Switchyard forwards Upgrade and Connection itself
      } else if (d.name === "map" && d.block) {
        const m = readMap(d, skip);
        if (m) maps.set(m.variable, m);
      } else if (d.name === "server" && d.block) {
        used.add(d);
        servers.push(walkServer(d, here));
      } else if (d.name === "stream" && d.block) {
        skip(d, "TCP/UDP proxying (stream) is not HTTP: not carried over");
      } else if (d.block && (d.name === "events" || d.name === "types")) {
        skip(d, REASONS[d.name]!);
      }
    }
    for (const [k, v] of here) top.set(k, v);
  };

  const walkServer = (d: Directive, settings: Map<string, Directive[]>): ServerBlock => {
    const here = inherit(settings, d.block!);
    const server: ServerBlock = {
      directive: d,
      names: (here.get("server_name") ?? []).flatMap((x) => x.args),
      listens: here.get("listen") ?? [],
      settings: here,
      locations: [],
    };
    for (const x of here.get("server_name") ?? []) used.add(x);
    const walkLocations = (list: Directive[], s: Map<string, Directive[]>) => {
      for (const loc of list) {
        if (loc.name !== "location" || !loc.block) continue;
        used.add(loc);
        const [a, b] = loc.args;
        const modifier = (b !== undefined ? a : "") as Location["modifier"];
        const path = (b ?? a ?? "") as string;
        const ls = inherit(s, loc.block);
        const pp = loc.block.find((x) => x.name === "proxy_pass");
        if (pp) {
          const destination = resolveProxyPass(pp, path);
          if (destination) {
            used.add(pp);
            server.locations.push({
              directive: loc, modifier, path, proxyPass: pp, destination: destination.dest, scheme: destination.scheme,
              settings: ls, server, mirror: ls.get("mirror") ?? null,
            });
          }
        }
        walkLocations(loc.block, ls);
        if (!pp && !loc.block.some((x) => x.name === "location")) {
          noDescend.add(loc);
          skip(loc, `location ${loc.args.join(" ")} has no proxy_pass (nginx answered it itself: files, return): its requests go to Switchyard's default_backend`);
        }
      }
    };
    walkLocations(d.block!, here);
    return server;
  };

  const resolveVar = (name: string, seen: string[] = []): Destination | null => {
    if (seen.includes(name)) return null;
    const split = splits.get(name);
    if (split) return { kind: "split", split };
    const map = maps.get(name);
    if (map) {
      const then = map.fallback === null ? null : map.fallback.startsWith("$") ? resolveVar(map.fallback.slice(1), [...seen, name]) : { kind: "pool" as const, pool: map.fallback };
      return { kind: "map", map, then };
    }
    return null;
  };

  // proxy_pass [http|https]://(upstream | host:port | $var)[$request_uri | /uri]; a URI part other than
  // "/" in `location /` replaces the location's path, which Switchyard does not do.
  const resolveProxyPass = (pp: Directive, locationPath: string): { dest: Destination; scheme: "http" | "https" } | null => {
    const m = /^(https?):\/\/([^/]+?)(\$request_uri|\/.*)?$/.exec(pp.args[0] ?? "");
    if (!m) {
      skip(pp, "proxy_pass to something other than http(s)://host or http://$variable (a unix: socket?)");
      return null;
    }
    const [, scheme, host, uri] = m as unknown as [string, "http" | "https", string, string | undefined];
    if (uri === "/" && locationPath !== "/") {
      skip(pp, `proxy_pass with a URI part ("/") replaces "${locationPath}" in the path; Switchyard forwards the path unchanged, so this location is not carried over`);
      return null;
    }
    if (uri !== undefined && uri !== "$request_uri" && uri !== "/") {
      skip(pp, `proxy_pass with a URI part ("${uri}") rewrites the path; Switchyard forwards the path unchanged, so this location is not carried over`);
      return null;
    }
    if (host.startsWith("$")) {
      const v = host.replace(/^\$\{?|\}$/g, "");
      const dest = resolveVar(v);
      if (!dest) {
        skip(pp, `$${v} is not set by a split_clients or map block this import can read`);
        return null;
      }
      return { dest, scheme };
    }
    return { dest: { kind: "pool", pool: host }, scheme };
  };

  walkHttp(directives, new Map());

  // Mirror targets: internal locations that only receive mirrored requests are not features.
  const mirrorTargets = new Set<Directive>();
  for (const s of servers) {
    for (const l of s.locations) {
      for (const m of l.mirror ?? []) {
        const target = s.locations.find((x) => x.path === m.args[0] && x !== l);
        if (target) mirrorTargets.add(target.directive);
      }
    }
  }

  // --- 2. The two backends.
  const proxyLocations = servers.flatMap((s) => s.locations.filter((l) => !mirrorTargets.has(l.directive)));
  const pools = new Set<string>();
  const poolsOf = (d: Destination | null): string[] => {
    if (d === null) return [];
    if (d.kind === "pool") return [d.pool];
    if (d.kind === "split") return d.split.parts.map((p) => p.value);
    return [...d.map.entries.values(), ...poolsOf(d.then)].filter((v) => !v.startsWith("$"));
  };
  for (const l of servers.flatMap((s) => s.locations)) for (const p of poolsOf(l.destination)) pools.add(p);

  const urlOf = (pool: string, scheme: string): string => {
    const up = upstreams.get(pool);
    let addr = pool;
    if (up) {
      const live = up.servers.filter((s) => !s.backup);
      const chosen = live[0] ?? up.servers[0];
      addr = chosen?.addr ?? pool;
      if (chosen) used.add(chosen.directive);
      for (const s of up.servers.filter((x) => x.addr !== addr)) skip(s.directive, `upstream ${pool}: Switchyard takes one address per backend and uses ${addr}; put the others behind one address (a Service, a load balancer)`);
    }
    if (addr.startsWith("unix:")) throw new ImportError(`upstream ${pool}: ${addr} is a unix socket; Switchyard reaches backends over TCP`);
    const port = /:\d+$/.test(addr) ? "" : scheme === "https" ? ":443" : ":80";
    return `${scheme}://${addr}${port}`;
  };
  const schemeOf = (pool: string) => proxyLocations.find((l) => poolsOf(l.destination).includes(pool))?.scheme ?? "http";

  const matches = (want: string, pool: string): boolean => {
    const w = want.replace(/^https?:\/\//, "").replace(/\/$/, "");
    if (w === pool) return true;
    const up = upstreams.get(pool);
    return up !== undefined && up.servers.some((s) => s.addr === w);
  };

  let weighted: Upstream | null = null;
  const role = new Map<string, Backend>();
  const backendUrl: Record<Backend, string> = { legacy: "", new: "" };
  const given = (b: Backend) => opts[b];

  if (pools.size === 0) {
    throw new ImportError("no location with proxy_pass was found: there is nothing for Switchyard to proxy (is this the file with the server blocks? pipe `nginx -T` to read every included file)");
  }
  const single = pools.size === 1 ? upstreams.get([...pools][0]!) : undefined;
  if (single && single.servers.filter((s) => !s.backup).length >= 2) {
    // One upstream with weighted servers: the migration split nginx does per request.
    weighted = single;
    const live = single.servers.filter((s) => !s.backup);
    const pick = (b: Backend, fallback: number) => {
      const g = given(b);
      if (!g) return live[fallback]!;
      const s = live.find((x) => x.addr === g.replace(/^https?:\/\//, "").replace(/\/$/, ""));
      if (!s) throw new ImportError(`--${b} ${g}: not a server of upstream ${single.name} (${live.map((x) => x.addr).join(", ")})`);
      return s;
    };
    const legacy = pick("legacy", 0);
    const neu = pick("new", live.indexOf(legacy) === 1 ? 0 : 1);
    if (legacy === neu) throw new ImportError(`--legacy and --new name the same server ${legacy.addr}`);
    const scheme = schemeOf(single.name);
    backendUrl.legacy = `${scheme}://${legacy.addr}`;
    backendUrl.new = `${scheme}://${neu.addr}`;
    for (const s of live.filter((x) => x !== legacy && x !== neu)) skip(s.directive, `a third server: Switchyard splits between two backends (legacy ${legacy.addr}, new ${neu.addr})`);
    for (const s of single.servers.filter((x) => x.backup)) skip(s.directive, "backup server: failover goes to the other backend (failover.enabled)");
    used.add(legacy.directive);
    used.add(neu.directive);
    decisions.push(
      given("legacy") || given("new")
        ? `legacy = ${legacy.addr}, new = ${neu.addr} in upstream ${single.name} (as given)`
        : `legacy = ${legacy.addr} (first server of upstream ${single.name}), new = ${neu.addr} (second); pass --legacy/--new to swap`,
    );
  } else {
    const list = [...pools];
    const assign = (b: Backend, pool: string, why: string) => {
      role.set(pool, b);
      backendUrl[b] = urlOf(pool, schemeOf(pool));
      decisions.push(`${b} = ${upstreams.has(pool) ? `upstream ${pool} (${backendUrl[b]})` : backendUrl[b]}: ${why}`);
    };
    for (const b of ["legacy", "new"] as const) {
      const g = given(b);
      if (!g) continue;
      const pool = list.find((p) => matches(g, p));
      if (pool) assign(b, pool, "as given");
      else if (/^https?:\/\//.test(g)) {
        backendUrl[b] = g.replace(/\/$/, "");
        decisions.push(`${b} = ${backendUrl[b]}: as given (the nginx config does not send traffic there yet)`);
      } else throw new ImportError(`--${b} ${g}: not an upstream or address the nginx config proxies to (${list.join(", ")}); give an upstream name, host:port, or a URL such as http://127.0.0.1:5043`);
    }
    const free = list.filter((p) => !role.has(p));
    const need = (["legacy", "new"] as const).filter((b) => backendUrl[b] === "");
    if (need.length > free.length) {
      const missing = need.length === 2 && free.length === 1 ? "new" : need.at(-1)!;
      throw new ImportError(
        free.length === 1 && need.length === 2
          ? `the nginx config proxies to one backend (${list.join(", ")}), taken as legacy: give the new one with --new URL (e.g. --new http://127.0.0.1:5043)`
          : `the nginx config proxies to ${list.length === 0 ? "no backend" : list.join(", ")}: give the ${missing} one with --${missing} URL`,
      );
    }
    if (need.length === 2 && free.length === 2) {
      const [a, b] = free as [string, string];
      const guessA = LEGACY_NAME.test(a) && !NEW_NAME.test(a) ? "legacy" : NEW_NAME.test(a) && !LEGACY_NAME.test(a) ? "new" : null;
      const guessB = LEGACY_NAME.test(b) && !NEW_NAME.test(b) ? "legacy" : NEW_NAME.test(b) && !LEGACY_NAME.test(b) ? "new" : null;
      if (guessA && guessB && guessA !== guessB) {
        const [l, n] = guessA === "legacy" ? [a, b] : [b, a];
        assign("legacy", l, "by its name; pass --legacy/--new to choose otherwise");
        assign("new", n, "by its name");
      } else {
        const catchAll = proxyLocations.find((l) => l.path === "/" && l.modifier === "" && l.destination.kind === "pool");
        const legacy = catchAll && free.includes((catchAll.destination as { pool: string }).pool) ? (catchAll.destination as { pool: string }).pool : a;
        const neu = legacy === a ? b : a;
        assign("legacy", legacy, catchAll ? "it serves location / (everything not moved yet); pass --legacy/--new to choose otherwise" : "the first one the config uses; pass --legacy/--new to choose otherwise");
        assign("new", neu, "the other one");
      }
    } else if (need.length > 0) {
      const b = need[0]!;
      const pool = free.shift()!;
      assign(b, pool, "the pool not given");
    }
    for (const p of list.filter((x) => !role.has(x))) {
      decisions.push(`${upstreams.has(p) ? `upstream ${p}` : p} is neither backend: locations sending traffic there are not carried over`);
    }
  }

  for (const up of upstreams.values()) {
    if (pools.has(up.name)) continue;
    noDescend.add(up.directive);
    used.delete(up.directive);
    skip(up.directive, `upstream ${up.name}: no location proxies to it`);
  }

  // --- 3. Routing: features from locations.
  const backendOf = (pool: string): Backend | null => (weighted ? null : role.get(pool) ?? null);
  const features: Record<string, Record<string, unknown>> = {};
  const identity: unknown[] = [];
  let perRequest = false;
  let force: Record<string, unknown> | null = null;
  let defaultBackend: Backend | null = null;
  let globalMirror: Record<string, unknown> | null = null;
  let mirrored = false;
  const hosts = servers.filter((s) => s.locations.length > 0).length > 1;
  const featureName = (l: Location): string => {
    const base = l.path === "/" ? "all" : l.path.replace(/\^|\$|\\/g, "").replace(/\[\^\/\]\+|\(\.\*\)|\.\*|[^A-Za-z0-9]+/g, "_").replace(/^_+|_+$/g, "").toLowerCase() || "route";
    const host = hosts && l.server.names[0] && l.server.names[0] !== "_" ? `${l.server.names[0].replace(/[^a-z0-9]+/gi, "_").toLowerCase()}_` : "";
    let name = `${host}${base}`.replace(/^[^a-z0-9]+/, "") || "route";
    for (let i = 2; name in features; i++) name = `${host}${base}_${i}`;
    return name;
  };

  const targetOf = (d: Destination): Record<string, unknown> | null => {
    if (d.kind === "pool") {
      if (weighted) {
        const live = weighted.servers.filter((s) => !s.backup);
        const wl = live.find((s) => backendUrl.legacy.endsWith(s.addr))!.weight;
        const wn = live.find((s) => backendUrl.new.endsWith(s.addr))!.weight;
        perRequest = true;
        return { target: { percent: round2((wn / (wl + wn)) * 100) }, unidentified: { legacy: wl, new: wn } };
      }
      const b = backendOf(d.pool);
      return b ? { target: b } : null;
    }
    if (d.kind === "split") {
      const s = d.split;
      let pct = 0;
      let rest: Backend | null = null;
      for (const p of s.parts) {
        const b = backendOf(p.value);
        if (b === null) return null;
        if (p.percent === "*") rest = b;
        else if (b === "new") pct += p.percent;
      }
      if (rest === "new") pct = 100 - s.parts.filter((p) => p.percent !== "*" && backendOf(p.value) === "legacy").reduce((a, p) => a + (p.percent as number), 0);
      const source = identityFromKey(s.key);
      used.add(s.directive);
      if (source === "per_request") {
        perRequest = true;
        return { target: { percent: round2(pct) }, unidentified: { legacy: round2(100 - pct), new: round2(pct) } };
      }
      if (source === null) {
        skip(s.directive, `split key "${s.key}": only $cookie_NAME, $http_NAME, $arg_NAME, $remote_addr or $request_id map to an identity source; the split is carried as a per-request ${round2(pct)} % (not sticky)`);
        perRequest = true;
        return { target: { percent: round2(pct) }, unidentified: { legacy: round2(100 - pct), new: round2(pct) } };
      }
      if (!identity.some((x) => JSON.stringify(x) === JSON.stringify(source))) identity.push(source);
      return { target: { percent: round2(pct) } };
    }
    // map: a force override by cookie or header, then whatever the default leads to.
    const m = d.map;
    const src = /^\$(cookie|http)_(\w+)$/.exec(m.source);
    if (!src) {
      skip(m.directive, `map on ${m.source}: only a cookie ($cookie_NAME) or header ($http_NAME) choosing the pool becomes a force override`);
    } else if (force === null) {
      used.add(m.directive);
      const name = src[1] === "cookie" ? src[2]! : src[2]!.replace(/_/g, "-");
      force = { enabled: true, [src[1] === "cookie" ? "cookie" : "header"]: name, trusted_cidrs: ["0.0.0.0/0", "::/0"] };
      const renamed: string[] = [];
      for (const [value, pool] of m.entries) {
        const b = backendOf(pool);
        if (b && value !== b) renamed.push(`"${value}" -> ${b}`);
      }
      decisions.push(
        `map ${m.source} ${"$" + m.variable} (${m.directive.file}:${m.directive.line}) became routing.force with ${src[1]} ${name} (honoured on every route), open to every client as in nginx: narrow force.trusted_cidrs or set force.secret` +
          (renamed.length > 0 ? `; its values are legacy and new now (${renamed.join(", ")})` : ""),
      );
    }
    if (d.then === null) return null;
    return targetOf(d.then);
  };

  for (const l of proxyLocations) {
    const routes = routesOf(l, skip);
    if (routes === null) continue;
    const t = targetOf(l.destination);
    if (t === null) {
      skip(l.directive, `proxy_pass ${l.proxyPass.args[0]}: not one of the two backends`);
      continue;
    }
    const hostNames = hosts ? l.server.names.filter((n) => n !== "_" && n !== "" && !n.startsWith("~")) : [];
    const mirror = l.mirror?.find((x) => x.args[0] !== "off");
    if (routes === "catch_all" && hostNames.length === 0 && typeof t.target === "string") {
      if (defaultBackend !== null && defaultBackend !== t.target) skip(l.directive, `a second location / to ${t.target}: default_backend is already ${defaultBackend}`);
      else defaultBackend = t.target as Backend;
      if (mirror) globalMirror = shadowFor(mirror, l);
      continue;
    }
    const paths = routes === "catch_all" ? ["/**"] : routes;
    const list = hostNames.length > 0 ? paths.flatMap((p) => hostNames.map((h) => ({ path: p, host: h }))) : paths;
    const feature: Record<string, unknown> = { description: `nginx ${l.directive.file}:${l.directive.line} location ${l.directive.args.join(" ")}`, routes: list, ...t };
    if (mirror) (feature as { shadow?: unknown }).shadow = shadowFor(mirror, l);
    features[featureName(l)] = feature;
  }

  // Mirrors: every request of the location is sent to the mirror's pool as well.
  function shadowFor(mirror: Directive, l: Location): Record<string, unknown> {
    used.add(mirror);
    const target = l.server.locations.find((x) => x.path === mirror.args[0] && mirrorTargets.has(x.directive));
    const pool = target?.destination.kind === "pool" ? target.destination.pool : null;
    const b = pool === null ? null : weighted ? null : role.get(pool) ?? null;
    if (target) {
      used.add(target.directive);
      for (const x of target.directive.block ?? []) if (x.name === "internal") used.add(x);
    }
    const direction = b === "new" ? "to_new" : b === "legacy" ? "to_legacy" : "other";
    mirrored = true;
    return { enabled: true, percent: 100, direction };
  }

  // --- 4. Global settings: the value every proxying location agrees on (else the most common).
  const agreed = (name: string, among: Location[] = proxyLocations): Directive | null => {
    const seen = new Map<string, { d: Directive; n: number }>();
    for (const l of among) {
      const d = l.settings.get(name)?.at(-1);
      if (!d) continue;
      const k = d.args.join(" ");
      const e = seen.get(k) ?? { d, n: 0 };
      e.n++;
      seen.set(k, e);
    }
    if (seen.size === 0) return null;
    const ranked = [...seen.values()].sort((a, b) => b.n - a.n);
    for (const other of ranked.slice(1)) skip(other.d, `${name} differs between locations; Switchyard's is one per backend or listener, and ${ranked[0]!.d.args.join(" ")} (${ranked[0]!.d.file}:${ranked[0]!.d.line}) was taken`);
    used.add(ranked[0]!.d);
    return ranked[0]!.d;
  };
  const timeOf = (d: Directive | null): string | null => {
    if (!d) return null;
    const ms = nginxTime(d.args[0] ?? "");
    if (ms === null) {
      skip(d, "not a time nginx would read");
      return null;
    }
    return formatDuration(ms);
  };

  const timeouts: Record<string, string> = {};
  const connect = timeOf(agreed("proxy_connect_timeout"));
  if (connect) timeouts.connect = connect;
  // A WebSocket location's read timeout is its tunnels' idle timeout; the others' is the backends'.
  const isWebSocket = (l: Location) => (l.settings.get("proxy_set_header") ?? []).some((d) => d.args[0]?.toLowerCase() === "upgrade");
  const wsLocations = proxyLocations.filter(isWebSocket);
  const read = timeOf(agreed("proxy_read_timeout", proxyLocations.filter((l) => !isWebSocket(l))));
  const wsIdle = timeOf(agreed("proxy_read_timeout", wsLocations));
  for (const l of proxyLocations) {
    const v = l.settings.get("proxy_http_version")?.at(-1);
    if (v?.args[0] === "1.1") used.add(v);
  }
  if (read) {
    timeouts.response_header = read;
    timeouts.read = read;
  }
  const limits: Record<string, unknown> = {};
  const body = agreed("client_max_body_size");
  if (body) {
    const n = nginxSize(body.args[0] ?? "");
    if (n === null) skip(body, "not a size nginx would read");
    else limits.max_body_size = n === 0 ? 0 : formatSize(n);
  } else {
    limits.max_body_size = "1MiB";
    decisions.push("limits.max_body_size 1MiB: nginx's default client_max_body_size (Switchyard's own default is 10MiB)");
  }
  const lchb = agreed("large_client_header_buffers");
  if (lchb) {
    const count = Number(lchb.args[0]);
    const size = nginxSize(lchb.args[1] ?? "");
    if (!Number.isInteger(count) || size === null) skip(lchb, "expected a number and a size, e.g. 4 8k");
    else {
      limits.max_header_size = formatSize(count * size);
      decisions.push(`limits.max_header_size ${formatSize(count * size)} from large_client_header_buffers ${lchb.args.join(" ")}: the whole header block (nginx's limit of ${lchb.args[1]} per line has no equivalent)`);
    }
  }
  // limit_conn on a zone keyed by the client address: requests in flight per client.
  const zones = new Map<string, Directive>();
  for (const d of top.get("limit_conn_zone") ?? []) {
    const zone = /^zone=([^:]+):/.exec(d.args[1] ?? "")?.[1];
    if (zone && /^\$(binary_)?remote_addr$/.test(d.args[0] ?? "")) zones.set(zone, d);
  }
  const limitConn = agreed("limit_conn");
  if (limitConn) {
    const zone = zones.get(limitConn.args[0] ?? "");
    const n = Number(limitConn.args[1]);
    if (zone && Number.isInteger(n) && n > 0) {
      used.add(zone);
      limits.max_requests_per_client = n;
      decisions.push(`limits.max_requests_per_client ${n} from limit_conn ${limitConn.args.join(" ")}: requests in flight per client address (429 above it, nginx answered 503)`);
    } else {
      used.delete(limitConn);
      skip(limitConn, "limit_conn on a zone not keyed by the client address ($binary_remote_addr)");
    }
  }
  const headerTimeout = timeOf(agreed("client_header_timeout"));
  if (headerTimeout) limits.header_timeout = headerTimeout;
  const bodyTimeout = timeOf(agreed("client_body_timeout"));
  if (bodyTimeout) limits.body_timeout = bodyTimeout;
  const keepAlive = agreed("keepalive_timeout");
  if (keepAlive) {
    const t = timeOf({ ...keepAlive, args: keepAlive.args.slice(0, 1) });
    if (t) limits.keep_alive_timeout = t;
  }

  // proxy_set_header: Host decides preserve_host; X-Forwarded-* and the WebSocket pair are built in.
  const proxy: Record<string, unknown> = {};
  const hostModes = new Map<string, Location[]>();
  for (const l of proxyLocations) {
    let host: Directive | null = null;
    for (const d of l.settings.get("proxy_set_header") ?? []) {
      const name = (d.args[0] ?? "").toLowerCase();
      const value = d.args[1] ?? "";
      if (name === "host") host = d;
      else if (BUILT_IN_HEADERS[name]?.test(value)) used.add(d);
    }
    const mode = host === null ? "upstream" : /^\$(host|http_host)$/.test(host.args[1] ?? "") ? "client" : /^\$proxy_host$/.test(host.args[1] ?? "") ? "upstream" : "other";
    if (host) used.add(host);
    if (mode === "other" && host) skip(host, `Host set to ${host.args[1]}: Switchyard sends the client's Host (proxy.preserve_host: true) or the backend's host:port (false)`);
    hostModes.set(mode, [...(hostModes.get(mode) ?? []), l]);
  }
  // set_real_ip_from: the proxies in front whose forwarding headers are believed.
  const realIp = new Set<string>();
  const realIpHeader = new Set<string>();
  for (const l of proxyLocations) {
    for (const d of l.settings.get("set_real_ip_from") ?? []) {
      const cidr = d.args[0] ?? "";
      if (cidr.startsWith("unix:")) continue;
      used.add(d);
      realIp.add(cidr.includes("/") ? cidr : cidr.includes(":") ? `${cidr}/128` : `${cidr}/32`);
    }
    const h = l.settings.get("real_ip_header")?.at(-1);
    if (h) {
      used.add(h);
      realIpHeader.add(h.args[0] ?? "");
    }
    const r = l.settings.get("real_ip_recursive")?.at(-1);
    if (r) used.add(r);
  }
  if (realIp.size > 0) {
    proxy.trusted_proxies = [...realIp];
    const header = [...realIpHeader][0] ?? "X-Real-IP";
    decisions.push(
      `proxy.trusted_proxies from set_real_ip_from: X-Forwarded-For (and -Proto, -Host) from them is believed` +
        (header.toLowerCase() === "x-forwarded-for" ? "" : `; nginx read the client address from ${header}, Switchyard reads it from X-Forwarded-For`),
    );
  }
  if (hostModes.has("client")) proxy.preserve_host = true;
  else if (hostModes.has("upstream")) {
    proxy.preserve_host = false;
    decisions.push("proxy.preserve_host false: nginx sent the upstream's name as Host (no proxy_set_header Host $host); set it true to pass the client's Host");
  }
  if (hostModes.has("client") && hostModes.has("upstream")) {
    const where = hostModes.get("upstream")!.map((l) => `location ${l.directive.args.join(" ")} (${l.directive.file}:${l.directive.line})`).join(", ");
    decisions.push(`proxy.preserve_host true, although nginx sent the upstream's name as Host (its default) from ${where}: no proxy_set_header Host $host in effect there (a location's own proxy_set_header drops every one it would inherit)`);
  }
  for (const l of proxyLocations) {
    for (const d of l.settings.get("proxy_set_header") ?? []) {
      if (!used.has(d)) skip(d, `Switchyard adds no request headers of its own choosing; it sets X-Forwarded-For/-Proto/-Host/-Port and X-Real-IP itself`);
    }
  }

  // Failover and passive health: nginx retries the next server of the same upstream.
  const failover: Record<string, unknown> = {};
  const nextUpstream = agreed("proxy_next_upstream");
  if (weighted) {
    if (nextUpstream?.args.includes("off")) failover.enabled = false;
    else {
      failover.enabled = true;
      const methods = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"];
      if (nextUpstream?.args.includes("non_idempotent")) methods.push("POST", "PATCH");
      failover.methods = methods;
      decisions.push(
        `failover on: nginx retried a failed request on the other server of upstream ${weighted.name} (proxy_next_upstream ${nextUpstream?.args.join(" ") ?? "error timeout, its default"})` +
          (nextUpstream?.args.some((a) => /^http_/.test(a)) ? "; failing over on a 5xx answer is not carried over, only on errors and timeouts" : ""),
      );
    }
  } else {
    failover.enabled = false;
    if (nextUpstream) skip(nextUpstream, "retries within one upstream: Switchyard has one address per backend");
    decisions.push("failover off: nginx never sent one upstream's request to the other; turn failover.enabled on to let the other stack answer when one fails");
  }

  const backendTls = upstreamTls();
  const backends: Record<string, Record<string, unknown>> = {};
  for (const b of ["legacy", "new"] as const) {
    const entry: Record<string, unknown> = { url: backendUrl[b] };
    if (Object.keys(timeouts).length > 0) entry.timeouts = { ...timeouts };
    if (backendUrl[b].startsWith("https:") && backendTls !== null) entry.tls = { ...backendTls };
    const servers = weighted ? weighted.servers.filter((s) => backendUrl[b].endsWith(s.addr)) : [...role].filter(([, r]) => r === b).flatMap(([p]) => upstreams.get(p)?.servers.slice(0, 1) ?? []);
    const s = servers[0];
    if (s && (s.maxFails !== null || s.failTimeout !== null)) {
      const window = formatDuration(s.failTimeout ?? 10_000);
      entry.health = { passive: { consecutive_failures: s.maxFails ?? 1, window, ejection: window } };
    }
    const up = weighted ?? [...role].filter(([, r]) => r === b).map(([p]) => upstreams.get(p)).find(Boolean);
    if (up?.idleTimeout) {
      const t = timeOf(up.idleTimeout);
      if (t) {
        used.add(up.idleTimeout);
        entry.timeouts = { ...(entry.timeouts as object), idle: t };
      }
    }
    backends[b] = entry;
  }

  // TLS to https:// backends, from the proxy_ssl_* settings the https locations agree on. nginx checks
  // no backend certificate unless told to (proxy_ssl_verify off by default), Switchyard checks them
  // unless told not to: the import keeps what nginx did, and says so.
  function upstreamTls(): Record<string, unknown> | null {
    const httpsLocations = proxyLocations.filter((l) => l.scheme === "https");
    if (httpsLocations.length === 0) return null;
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(opts.prefix, p));
    const tls: Record<string, unknown> = {};
    const verify = agreed("proxy_ssl_verify", httpsLocations);
    const ca = agreed("proxy_ssl_trusted_certificate", httpsLocations);
    if (verify?.args[0] === "on") {
      if (ca) tls.ca = abs(ca.args[0] ?? "");
      decisions.push(`backends' tls: certificates checked (proxy_ssl_verify on)${ca ? ` against ${abs(ca.args[0] ?? "")}` : " against the public CAs"}`);
    } else {
      tls.verify = false;
      if (ca) skip(ca, "proxy_ssl_verify is off, so nginx never used it; set backends.<name>.tls.ca and remove verify: false to have certificates checked");
      decisions.push("backends' tls.verify false: nginx did not check the https backends' certificates (proxy_ssl_verify off, its default); turn it on with tls.ca naming the CA that signed them");
    }
    const depth = agreed("proxy_ssl_verify_depth", httpsLocations);
    if (depth) skip(depth, "the chain is checked to any depth OpenSSL allows");
    const serverName = agreed("proxy_ssl_server_name", httpsLocations);
    const name = agreed("proxy_ssl_name", httpsLocations);
    if (name) {
      const n = name.args[0] ?? "";
      if (/^[a-z0-9.-]+$/i.test(n)) tls.server_name = n.toLowerCase();
      else skip(name, "not a plain host name (variables are not carried over); the url's host is checked and sent");
      if (serverName?.args[0] !== "on") decisions.push("backends' tls.server_name is also sent in SNI (nginx sent no SNI without proxy_ssl_server_name on)");
    } else if (serverName?.args[0] !== "on") {
      decisions.push("SNI is sent to https backends named by host (nginx sends none without proxy_ssl_server_name on)");
    }
    const cert = agreed("proxy_ssl_certificate", httpsLocations);
    const key = agreed("proxy_ssl_certificate_key", httpsLocations);
    if (cert && key) {
      tls.cert = abs(cert.args[0] ?? "");
      tls.key = abs(key.args[0] ?? "");
    } else if (cert ?? key) {
      skip((cert ?? key)!, "a client certificate needs both proxy_ssl_certificate and proxy_ssl_certificate_key");
    }
    for (const other of ["proxy_ssl_protocols", "proxy_ssl_ciphers", "proxy_ssl_session_reuse"]) {
      const d = agreed(other, httpsLocations);
      if (d) skip(d, "Node's TLS client defaults (TLS 1.2 and 1.3, forward-secret ciphers, sessions reused)");
    }
    return tls;
  }

  // --- 5. Listeners: every listen of a server block that proxies; TLS per port, SNI for the others.
  const listeners = new Map<string, { host: string; port: number; http2: boolean; tls?: Record<string, unknown>; snis: Record<string, unknown>[]; d: Directive }>();
  const tlsCache = new Map<ServerBlock, Record<string, unknown>>();
  for (const s of servers) {
    if (s.locations.length === 0) {
      noDescend.add(s.directive);
      skip(s.directive, `server${s.names.length ? ` ${s.names.join(" ")}` : ""} proxies nothing (it answers by itself: return, root): Switchyard only proxies, so its listeners are not carried over`);
      for (const l of s.listens) used.add(l);
      continue;
    }
    const listens = s.listens.length > 0 ? s.listens : [{ name: "listen", args: ["80"], file: s.directive.file, line: s.directive.line } as Directive];
    const http2On = s.settings.get("http2")?.at(-1);
    if (http2On) used.add(http2On);
    for (const d of listens) {
      used.add(d);
      const addr = d.args[0] ?? "80";
      if (addr.startsWith("unix:")) {
        skip(d, "a unix socket listener: Switchyard listens on TCP");
        continue;
      }
      const m = /^(?:\[([^\]]+)\]|([^:]+))?:?(\d+)?$/.exec(addr.includes(":") || /^\d+$/.test(addr) ? addr : `${addr}:80`);
      let host = m?.[1] ?? (m?.[2] && !/^\d+$/.test(m[2]) ? m[2] : undefined) ?? "0.0.0.0";
      const port = Number(m?.[3] ?? (/^\d+$/.test(addr) ? addr : 80));
      if (host === "*") host = "0.0.0.0";
      const flags = d.args.slice(1);
      for (const f of flags.filter((x) => !["ssl", "http2", "default_server", "default", "reuseport", "deferred"].includes(x) && !/^(ipv6only|backlog|rcvbuf|sndbuf|fastopen|so_keepalive)=/.test(x))) {
        skip({ ...d, args: [addr, f] }, `listen flag ${f} is not carried over`);
      }
      const ssl = flags.includes("ssl");
      // One port, several addresses: a wildcard takes the specific ones (as nginx binds it without
      // `bind`); two specific addresses are two listeners.
      const wild = (h: string) => h === "0.0.0.0" || h === "::";
      const existing = [...listeners.values()].find((l) => l.port === port && (l.host === host || wild(l.host) || wild(host)));
      const http2 = flags.includes("http2") || http2On?.args[0] === "on";
      let tls: Record<string, unknown> | undefined;
      if (ssl) tls = tlsCache.get(s) ?? tlsOf(s, skip, used, opts.prefix);
      if (tls) tlsCache.set(s, tls);
      if (existing) {
        // [::]:443 beside 443: one listener on "::" takes both (dual stack).
        if (wild(existing.host) && wild(host) && existing.host !== host) existing.host = "::";
        else if (wild(host)) existing.host = host;
        existing.http2 ||= http2;
        if (tls && existing.tls && tls.cert !== existing.tls.cert) {
          const names = s.names.filter((n) => n !== "_" && !n.startsWith("~") && !n.startsWith("."));
          if (names.length > 0 && !existing.snis.some((x) => x.cert === tls!.cert)) existing.snis.push({ names, cert: tls.cert, key: tls.key });
        } else if (tls && !existing.tls) existing.tls = tls;
        continue;
      }
      listeners.set(`${host}:${port}`, { host, port, http2, tls, snis: [], d });
    }
  }
  const listenerList = [...listeners.values()].map((l) => {
    const out: Record<string, unknown> = { host: l.host, port: l.port };
    if (l.tls) out.tls = l.snis.length > 0 ? { ...l.tls, sni: l.snis } : l.tls;
    if (l.http2) out.http2 = true;
    return out;
  });
  if (listenerList.length === 0) throw new ImportError("no server block that proxies has a TCP listen: nothing to listen on");

  // --- 6. Process-wide bits.
  const workersD = top.get("worker_processes")?.at(-1);
  let workers: unknown;
  if (workersD) {
    used.add(workersD);
    workers = workersD.args[0] === "auto" ? "auto" : Number(workersD.args[0]);
    if (workers !== "auto" && !(Number.isInteger(workers) && (workers as number) >= 1)) {
      skip(workersD, "expected auto or a number");
      workers = undefined;
    }
  }
  const log: Record<string, unknown> = {};
  const accessOff = proxyLocations.every((l) => l.settings.get("access_log")?.at(-1)?.args[0] === "off");
  if (proxyLocations.length > 0 && accessOff) {
    log.access_log = false;
    for (const l of proxyLocations) used.add(l.settings.get("access_log")!.at(-1)!);
  }

  const routing: Record<string, unknown> = {};
  if (defaultBackend) routing.default_backend = defaultBackend;
  else {
    routing.default_backend = "legacy";
    const catchAll = Object.values(features).some((f) => (f.routes as unknown[]).includes("/**"));
    if (!catchAll) decisions.push("paths no location proxies go to legacy (nginx answered them itself, often 404)");
  }
  if (perRequest && identity.length === 0) routing.identity = { sources: [] };
  else if (identity.length > 0) routing.identity = { sources: identity };
  if (perRequest && identity.length === 0) decisions.push("each request is split on its own, as nginx's weights do (identity.sources is empty); add sources (a cookie, a header) to keep each user on one backend");
  if (identity.length > 0) decisions.push(`users are bucketed by ${identity.map((s) => JSON.stringify(s)).join(", ")}; Switchyard's hash is not nginx's MurmurHash2, so the same share of users is on new but not the same users: expect one move per user at the switch`);
  if (force) routing.force = force;

  const shadow: Record<string, unknown> = {};
  if (mirrored) {
    shadow.enabled = globalMirror !== null;
    if (globalMirror) {
      shadow.percent = 100;
      shadow.direction = globalMirror.direction;
    }
    shadow.methods = ["GET", "HEAD"];
    decisions.push("mirror became shadow on the mirrored locations (100 % of GET and HEAD, at most shadow.max_per_second a second); nginx mirrored every method, writes included: opt a feature into writes with shadow.allow_unsafe");
    for (const l of proxyLocations) for (const d of [...(l.settings.get("mirror_request_body") ?? []), ...(l.settings.get("mirror") ?? [])]) used.add(d);
  }

  const config: Record<string, unknown> = { listeners: listenerList, backends, routing, features };
  if (wsIdle) {
    config.websocket = { idle_timeout: wsIdle };
    decisions.push(`websocket.idle_timeout ${wsIdle}: the proxy_read_timeout of the WebSocket location${wsLocations.length === 1 ? "" : "s"} (a tunnel silent both ways that long is closed)`);
  }
  if (Object.keys(limits).length > 0) config.limits = limits;
  if (Object.keys(proxy).length > 0) config.proxy = proxy;
  config.failover = failover;
  if (Object.keys(shadow).length > 0) config.shadow = shadow;
  if (Object.keys(log).length > 0) config.log = log;
  if (workers !== undefined) config.workers = workers;

  // --- 7. Everything not used: listed with its reason.
  const report = (list: Directive[]) => {
    for (const d of list) {
      if (used.has(d)) {
        if (d.block && !noDescend.has(d) && !["map", "split_clients", "types", "events"].includes(d.name)) report(d.block);
        continue;
      }
      const why = REASONS[d.name] ?? (d.name.startsWith("ssl_") ? "TLS settings apply to server blocks that listen with ssl: none that proxies uses this one" : d.block ? `${d.name} block: ${GENERIC}` : GENERIC);
      skip(d, why);
    }
  };
  report(directives);
  skipped.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  return { config, decisions, skipped };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function readUpstream(d: Directive, skip: (d: Directive, why: string) => void): Upstream {
  const servers: Server[] = [];
  let idleTimeout: Directive | null = null;
  for (const x of d.block ?? []) {
    if (x.name === "server") {
      const s: Server = { addr: x.args[0] ?? "", weight: 1, backup: false, maxFails: null, failTimeout: null, directive: x };
      for (const a of x.args.slice(1)) {
        const [k, v] = a.split("=") as [string, string | undefined];
        if (k === "weight") s.weight = Number(v);
        else if (k === "backup") s.backup = true;
        else if (k === "max_fails") s.maxFails = Number(v);
        else if (k === "fail_timeout") s.failTimeout = nginxTime(v ?? "");
        else if (k === "down") s.backup = true;
      }
      servers.push(s);
    } else if (x.name === "keepalive_timeout") {
      idleTimeout = x;
    } else if (x.name === "keepalive") {
      skip(x, REASONS.keepalive!);
    }
  }
  return { name: d.args[0] ?? "", servers, directive: d, idleTimeout };
}

function readSplit(d: Directive): Split | null {
  if (d.args.length !== 2 || !d.args[1]!.startsWith("$")) return null;
  const parts: Split["parts"] = [];
  for (const x of d.block ?? []) {
    const value = x.args[0];
    if (value === undefined) return null;
    if (x.name === "*") parts.push({ percent: "*", value });
    else {
      const m = /^(\d+(?:\.\d+)?)%$/.exec(x.name);
      if (!m) return null;
      parts.push({ percent: Number(m[1]), value });
    }
  }
  return { variable: d.args[1]!.slice(1), key: d.args[0]!, parts, directive: d };
}

function readMap(d: Directive, skip: (d: Directive, why: string) => void): NginxMap | null {
  if (d.args.length !== 2 || !d.args[1]!.startsWith("$")) {
    skip(d, "map needs a source and a $variable");
    return null;
  }
  const entries = new Map<string, string>();
  let fallback: string | null = null;
  for (const x of d.block ?? []) {
    if (x.name === "default") fallback = x.args[0] ?? null;
    else if (x.name === "hostnames" || x.name === "volatile") continue;
    else if (x.name.startsWith("~")) {
      skip(x, "a regex key in a map: only exact values become force overrides");
    } else if (x.args[0] !== undefined) entries.set(x.name, x.args[0]);
  }
  return { source: d.args[0]!, variable: d.args[1]!.slice(1), entries, fallback, directive: d };
}

/** The identity source a split_clients key reads, "per_request" for $request_id, or null. */
export function identityFromKey(key: string): unknown {
  const vars = [...key.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]!);
  if (vars.length !== 1) return null;
  const v = vars[0]!;
  let m: RegExpExecArray | null;
  if ((m = /^cookie_(\w+)$/.exec(v))) return { cookie: m[1] };
  if ((m = /^http_(\w+)$/.exec(v))) return { header: m[1]!.split("_").map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("-") };
  if ((m = /^arg_(\w+)$/.exec(v))) return { query: m[1] };
  if (v === "remote_addr" || v === "binary_remote_addr") return "client_ip";
  if (v === "request_id") return "per_request";
  return null;
}

/**
 * Route patterns for a location: "catch_all" for `location /`, null (and listed) for what has no
 * equivalent. Exact -> "/p"; prefix and ^~ -> "/p/**"; a regex made of literal segments, one-segment
 * classes ([^/]+, \d+, [0-9]+, \w+) and a trailing .* -> the same with * and **.
 */
export function routesOf(l: Pick<Location, "modifier" | "path" | "directive">, skip: (d: Directive, why: string) => void): string[] | "catch_all" | null {
  const { modifier, path } = l;
  if (path.startsWith("@")) {
    skip(l.directive, "named location: reached only by error_page or try_files, which are not carried over");
    return null;
  }
  if (modifier === "=") return [path];
  if (modifier === "" || modifier === "^~") {
    if (path === "/") return "catch_all";
    if (path.endsWith("/")) return [`${path}**`];
    return [`${path}/**`];
  }
  const route = regexRoute(path);
  if (route === null) {
    skip(l.directive, `regex location: only anchored regexes of literal segments, one-segment classes ([^/]+, \\d+) and a trailing .* translate to routes`);
    return null;
  }
  return [route];
}

export function regexRoute(re: string): string | null {
  if (!re.startsWith("^/")) return null;
  let body = re.slice(1);
  let exact = false;
  if (body.endsWith("$") && !body.endsWith("\\$")) {
    exact = true;
    body = body.slice(0, -1);
  }
  let tail = "";
  const rest = /(?:\/)?(?:\(\.\*\)|\.\*|\(\/\.\*\)\?|\(\/\.\*\)|\/\.\*)$/.exec(body);
  if (rest) {
    body = body.slice(0, rest.index);
    tail = "/**";
  } else if (!exact) {
    if (!body.endsWith("/")) return null;
    tail = "/**";
  }
  // One-segment classes, written with a "/" inside, are set aside before splitting on "/".
  body = body.replace(/\/$/, "").replace(/\(?\[\^\/\][+*]\)?/g, "\u0000");
  const segs = body.split("/").slice(1);
  const out: string[] = [];
  for (const s of segs) {
    if (/^(\u0000|\\d\+|\[0-9\]\+|\\w\+|\[a-z0-9_-\]\+|\(\\d\+\)|\(\\w\+\))$/.test(s)) out.push("*");
    else if (/^(?:[A-Za-z0-9_~-]|\\\.|\\-)+$/.test(s)) out.push(s.replace(/\\/g, ""));
    else return null;
  }
  const path = `/${out.join("/")}${tail}`;
  return path === "//**" ? "/**" : path;
}

function tlsOf(s: ServerBlock, skip: (d: Directive, why: string) => void, used: Set<Directive>, prefix: string): Record<string, unknown> | undefined {
  const cert = s.settings.get("ssl_certificate")?.at(-1);
  const key = s.settings.get("ssl_certificate_key")?.at(-1);
  if (!cert || !key) {
    skip(s.directive, "listen ... ssl without ssl_certificate and ssl_certificate_key");
    return undefined;
  }
  used.add(cert);
  used.add(key);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(prefix, p));
  const tls: Record<string, unknown> = { cert: abs(cert.args[0]!), key: abs(key.args[0]!) };
  const protocols = s.settings.get("ssl_protocols")?.at(-1);
  if (protocols) {
    used.add(protocols);
    if (!protocols.args.includes("TLSv1.2") && protocols.args.includes("TLSv1.3")) tls.min_version = "TLSv1.3";
    const old = protocols.args.filter((p) => p !== "TLSv1.2" && p !== "TLSv1.3");
    if (old.length > 0) skip(protocols, `${old.join(", ")}: Switchyard accepts TLS 1.2 and 1.3 only`);
  }
  const ciphers = s.settings.get("ssl_ciphers")?.at(-1);
  if (ciphers) {
    used.add(ciphers);
    tls.ciphers = ciphers.args[0];
  }
  for (const h of s.settings.get("add_header") ?? []) {
    if ((h.args[0] ?? "").toLowerCase() !== "strict-transport-security") continue;
    const v = h.args[1] ?? "";
    if (/^max-age=\d+(; ?includeSubDomains)?(; ?preload)?$/.test(v)) {
      used.add(h);
      tls.hsts = v;
    }
  }
  return tls;
}
