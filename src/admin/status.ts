// GET /status: what is running, where each routing value comes from, and how the last load went.
import type { ControlPlane } from "../control/control-plane.ts";
import { fileValue } from "../control/overrides.ts";
import type { Config } from "../config/schema.ts";
import type { BackendTarget } from "../config/compile.ts";
import { runningAllocator } from "../observe/memory.ts";
import { WINDOWS, type WindowName } from "../observe/window.ts";

const VERSION = "0.1.0";

type Sourced<T> = { value: T; source: "file" | "override"; file_value?: unknown; set_by?: string; set_at?: string };

export function buildStatus(cp: ControlPlane) {
  const snap = cp.app.snapshot;
  const eff = snap.config;
  const file = cp.fileConfig;
  const sourced = <T>(key: string, value: T, fallbackKey?: string, fileShape?: unknown): Sourced<T> => {
    const o = cp.overrides.get(key) ?? (fallbackKey ? cp.overrides.get(fallbackKey) : undefined);
    if (!o) return { value, source: "file" };
    return { value, source: "override", file_value: fileShape ?? fileValue(file, key), set_by: o.by, set_at: o.at };
  };
  const targetShape = (t: Config["features"][string]["target"]) => (typeof t === "string" ? t : { percent: t.percent });
  const features: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(eff.features)) {
    const targetKey = cp.overrides.has(`features.${name}.target`) ? `features.${name}.target` : `features.${name}.percent`;
    features[name] = {
      enabled: sourced(`features.${name}.enabled`, f.enabled, "features.*.enabled"),
      target: sourced(targetKey, targetShape(f.target), cp.overrides.has("features.*.target") ? "features.*.target" : "features.*.percent", file.features[name] && targetShape(file.features[name].target)),
      pilot: f.pilot,
      routes: f.routes,
    };
  }
  const cluster = cp.cluster;
  const pools = cluster ? cluster.pools() : cp.app.pools.stats();
  // Backend health from the last minute of real traffic, over every feature.
  const lastMinute: Record<string, { requests: number; errors: number }> = {};
  for (const byBackend of Object.values(cp.app.metrics.stats())) {
    for (const [backend, w] of Object.entries(byBackend)) {
      const t = (lastMinute[backend] ??= { requests: 0, errors: 0 });
      t.requests += w["1m"].requests;
      t.errors += w["1m"].errors;
    }
  }
  const health = (name: string) => {
    const t = lastMinute[name] ?? { requests: 0, errors: 0 };
    const rate = t.requests === 0 ? null : t.errors / t.requests;
    return { last_minute: { ...t, error_rate: rate }, state: rate === null ? "no traffic" : rate >= 0.5 ? "failing" : rate > 0.01 ? "degraded" : "ok" };
  };
  return {
    version: VERSION,
    uptime_seconds: Math.round((Date.now() - cp.startedAt) / 1000),
    // jemalloc gives memory back after a load; the system allocator keeps much of it (README, Memory).
    allocator: runningAllocator(),
    config: {
      file: cp.file,
      hash: snap.hash,
      state_file: cp.stateFile,
      last_load: cp.lastLoad,
      reloads: cp.reloads,
    },
    mode: sourced("routing.mode", eff.routing.mode),
    kill_switch: sourced("routing.kill_switch", eff.routing.kill_switch),
    default_backend: eff.routing.default_backend,
    features,
    overrides: Object.fromEntries(cp.overrides),
    control_store: cp.store === null ? { kind: "file", path: cp.stateFile } : { kind: "redis", url: cp.store.url, connected: cp.store.connected, version: cp.storeVersion, error: cp.store.lastError, replica: cp.replicaId, leader: cp.leader, replicas: cp.replicas, config_hashes_differ: new Set(cp.replicas.map((r) => r.config_hash)).size > 1 },
    backends: Object.fromEntries(
      Object.values(snap.backends).map((b) => {
        // The backend's own pool; else the one it shares (two backends at one address with the same
        // settings share a pool, named after whichever opened it).
        const pool = (http2: boolean) =>
          pools.find((p) => p.backend === b.name && p.origin === b.origin && p.http2 === http2) ?? pools.find((p) => p.origin === b.origin && p.http2 === http2);
        // A backend spoken to over HTTP/2 takes WebSocket upgrades over an HTTP/1.1 pool beside it.
        const upgrades = b.http2 ? pool(false) : undefined;
        return [b.name, { url: b.origin, protocol: b.http2 ? (b.origin.startsWith("https:") ? "h2 by ALPN" : "h2c") : "http/1.1", ...(b.origin.startsWith("https:") && { tls: tlsView(b) }), ...health(b.name), health: healthOf(cp, b), pool: pool(b.http2) ?? { connected: 0, running: 0, pending: 0 }, ...(upgrades && { websocket_pool: upgrades }) }];
      }),
    ),
    guard: cp.guard.status(),
    guard_source: cp.guard.sourceView(),
    shadow_store: shadowStoreStatus(cp),
    tunnels: cluster ? cluster.tunnels() : cp.app.tunnels.stats(),
    inflight: cluster ? cluster.inflight() : cp.app.state.inflight,
    listeners: cluster ? cluster.urls : cp.app.urls,
    // With workers: each one's state; pools, tunnels and in-flight above are their sums as of their last report (at most a second old).
    workers: cluster ? cluster.workers() : null,
    /** How long the last change took from the primary to every worker (ms). */
    workers_propagation_ms: cluster ? cluster.lastPropagationMs : null,
  };
}

