// Config -> immutable Snapshot: everything the hot path looks up, computed once per load.
// Snapshots are swapped whole; a request reads the current one once and keeps it to the end.
import { createHash } from "node:crypto";
import { loadBackendTls, type BackendTls } from "../forward/backend-tls.ts";
import { compileTrustedProxies, type TrustedProxies } from "../proxy/client-ip.ts";
import type { ActiveCheck, ActiveRules, PassiveRules } from "../health/state.ts";
import { compileRoutingTable, type RoutingTable } from "../routing/table.ts";
import { compileShadowPlan, type ShadowPlan } from "../shadow/settings.ts";
import { BACKEND_NAMES, type BackendName, type Config } from "./schema.ts";

export interface BackendTarget {
  readonly name: BackendName;
  /** "http://127.0.0.1:5042": scheme, host and port as undici's pool wants it. */
  readonly origin: string;
  /** host[:port] sent as Host when preserve_host is off. */
  readonly hostHeader: string;
  readonly connections: number;
  /** How long a request waits for a free connection before 503; 0 = without limit. */
  readonly queueTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly responseHeaderTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** TLS towards an https:// backend (CAs, verification, SNI, client certificate); null: Node's defaults. */
  readonly tls: BackendTls | null;
  /** Speak HTTP/2 to it (ALPN on https://, prior knowledge on http://). */
  readonly http2: boolean;
  /** Health rules: passive detection, and the thresholds of active checks (null: none). */
  readonly health: { readonly passive: PassiveRules; readonly active: ActiveRules | null };
  readonly activeCheck: ActiveCheck | null;
}

/** Whether a feature's requests may go to the other backend, and which methods after being sent. */
export interface FailoverPolicy {
  readonly enabled: boolean;
  readonly methods: ReadonlySet<string>;
}

/** Request body limits, as the proxy applies them per request. */
export interface BodyLimits {
  /** Largest body, bytes; 0 = no limit. */
  readonly maxBytes: number;
  /** Bodies up to this size are read whole before the request goes upstream; 0 = stream every body. */
  readonly bufferBytes: number;
  /** Longest silence between two chunks from the client, ms; 0 = none. */
  readonly timeoutMs: number;
  /** The whole request by then, ms from its arrival; 0 = none (HTTP/1.1: Node's requestTimeout enforces it). */
  readonly requestTimeoutMs: number;
}

export interface Snapshot {
  readonly config: Config;
  /** Short hash of the effective config, for status, metrics and logs. */
  readonly hash: string;
  readonly backends: Readonly<Record<BackendName, BackendTarget>>;
  readonly routing: RoutingTable;
  readonly trustedProxies: TrustedProxies;
  readonly preserveHost: boolean;
  readonly rewriteLocation: boolean;
  readonly requestIdHeader: string;
  readonly requestIdLower: string;
  readonly requestIdPreserve: "any" | "trusted" | "never";
  readonly maxBodyBytes: number;
  readonly bodyLimits: BodyLimits;
  readonly maxRequestsPerClient: number;
  readonly pathNormalization: "normalize" | "refuse";
  readonly configHashHeader: boolean;
  readonly metricsEnabled: boolean;
  readonly shadow: ShadowPlan;
  /** Request headers meant for the proxy alone (force override, its secret): never sent upstream. */
  readonly proxyOnlyHeaders: ReadonlySet<string> | null;
  /** Failover per feature name; `failoverDefault` for requests no feature claims. */
  readonly failover: ReadonlyMap<string, FailoverPolicy>;
  readonly failoverDefault: FailoverPolicy;
}

/**
 * One worker's share of the caps that protect the backends (whose load is the sum over workers): the
 * shadow budget and the tunnel limits are divided by the number of workers. A client's connections
 * can all land on one worker, so limits.max_requests_per_client stays whole.
 */
export function workerShare(config: Config, workers: number): Config {
  if (workers <= 1) return config;
  const part = (x: number) => Math.max(1, Math.ceil(x / workers));
  const ws = config.websocket;
  return {
    ...config,
    shadow: { ...config.shadow, max_per_second: config.shadow.max_per_second / workers, max_in_flight: part(config.shadow.max_in_flight) },
    websocket: { ...ws, max_tunnels: part(ws.max_tunnels), ...(ws.max_tunnels_per_backend !== undefined && { max_tunnels_per_backend: part(ws.max_tunnels_per_backend) }) },
  };
}

