// Config -> immutable Snapshot: everything the hot path looks up, computed once per load.
// Snapshots are swapped whole; a request reads the current one once and keeps it to the end.
import { createHash } from "node:crypto";
import { compileTrustedProxies, type TrustedProxies } from "../proxy/client-ip.ts";
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
}

/** Request body limits, as the proxy applies them per request. */
export interface BodyLimits {
  /** Largest body, bytes; 0 = no limit. */
  readonly maxBytes: number;
  /** Bodies up to this size are read whole before the request goes upstream; 0 = stream every body. */
  readonly bufferBytes: number;
  /** Longest silence between two chunks from the client, ms; 0 = none. */
  readonly timeoutMs: number;
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
}

export function compileSnapshot(config: Config): Snapshot {
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
    });
  }
  return Object.freeze({
    config,
    hash: createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 12),
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
    bodyLimits: Object.freeze({ maxBytes: config.limits.max_body_size, bufferBytes: config.limits.body_buffer_size, timeoutMs: config.limits.body_timeout }),
    maxRequestsPerClient: config.limits.max_requests_per_client,
    pathNormalization: config.proxy.path_normalization,
    configHashHeader: config.proxy.config_hash_header,
    metricsEnabled: config.metrics.enabled,
    shadow: compileShadowPlan(config),
  });
}

function proxyOnlyHeaders(config: Config): ReadonlySet<string> | null {
  const f = config.routing.force;
  return f.enabled ? new Set([f.header.toLowerCase(), f.secret_header.toLowerCase()]) : null;
}
