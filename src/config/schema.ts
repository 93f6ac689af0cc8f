// The config file's shape, validated once at load. Objects are strict: a typo such as
// `limits.max_bodysize` is an error, never a silently ignored key. Every field carries a description,
// which the generated JSON Schema (config/switchyard.schema.json) shows in editors.
import { z } from "zod";
import { findTies, parseRoute, type CompiledRoute } from "../routing/routes.ts";
import { cidr } from "./cidr.ts";
import * as D from "./defaults.ts";
import { FeaturesSchema, RoutingSchema } from "./routing-schema.ts";
import { GuardSchema } from "./guard-schema.ts";
import { BackendHealthSchema, FailoverSchema } from "./health-schema.ts";
import { ShadowSchema } from "./shadow-schema.ts";
import { duration, size } from "./fields.ts";

const port = z
  .int({ error: (iss) => `expected a TCP port number 0-65535 (0 picks a free one), got ${JSON.stringify(iss.input)}` })
  .min(0, { error: "expected a TCP port number 0-65535 (0 picks a free one)" })
  .max(65535, { error: "expected a TCP port number 0-65535 (0 picks a free one)" });

const host = z
  .string()
  .min(1, { error: "expected a host name or IP address to bind, such as 0.0.0.0 or 127.0.0.1" });

const SERVER_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

const TlsSchema = z
  .strictObject({
    cert: z.string().min(1).meta({ description: "Path to the PEM certificate chain (the default certificate). Reloaded when the file changes; a bad file keeps the one in use." }),
    key: z.string().min(1).meta({ description: "Path to the PEM private key." }),
    sni: z
      .array(
        z.strictObject({
          names: z.array(z.string().toLowerCase().regex(SERVER_NAME, { error: "expected a host name such as api.example.com or *.example.com" })).min(1)
            .meta({ description: "Server names (SNI) this certificate answers: exact, or *.example.com for one label under it." }),
          cert: z.string().min(1).meta({ description: "Path to the PEM certificate chain." }),
          key: z.string().min(1).meta({ description: "Path to the PEM private key." }),
        }),
      )
      .default([])
      .meta({ description: "More certificates, chosen by the server name the client asks for (SNI); the default certificate answers the others. Default none." }),
    min_version: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2").meta({ description: "Oldest TLS version accepted. Default TLSv1.2." }),
    ciphers: z.string().min(1).optional()
      .meta({ description: "OpenSSL cipher list (TLS 1.2 suites, and TLS 1.3 ones by their names). Default: Node's, which offers only suites with forward secrecy and AEAD." }),
    hsts: z.string().regex(/^max-age=\d+(; ?includeSubDomains)?(; ?preload)?$/, { error: 'expected a Strict-Transport-Security value such as "max-age=31536000; includeSubDomains"' }).optional()
      .meta({ description: "Send Strict-Transport-Security with this value on every answer of this listener (nginx: add_header Strict-Transport-Security ... always). Default none." }),
  })
  .meta({ description: "Serve HTTPS on this listener with these PEM files." });

export const ListenerSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { error: "expected a short name of lowercase letters, digits, _ or -" }).optional()
    .meta({ description: "Name used in logs; defaults to host:port." }),
  host: host.default(D.DEFAULT_LISTENER_HOST).meta({ description: `Address to bind. Default ${D.DEFAULT_LISTENER_HOST}.` }),
  port: port.default(D.DEFAULT_LISTENER_PORT).meta({ description: `Port to bind; 0 picks a free one. Default ${D.DEFAULT_LISTENER_PORT}.` }),
  tls: TlsSchema.optional(),
  http2: z.boolean().default(false)
    .meta({ description: "Serve HTTP/2 as well (nginx's `listen 443 ssl http2`): on a TLS listener clients choosing h2 by ALPN get HTTP/2 and the others HTTP/1.1 on the same port; on a plain listener, clients that open with the HTTP/2 preface (h2c with prior knowledge, as gRPC and load balancers do) get HTTP/2 and the others HTTP/1.1. Every HTTP/2 request takes the same path as an HTTP/1.1 one (routing, header rules, limits, shadow, metrics, access log); backends are spoken to over HTTP/1.1 unless their own http2 is on. Default false." }),
});

