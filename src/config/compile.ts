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
  readonly connectTimeoutMs: number;
  readonly responseHeaderTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly idleTimeoutMs: number;
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
    configHashHeader: config.proxy.config_hash_header,
    metricsEnabled: config.metrics.enabled,
    shadow: compileShadowPlan(config),
  });
}

function proxyOnlyHeaders(config: Config): ReadonlySet<string> | null {
  const f = config.routing.force;
  return f.enabled ? new Set([f.header.toLowerCase(), f.secret_header.toLowerCase()]) : null;
}