/**
 * Compile a config for the hot path. `workers` > 1: a worker's snapshot, with its share of the caps
 * (workerShare); the hash stays that of the whole config, the same in every worker and the primary.
 */
export function compileSnapshot(whole: Config, workers = 1): Snapshot {
  const config = workerShare(whole, workers);
  const backends = {} as Record<BackendName, BackendTarget>;
  for (const name of BACKEND_NAMES) {
    const b = config.backends[name];
    const url = new URL(b.url);
    backends[name] = Object.freeze({
      name,
      origin: url.origin,
      hostHeader: url.host,
      connections: b.pool.connections,
      queueTimeoutMs: b.pool.queue_timeout,
      connectTimeoutMs: b.timeouts.connect,
      responseHeaderTimeoutMs: b.timeouts.response_header,
      readTimeoutMs: b.timeouts.read,
      idleTimeoutMs: b.timeouts.idle,
      tls: b.tls ? loadBackendTls(b.tls, `backends.${name}.tls`) : null,
      http2: b.http2,
      health: Object.freeze({
        passive: { consecutiveFailures: b.health.passive.consecutive_failures, windowMs: b.health.passive.window, ejectionMs: b.health.passive.ejection, maxEjectionMs: b.health.passive.max_ejection },
        active: b.health.active ? { healthyThreshold: b.health.active.healthy_threshold, unhealthyThreshold: b.health.active.unhealthy_threshold } : null,
      }),
      activeCheck: b.health.active
        ? Object.freeze({ path: b.health.active.path, intervalMs: b.health.active.interval, timeoutMs: b.health.active.timeout, jitterMs: b.health.active.jitter, expected: b.health.active.expected_status })
        : null,
    });
  }
  return Object.freeze({
    config,
    hash: createHash("sha256").update(JSON.stringify(whole)).digest("hex").slice(0, 12),
    backends: Object.freeze(backends),
    routing: compileRoutingTable(config.routing, config.features),
    proxyOnlyHeaders: proxyOnlyHeaders(config),
    trustedProxies: compileTrustedProxies(config.proxy.trusted_proxies),
    preserveHost: config.proxy.preserve_host,
    rewriteLocation: config.proxy.rewrite_location,
    requestIdHeader: config.proxy.request_id.header,
    requestIdLower: config.proxy.request_id.header.toLowerCase(),
    requestIdPreserve: config.proxy.request_id.preserve,
    maxBodyBytes: config.limits.max_body_size,
    bodyLimits: Object.freeze({ maxBytes: config.limits.max_body_size, bufferBytes: config.limits.body_buffer_size, timeoutMs: config.limits.body_timeout, requestTimeoutMs: config.limits.request_timeout }),
    maxRequestsPerClient: config.limits.max_requests_per_client,
    pathNormalization: config.proxy.path_normalization,
    configHashHeader: config.proxy.config_hash_header,
    metricsEnabled: config.metrics.enabled,
    shadow: compileShadowPlan(config),
    ...compileFailover(config),
  });
}

function compileFailover(config: Config): { failover: ReadonlyMap<string, FailoverPolicy>; failoverDefault: FailoverPolicy } {
  const g = config.failover;
  const failoverDefault: FailoverPolicy = Object.freeze({ enabled: g.enabled, methods: new Set(g.methods) });
  const failover = new Map<string, FailoverPolicy>();
  for (const [name, f] of Object.entries(config.features)) {
    failover.set(name, f.failover ? Object.freeze({ enabled: f.failover.enabled ?? g.enabled, methods: new Set(f.failover.methods ?? g.methods) }) : failoverDefault);
  }
  return { failover, failoverDefault };
}

function proxyOnlyHeaders(config: Config): ReadonlySet<string> | null {
  const f = config.routing.force;
  return f.enabled ? new Set([f.header.toLowerCase(), f.secret_header.toLowerCase()]) : null;
}