const backendUrl = z.string().superRefine((text, ctx) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: "custom", message: `expected an absolute http:// or https:// URL such as http://127.0.0.1:5042, got ${JSON.stringify(text)}` });
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: `expected an http:// or https:// URL, got scheme "${url.protocol.slice(0, -1)}"` });
  } else if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username || url.password) {
    ctx.addIssue({ code: "custom", message: `expected only scheme, host and port (the request path is forwarded unchanged), got ${JSON.stringify(text)}` });
  }
});

export const BackendSchema = z.strictObject({
  url: backendUrl.meta({ description: "Origin of the backend: scheme, host and port, no path." }),
  pool: z
    .strictObject({
      connections: z.int().min(1).max(65536).default(D.DEFAULT_POOL_CONNECTIONS)
        .meta({ description: `Most upstream connections open at once to this backend. Default ${D.DEFAULT_POOL_CONNECTIONS}.` }),
      queue_timeout: duration("How long a request waits for a free connection when all are busy before 503 SY_POOL_QUEUE_TIMEOUT; 0 waits without limit.", D.DEFAULT_POOL_QUEUE_TIMEOUT),
    })
    .prefault({})
    .meta({ description: "Keep-alive connection pool to this backend." }),
  timeouts: z
    .strictObject({
      connect: duration("Time to establish the TCP (and TLS) connection before answering 504.", D.DEFAULT_CONNECT_TIMEOUT),
      response_header: duration("Time from sending the request to the end of the response headers before answering 504.", D.DEFAULT_RESPONSE_HEADER_TIMEOUT),
      read: duration("Longest silence between two chunks of the response body before the response is cut.", D.DEFAULT_READ_TIMEOUT),
      idle: duration("How long an idle keep-alive connection is kept in the pool.", D.DEFAULT_UPSTREAM_IDLE_TIMEOUT),
    })
    .prefault({})
    .meta({ description: "Upstream timeouts." }),
  health: BackendHealthSchema,
  tls: z
    .strictObject({
      ca: z.string().min(1).optional()
        .meta({ description: "Path to a PEM file of the certificate authorities trusted for this backend, in place of the public ones Node ships (nginx: proxy_ssl_trusted_certificate). Read at start and at every config reload. Default: the public CAs." }),
      verify: z.boolean().default(true)
        .meta({ description: "Check the backend's certificate: signed by a trusted CA, valid today, and issued to server_name (or the URL's host). Off accepts any certificate, which lets anyone on the path between proxy and backend read and change the traffic; nginx's proxy_ssl_verify is off by default, Switchyard's is on. Default true." }),
      server_name: z.string().toLowerCase().regex(SERVER_NAME, { error: "expected a host name such as api.internal" }).optional()
        .meta({ description: "Name sent in SNI and checked against the certificate, when it is not the URL's host (a backend addressed by IP, or behind a name of its own; nginx: proxy_ssl_name with proxy_ssl_server_name on). Default: the URL's host (no SNI for an IP address)." }),
      cert: z.string().min(1).optional()
        .meta({ description: "Path to a PEM client certificate presented to the backend (mutual TLS; nginx: proxy_ssl_certificate). Needs key." }),
      key: z.string().min(1).optional()
        .meta({ description: "Path to the PEM private key of cert (nginx: proxy_ssl_certificate_key)." }),
    })
    .superRefine((t, ctx) => {
      if ((t.cert === undefined) !== (t.key === undefined)) {
        ctx.addIssue({ code: "custom", path: [t.cert === undefined ? "cert" : "key"], message: "a client certificate needs both cert and key: set the other one too, or neither" });
      }
    })
    .optional()
    .meta({ description: "How to speak TLS to an https:// backend: trusted CAs, verification, server name, client certificate. Default: verify against the public CAs, SNI from the URL." }),
  http2: z.boolean().default(false)
    .meta({ description: "Speak HTTP/2 to this backend: on https:// when the backend offers h2 by ALPN (else HTTP/1.1), on http:// with prior knowledge (h2c; the backend must speak it, as hypercorn and grpc servers do). Requests share few connections (up to 100 streams each; pool.connections counts connections); WebSocket upgrades still go over HTTP/1.1. Costs the proxy about twice the CPU per request of HTTP/1.1: for backends that need it. Default false." }),
}).superRefine((b, ctx) => {
  if (b.tls !== undefined && new URL(b.url).protocol === "http:") {
    ctx.addIssue({ code: "custom", path: ["tls"], message: `tls applies only to an https:// backend, and url is ${b.url}: make it https://, or remove tls` });
  }
});