/**
 * GET /stats: per feature and backend over 1 m, 5 m and 1 h, the numbers the rollout guides' go/no-go criteria
 * use, and new against legacy side by side (p99 change in percent: negative is faster).
 */
export function buildStats(cp: ControlPlane) {
  const features = cp.app.metrics.stats();
  const comparison: Record<string, Record<string, { p99_change_percent: number | null; error_rate_legacy: number | null; error_rate_new: number | null }>> = {};
  for (const [feature, byBackend] of Object.entries(features)) {
    const legacy = byBackend.legacy;
    const neu = byBackend.new;
    if (!legacy || !neu) continue;
    comparison[feature] = {};
    for (const w of Object.keys(WINDOWS) as WindowName[]) {
      const l = legacy[w];
      const n = neu[w];
      comparison[feature][w] = {
        p99_change_percent: l.p99_ms !== null && n.p99_ms !== null && l.p99_ms > 0 ? Math.round(((n.p99_ms - l.p99_ms) / l.p99_ms) * 1000) / 10 : null,
        error_rate_legacy: l.error_rate,
        error_rate_new: n.error_rate,
      };
    }
  }
  return { generated_at: new Date().toISOString(), config_hash: cp.app.snapshot.hash, windows: Object.keys(WINDOWS), features, comparison };
}

/** The shadow store as its worker last measured it, and how long max_size lasts at the rate seen. */
function shadowStoreStatus(cp: ControlPlane) {
  const store = cp.app.shadowStore;
  if (store === null) return null;
  const st = store.stats;
  const cfg = cp.app.snapshot.config.shadow.store;
  const spanMs = st && st.oldest !== null && st.newest !== null ? st.newest - st.oldest : 0;
  // Records per hour over the stored span, and the bytes each takes on disk, give max_size in hours.
  const holdsHours = st && st.records > 1 && spanMs >= 60_000 && cfg.max_size > 0 ? Math.round(((cfg.max_size / (st.bytes / st.records)) / (st.records / (spanMs / 3_600_000))) * 10) / 10 : null;
  return {
    path: store.path,
    bytes: st?.bytes ?? null,
    records: st?.records ?? null,
    oldest: st?.oldest ? new Date(st.oldest).toISOString() : null,
    newest: st?.newest ? new Date(st.newest).toISOString() : null,
    max_size: cfg.max_size,
    max_age_ms: cfg.max_age,
    max_size_holds_hours: holdsHours,
    // With workers, pairs their buffers for the primary dropped count as overflow too.
    lost: { ...store.losses, overflow: store.losses.overflow + (cp.cluster?.pairsLost() ?? 0) },
  };
}

/** A backend's rotation state (active checks and passive detection), with times as ISO strings. */
function healthOf(cp: ControlPlane, b: BackendTarget) {
  // With workers each detects failures on its own traffic: show the worst, and every worker's state.
  const seen = cp.cluster?.health(b.name) ?? [];
  const worst = seen.find((w) => w.health.state !== "healthy") ?? seen[0];
  const h = worst?.health ?? cp.app.health.status(b);
  const per = seen.length > 0 ? { workers: seen.map((w) => ({ worker: w.worker, state: w.health.state, reason: w.health.reason })) } : {};
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    ...h,
    since: iso(h.since),
    ejected_until: iso(h.ejected_until),
    active: h.active === null ? null : { ...h.active, path: b.activeCheck?.path ?? null, last: h.active.last === null ? null : { ...h.active.last, at: iso(h.active.last.at) } },
    ...per,
  };
}

/** How an https:// backend's certificate is checked, and with which files (their dates: `switchyard check`). */
function tlsView(b: BackendTarget): { verify: boolean; server_name: string | null; ca: string | null; client_certificate: string | null } {
  const connect = b.tls?.connect;
  return {
    verify: connect?.rejectUnauthorized ?? true,
    server_name: connect?.servername ?? null,
    ca: b.tls?.certs.find((c) => c.role === "ca")?.file ?? null,
    client_certificate: b.tls?.certs.find((c) => c.role === "client")?.file ?? null,
  };
}