export const BACKEND_NAMES = ["legacy", "new"] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const STORE_ERROR = 'expected "file" or a Redis URL such as redis://redis:6379/0';
const WORKERS_ERROR = 'expected "auto" (one per CPU core) or a whole number of workers from 1 to 256';

export const ConfigSchema = z
  .strictObject({
    listeners: z.array(ListenerSchema).min(1, { error: "expected at least one listener" })
      .meta({ description: "Where clients connect." }),
    backends: z
      .strictObject({
        legacy: BackendSchema.meta({ description: "The backend being migrated away from (e.g. Flask/gevent)." }),
        new: BackendSchema.meta({ description: "The backend being migrated to (e.g. FastAPI/asyncio)." }),
      }, { error: (iss) => iss.code === "invalid_type" ? "expected a map with the two backends `legacy` and `new`" : undefined })
      .meta({ description: "The two backends traffic is split between." }),
    routing: RoutingSchema.prefault({}).meta({ description: "Where each request goes: mode, kill switch, identity, overrides." }),
    features: FeaturesSchema.default({}).meta({ description: "Named features: routes and where their traffic goes." }),
    admin: z
      .strictObject({
        host: host.default(D.DEFAULT_ADMIN_HOST).meta({ description: `Admin listener address; keep it on loopback unless a token is set. Default ${D.DEFAULT_ADMIN_HOST}.` }),
        port: port.default(D.DEFAULT_ADMIN_PORT).meta({ description: `Admin listener port. Default ${D.DEFAULT_ADMIN_PORT}.` }),
        token: z.string().optional().meta({ description: "Bearer token the admin API requires; required when host is not loopback. $SWITCHYARD_ADMIN_TOKEN is used when this is unset or empty." }),
        state_file: z.string().optional()
          .meta({ description: "Where runtime overrides (admin API changes) persist. Default: <config name>-<hash>.state.json in the state directory ($SWITCHYARD_STATE_DIR, else $STATE_DIRECTORY, else /var/lib/switchyard for root, else ~/.local/state/switchyard); relative paths are relative to the config file." }),
      })
      .prefault({})
      .meta({ description: "Admin listener (status, metrics, runtime control)." }),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default(D.DEFAULT_LOG_LEVEL).meta({ description: `Log level. Default ${D.DEFAULT_LOG_LEVEL}.` }),
        access_log: z.boolean().default(true).meta({ description: "One structured line per request. Default true." }),
      })
      .prefault({})
      .meta({ description: "Structured JSON logs on stdout." }),
    shadow: ShadowSchema.prefault({}),
    guard: GuardSchema.prefault({}),
    failover: FailoverSchema,
    metrics: z
      .strictObject({
        enabled: z.boolean().default(true)
          .meta({ description: "Count requests per backend and feature for /metrics, /stats and the admin page. Default true; off only to measure its cost." }),
      })
      .prefault({})
      .meta({ description: "Request metrics (Prometheus on the admin listener's /metrics)." }),
    limits: z
      .strictObject({
        max_header_size: size("Largest request header block; larger ones get 431.", D.DEFAULT_MAX_HEADER_SIZE),
        max_body_size: size("Largest request body; larger ones get 413. 0 means no limit.", D.DEFAULT_MAX_BODY_SIZE),
        header_timeout: duration("Deadline for a client to send the whole header block (slowloris guard); 408 after it.", D.DEFAULT_HEADER_TIMEOUT),
        request_timeout: duration("Deadline for a client to send the whole request, body included; 0 disables it.", D.DEFAULT_REQUEST_TIMEOUT),
        body_timeout: duration("Longest silence between two chunks of a request body (nginx client_body_timeout); 408 and the upstream request aborted after it. 0 disables it.", D.DEFAULT_BODY_TIMEOUT),
        body_buffer_size: size("Request bodies up to this size are read whole before a backend connection is taken, so a stalled or malformed small body never holds one; larger bodies stream. 0 streams every body.", D.DEFAULT_BODY_BUFFER_SIZE),
        max_requests_per_client: z.int().min(0).default(0)
          .meta({ description: "Most requests one client address may have in flight at once (WebSocket tunnels not counted); more get 429. 0 means no limit. Default 0." }),
        keep_alive_timeout: duration("How long an idle client keep-alive connection stays open.", D.DEFAULT_CLIENT_KEEP_ALIVE_TIMEOUT),
        http2_max_concurrent_streams: z.int().min(1).max(2 ** 31 - 1).default(128)
          .meta({ description: "HTTP/2: most streams (requests) one connection may have open at once, announced to the client (nginx http2_max_concurrent_streams). Default 128." }),
        http2_reset_burst: z.int().min(1).default(1000)
          .meta({ description: "HTTP/2: stream resets (RST_STREAM) a client may send in a burst before the rate below applies; past both the connection is closed (the rapid-reset attack, CVE-2023-44487). Default 1000." }),
        http2_reset_rate: z.int().min(1).default(33)
          .meta({ description: "HTTP/2: stream resets per second a client may sustain after the burst. Default 33." }),
      })
      .prefault({})
      .meta({ description: "Client-side limits." }),
    proxy: z
      .strictObject({
        preserve_host: z.boolean().default(true).meta({ description: "Pass the client's Host header to the backend (true) or send the backend's own host (false). Default true." }),
        path_normalization: z.enum(["normalize", "refuse"]).default("normalize")
          .meta({ description: "Request paths are matched in canonical form (escapes of unreserved characters decoded, // collapsed, . and .. resolved). normalize: send the backend that canonical path, exactly what was matched. refuse: answer 400 to any path not already canonical. Default normalize." }),
        trusted_proxies: z.array(cidr).default([])
          .meta({ description: "CIDRs of proxies in front of Switchyard whose X-Forwarded-* headers are believed. Default none." }),
        request_id: z
          .strictObject({
            header: z.string().regex(/^[A-Za-z0-9-]+$/, { error: "expected an HTTP header name" }).default(D.DEFAULT_REQUEST_ID_HEADER)
              .meta({ description: `Header carrying the request id both ways. Default ${D.DEFAULT_REQUEST_ID_HEADER}.` }),
            preserve: z.enum(["any", "trusted", "never"]).default(D.DEFAULT_REQUEST_ID_PRESERVE)
              .meta({ description: "Keep a well-formed incoming id from any client, only from trusted_proxies, or never. Default any." }),
          })
          .prefault({}),
        rewrite_location: z.boolean().default(true)
          .meta({ description: "Rewrite Location headers that point at a backend's own origin to the client-facing origin (nginx proxy_redirect default). Default true." }),
        config_hash_header: z.boolean().default(false)
          .meta({ description: "Add X-Switchyard-Config: <hash of the effective config> to responses, so a fleet running mixed configs shows. Default false." }),
      })
      .prefault({})
      .meta({ description: "Forwarding behaviour." }),
    websocket: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: "Accept upgrades and tunnel them to the chosen backend. Default true." }),
        protocols: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, { error: "expected an Upgrade token in lowercase, such as websocket" })).min(1).default(["websocket"])
          .meta({ description: "Upgrade tokens accepted; anything else is served as plain HTTP with Upgrade removed. Default [websocket]." }),
        handshake_timeout: duration("Time for the backend to answer the upgrade; 504 after it.", D.DEFAULT_WS_HANDSHAKE_TIMEOUT),
        idle_timeout: duration("Close a tunnel with no traffic either way for this long; 0 keeps idle tunnels open.", "0"),
        max_tunnels: z.int().min(1).default(D.DEFAULT_MAX_TUNNELS).meta({ description: `Most open tunnels in total; further upgrades get 503. Default ${D.DEFAULT_MAX_TUNNELS}.` }),
        max_tunnels_per_backend: z.int().min(1).optional().meta({ description: "Most open tunnels to one backend; further upgrades get 503. Default: max_tunnels." }),
        move_drain_timeout: duration("For features with tunnels_on_move: drain, how long a moved tunnel stays open before it is closed with 1012.", "30s"),
      })
      .prefault({})
      .meta({ description: "WebSocket (and other Upgrade) tunnels." }),
    control: z
      .strictObject({
        store: z
          .union([z.literal("file"), z.string().regex(/^rediss?:\/\/\S+$/, { error: STORE_ERROR })], { error: STORE_ERROR })
          .default("file")
          .meta({ description: "Where runtime overrides (admin changes, kill switch, mode, guard rollbacks) live: file (this process's state file) or a Redis URL shared by every replica, so a change on one applies on all within a second. Default file." }),
        prefix: z.string().regex(/^[A-Za-z0-9:_-]+$/, { error: "expected letters, digits, : _ or -" }).default("switchyard")
          .meta({ description: "Key prefix in Redis; fleets sharing one Redis need different prefixes. Default switchyard." }),
      })
      .prefault({})
      .meta({ description: "Runtime state shared by replicas." }),
    workers: z
      .union([z.literal("auto"), z.int({ error: WORKERS_ERROR }).min(1, { error: WORKERS_ERROR }).max(256, { error: WORKERS_ERROR })], { error: WORKERS_ERROR })
      .default(1)
      .meta({ description: "Processes serving traffic. 1: one process does everything. N or auto (one per CPU core): a primary keeps the control plane (config watch, admin API, guard, state file, shadow store) and N workers share the listeners; a runtime change reaches every worker, /metrics, /stats and /status cover them all, a crashed worker is restarted. Caps that protect the backends (shadow.max_per_second, shadow.max_in_flight, websocket.max_tunnels*) are shared out, 1/N per worker; limits.max_requests_per_client applies per worker. --workers overrides it. Default 1." }),
    memory: z
      .strictObject({
        idle_trim_after: duration("After startup or a reload, once nothing has been in flight (no request, no tunnel) for this long, one full compacting garbage collection hands back the memory loading the config left behind (about 14 MiB; a pause of a few tens of ms, only while idle). 0 turns it off.", D.DEFAULT_IDLE_TRIM_AFTER),
        park_idle_connections_after: duration("A client keep-alive connection with no request for between this long and twice this long gives back its HTTP parser (about 7 KiB, most of what an idle connection costs); its next request gets a fresh one. Deadlines are unchanged: limits.keep_alive_timeout still closes it. 0 keeps every parser.", D.DEFAULT_PARK_IDLE_CONNECTIONS_AFTER),
      })
      .prefault({})
      .meta({ description: "Memory handed back to the system while idle." }),
    shutdown: z
      .strictObject({
        drain_timeout: duration("On SIGTERM/SIGINT, how long in-flight requests may take to finish before connections are closed.", D.DEFAULT_DRAIN_TIMEOUT),
      })
      .prefault({})
      .meta({ description: "Graceful shutdown." }),
  })
  .superRefine((cfg, ctx) => {
    const seenNames = new Map<string, number>();
    const seenAddrs = new Map<string, number>();
    cfg.listeners.forEach((l, i) => {
      if (l.name !== undefined) {
        const prev = seenNames.get(l.name);
        if (prev !== undefined) ctx.addIssue({ code: "custom", path: ["listeners", i, "name"], message: `duplicate listener name "${l.name}" (also listeners[${prev}])` });
        seenNames.set(l.name, i);
      }
      if (l.port === 0) return;
      const addr = `${l.host}:${l.port}`;
      const prev = seenAddrs.get(addr);
      if (prev !== undefined) ctx.addIssue({ code: "custom", path: ["listeners", i, "port"], message: `listeners[${prev}] already binds ${addr}` });
      seenAddrs.set(addr, i);
      if (l.port === cfg.admin.port && (l.host === cfg.admin.host || l.host === "0.0.0.0" || l.host === "::")) {
        ctx.addIssue({ code: "custom", path: ["admin", "port"], message: `admin port ${cfg.admin.port} is also bound by listeners[${i}]; choose another port` });
      }
    });
    for (const name of BACKEND_NAMES) {
      const h = cfg.backends[name].health;
      if (h.passive.ejection > h.passive.max_ejection) {
        ctx.addIssue({ code: "custom", path: ["backends", name, "health", "passive", "ejection"], message: "ejection must not exceed max_ejection" });
      }
      if (h.active && h.active.timeout > h.active.interval) {
        ctx.addIssue({ code: "custom", path: ["backends", name, "health", "active", "timeout"], message: "a check's timeout must not exceed its interval" });
      }
    }
    if (cfg.limits.request_timeout !== 0 && cfg.limits.header_timeout > cfg.limits.request_timeout) {
      ctx.addIssue({ code: "custom", path: ["limits", "header_timeout"], message: "header_timeout must not exceed request_timeout (or set request_timeout to 0)" });
    }
    for (const [a, b] of findTies(featureRoutes(cfg.features))) {
      ctx.addIssue({
        code: "custom",
        path: ["features", b.target.feature, "routes", b.target.index],
        message: `route "${b.source}" is as specific as "${a.source}" (feature ${a.target.feature}) and both match the same requests; make one more specific or merge them`,
      });
    }
    for (const [name, f] of Object.entries(cfg.features)) {
      if (f.schedule && typeof f.target === "string") {
        ctx.addIssue({ code: "custom", path: ["features", name, "target"], message: `feature ${name} has a schedule, so its target must be { percent: N } (the schedule moves the percent); got ${f.target}` });
      }
    }
  });

/** Every feature route, compiled, tagged with where it stands in the file. */
export function featureRoutes(features: Config["features"]): CompiledRoute<{ feature: string; index: number }>[] {
  const out: CompiledRoute<{ feature: string; index: number }>[] = [];
  for (const [feature, f] of Object.entries(features)) {
    f.routes.forEach((route, index) => {
      let spec;
      try {
        spec = parseRoute(route);
      } catch {
        return; // reported at its own place by the route's validation
      }
      out.push({ ...spec, target: { feature, index }, order: out.length });
    });
  }
  return out;
}

/** The admin token in effect: admin.token, else $SWITCHYARD_ADMIN_TOKEN; undefined when neither is set. */
export function effectiveAdminToken(admin: Config["admin"], env: Record<string, string | undefined>): string | undefined {
  return admin.token || env.SWITCHYARD_ADMIN_TOKEN || undefined;
}

export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

/** The config as the file states it, with defaults applied and units converted (ms, bytes). */
export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type BackendConfig = Config["backends"][BackendName];
export type ListenerConfig = Config["listeners"][number];
