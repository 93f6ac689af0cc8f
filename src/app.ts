// A running Switchyard: listeners, the current config snapshot, backend pools, and shutdown.
import type { Snapshot } from "./config/compile.ts";
import { compileSnapshot } from "./config/compile.ts";
import type { Config } from "./config/schema.ts";
import type { ProxyState } from "./forward/exchange.ts";
import { BackendPools } from "./forward/pools.ts";
import { HealthRegistry } from "./health/registry.ts";
import { createLogger, type Logger } from "./observe/logger.ts";
import { IdleTrimmer } from "./observe/memory.ts";
import { IdleParker } from "./proxy/park.ts";
import { Metrics } from "./observe/metrics.ts";
import { ShadowRunner } from "./shadow/mirror.ts";
import { ShadowStore, type PairSink } from "./shadow/store/store.ts";
import { createRequestHandler, type ListenerInfo } from "./proxy/handler.ts";
import { closeSilentClients, createServer, handleClientErrors, listen, urlOf, type BoundListener } from "./proxy/server.ts";
import { CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART } from "./tunnel/handshake.ts";
import { TunnelRegistry } from "./tunnel/registry.ts";
import { createUpgradeHandler, handleHttp2Upgrade, isAcceptedUpgrade } from "./tunnel/upgrade.ts";
import type https from "node:https";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { serveHttp2, type Http2Front } from "./proxy/http2.ts";
import { loadTls, TlsKeeper } from "./proxy/tls.ts";

export interface StartOptions {
  logger?: Logger;
  /** Export Node process metrics (CPU, memory, event loop lag) on /metrics. Default true. */
  processMetrics?: boolean;
  /** SQLite file for shadow comparisons (default: shadow.store.path, relative to the working directory). */
  shadowStorePath?: string;
  /**
   * false: the control plane of a `workers: N` primary - no listeners; its windows and shadow store
   * are fed by the workers, its active health checks feed theirs. Default true.
   */
  serve?: boolean;
  /** A worker's data plane: compared pairs go here (to the primary's store) instead of a store of its own. */
  shadowSink?: PairSink;
  /** A worker's data plane: keep window records for the primary (Metrics.drainWindowDeltas). */
  trackDeltas?: boolean;
  /** A worker's data plane: how many workers share the caps (compileSnapshot's workerShare). Default 1. */
  workers?: number;
  /** A worker's data plane: active health checks run in the primary, their results arrive by message. */
  remoteChecks?: boolean;
}

export interface ShutdownResult {
  /** Every in-flight request finished before the deadline. */
  drained: boolean;
  /** Requests cut at the deadline. */
  cut: number;
}

export class Switchyard {
  readonly logger: Logger;
  readonly pools = new BackendPools();
  readonly tunnels = new TunnelRegistry();
  readonly state: ProxyState;
  readonly listeners: BoundListener[] = [];
  #snapshot: Snapshot;
  #shutdown: Promise<ShutdownResult> | null = null;

  readonly metrics: Metrics;
  readonly health: HealthRegistry;
  readonly shadow: ShadowRunner;
  readonly #storePath: string | null;
  #store: ShadowStore | null = null;
  readonly #serve: boolean;
  readonly #applied: ((snapshot: Snapshot) => void)[] = [];

  readonly #workers: number;
  readonly #trimmer: IdleTrimmer;

  private constructor(config: Config, logger: Logger, opts: StartOptions) {
    this.#workers = opts.workers ?? 1;
    this.#snapshot = compileSnapshot(config, this.#workers);
    this.logger = logger;
    this.#serve = opts.serve !== false;
    this.metrics = new Metrics({ processMetrics: opts.processMetrics, trackDeltas: opts.trackDeltas });
    this.health = new HealthRegistry(logger, this.metrics);
    this.health.probeLocally = opts.remoteChecks !== true;
    // A primary that serves nothing still runs the active checks, once for all its workers.
    this.health.configure(this.#snapshot);
    this.state = { logger, metrics: this.metrics, draining: false, inflight: 0, started: 0, onIdle: null, pools: this.pools, perClient: new Map(), health: this.health };
    this.#trimmer = new IdleTrimmer(() => this.state, logger, config.memory.idle_trim_after);
    this.metrics.collect("switchyard_client_connections_parked", "gauge", "Idle client keep-alive connections that have given back their HTTP parser (memory.park_idle_connections_after).", () => [{ labels: {}, value: this.listeners.reduce((n, l) => n + (l.parker?.parked ?? 0), 0) }]);
    this.metrics.collect("switchyard_memory_trims_total", "counter", "Compacting garbage collections run while idle after startup or a reload (memory.idle_trim_after), handing memory back to the system.", () => [{ labels: {}, value: this.#trimmer.trims }]);
    this.#tunnelMetrics();
    this.metrics.collect("switchyard_backend_tls_certificate_expiry_timestamp_seconds", "gauge", "When each certificate of a backend's tls settings expires (Unix time), by role: ca (trusted for it) or client (presented to it).", () =>
      Object.values(this.#snapshot.backends).flatMap((b) => (b.tls?.certs ?? []).map((c) => ({ labels: { backend: b.name, role: c.role, file: c.file, name: c.names[0] ?? c.subject }, value: Math.floor(c.notAfter.getTime() / 1000) }))),
      "min",
    );
    const sink = opts.shadowSink;
    this.#storePath = sink ? null : (opts.shadowStorePath ?? config.shadow.store.path ?? null);
    this.shadow = new ShadowRunner(logger, this.metrics, sink ? () => sink : () => this.#openStore(), { trackDeltas: opts.trackDeltas });
    if (this.#snapshot.shadow.enabled) this.#openStore();
  }

  /** The comparison store this process writes (null in a worker, whose pairs go to the primary's). */
  get shadowStore(): ShadowStore | null {
    return this.#openStore();
  }

  /** Called after every applied config (the primary of `workers: N` hands it to each worker). */
  onApply(listener: (snapshot: Snapshot) => void): void {
    this.#applied.push(listener);
  }

  /** The comparison store, opened when shadowing is first on (never created while shadow is off). */
  #openStore(): ShadowStore | null {
    if (this.#store !== null || this.#storePath === null || !this.#snapshot.shadow.enabled) return this.#store;
    const s = this.#snapshot.config.shadow.store;
    this.#store = new ShadowStore(this.#storePath, { maxBytes: s.max_size, maxAgeMs: s.max_age, flushIntervalMs: s.flush_interval }, (err: Error) => this.logger.error({ err, store: this.#storePath }, err.message));
    this.logger.info({ store: this.#storePath }, "shadow comparisons stored");
    return this.#store;
  }

  #tunnelMetrics(): void {
    const m = this.metrics;
    const t = this.tunnels;
    m.collect("switchyard_requests_in_flight", "gauge", "Requests being served now (open tunnels included).", () => [{ labels: {}, value: this.state.inflight }]);
    const perBackend = (pick: (s: ReturnType<BackendPools["stats"]>[number]) => number) => () =>
      (["legacy", "new"] as const).map((backend) => ({ labels: { backend }, value: this.pools.stats().filter((s) => s.backend === backend).reduce((sum, s) => sum + pick(s), 0) }));
    m.collect("switchyard_pool_active", "gauge", "Requests holding one of the backend's pool connections now.", perBackend((s) => s.active));
    m.collect("switchyard_pool_queued", "gauge", "Requests waiting for a free pool connection now (all busy).", perBackend((s) => s.queued));
    m.collect("switchyard_pool_queue_timeouts_total", "counter", "Requests answered 503 SY_POOL_QUEUE_TIMEOUT: no pool connection became free within pool.queue_timeout.", () =>
      (["legacy", "new"] as const).map((backend) => ({ labels: { backend }, value: this.pools.queueTimeouts[backend] ?? 0 })),
    );
    m.collect("switchyard_websocket_tunnels_open", "gauge", "Open WebSocket (Upgrade) tunnels by backend.", () =>
      (["legacy", "new"] as const).map((backend) => ({ labels: { backend }, value: [...t.open].filter((x) => x.info.backend === backend).length })),
    );
    m.collect("switchyard_websocket_upgrades_total", "counter", "Upgrade requests by backend and result: tunnelled, refused_by_backend, bad_handshake, limit, failed.", () =>
      [...t.upgrades].map(([key, value]) => {
        const [backend, result] = key.split(":") as [string, string];
        return { labels: { backend, result }, value };
      }),
    );
    m.collect("switchyard_websocket_bytes_total", "counter", "Bytes through closed WebSocket tunnels by backend and direction.", () =>
      (["legacy", "new"] as const).flatMap((backend) => [
        { labels: { backend, direction: "from_client" }, value: t.bytes[backend].fromClient },
        { labels: { backend, direction: "from_backend" }, value: t.bytes[backend].fromUpstream },
      ]),
    );
  }

  static async start(config: Config, opts: StartOptions = {}): Promise<Switchyard> {
    const logger = opts.logger ?? createLogger({ level: config.log.level });
    const app = new Switchyard(config, logger, opts);
    if (!app.#serve) return app;
    try {
      for (const lc of config.listeners) await app.#bind(lc);
    } catch (err) {
      await app.shutdown(0);
      throw err;
    }
    logger.info({ listeners: app.urls, config_hash: app.#snapshot.hash, backends: Object.fromEntries(Object.values(app.#snapshot.backends).map((b) => [b.name, b.origin])) }, "switchyard started");
    return app;
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * Swap in a new validated config: requests in flight keep the snapshot they started with, new ones
   * see the new one at once. Open tunnels are re-decided; those whose user now belongs elsewhere
   * follow their feature's tunnels_on_move policy. (Listener changes need a restart.)
   */
  applyConfig(config: Config, keepListenersOf?: Config): { hash: string; tunnels: { kept: number; draining: number; closed: number } } {
    // Bound sockets cannot move: listener and admin settings stay those the process started with.
    const next = compileSnapshot(keepListenersOf ? { ...config, listeners: keepListenersOf.listeners, admin: keepListenersOf.admin } : config, this.#workers);
    const previous = this.#snapshot;
    this.#snapshot = next;
    // Client-side timeouts can change on live servers; pools whose settings changed drain and close.
    for (const l of this.listeners) {
      l.server.headersTimeout = next.config.limits.header_timeout;
      l.server.requestTimeout = next.config.limits.request_timeout;
      l.server.keepAliveTimeout = next.config.limits.keep_alive_timeout;
      l.parker?.setAfter(next.config.memory.park_idle_connections_after);
    }
    if (previous !== next) void this.pools.retainOnly(Object.values(next.backends));
    this.health.configure(next); // health survives for backends whose address did not change
    this.#trimmer.reloaded(next.config.memory.idle_trim_after);
    if (next.shadow.enabled) this.#openStore();
    const tunnels = this.tunnels.reconsider(next.routing, config.websocket.move_drain_timeout, CLOSE_SERVICE_RESTART);
    this.logger.debug({ config_hash: next.hash, tunnels_moved: tunnels }, "snapshot swapped");
    for (const listener of this.#applied) listener(next);
    return { hash: next.hash, tunnels };
  }

  get urls(): string[] {
    return this.listeners.map((l) => l.url);
  }

  /** HTTP/2 figures over every listener that serves it (registered with the first one). */
  #tlsMetricsOn = false;
  /** Certificate dates and reloads of every TLS listener. */
  #tlsMetrics(): void {
    this.#tlsMetricsOn = true;
    const keepers = () => this.listeners.flatMap((l) => (l.tls === null ? [] : [l.tls]));
    this.metrics.collect("switchyard_tls_certificate_expiry_timestamp_seconds", "gauge", "When each served certificate expires (Unix time); days left: (x - time()) / 86400.", () =>
      keepers().flatMap((k, i) => k.material.certs.map((c) => ({ labels: { listener: String(i), file: c.file, name: c.names[0] ?? c.subject }, value: Math.floor(c.notAfter.getTime() / 1000) }))),
      "min",
    );
    this.metrics.collect("switchyard_tls_reloads_total", "counter", "Certificate reloads after their files changed, by result: ok, or failed (the certificates in use kept).", () => [
      { labels: { result: "ok" }, value: keepers().reduce((n, k) => n + k.reloads.ok, 0) },
      { labels: { result: "failed" }, value: keepers().reduce((n, k) => n + k.reloads.failed, 0) },
    ]);
  }

  #http2MetricsOn = false;
  #http2Metrics(): void {
    this.#http2MetricsOn = true;
    const fronts = () => this.listeners.flatMap((l) => (l.http2 === null ? [] : [l.http2]));
    const sum = (f: (h: Http2Front) => number) => fronts().reduce((n, h) => n + f(h), 0);
    this.metrics.collect("switchyard_http2_connections", "gauge", "Client connections speaking HTTP/2 now.", () => [{ labels: {}, value: sum((h) => h.sessions.size) }]);
    this.metrics.collect("switchyard_http2_streams_total", "counter", "Requests that came over HTTP/2 (the other requests came over HTTP/1.x).", () => [{ labels: {}, value: sum((h) => h.streams) }]);
    this.metrics.collect("switchyard_http2_protocol_errors_total", "counter", "HTTP/2 connections closed for a protocol error or a flood: stream resets past limits.http2_reset_burst/rate (rapid reset), invalid frames, refused streams.", () => [{ labels: {}, value: sum((h) => h.protocolErrors) }]);
  }

  async #bind(lc: Config["listeners"][number]): Promise<void> {
    const snap = this.#snapshot;
    // Certificates read and checked now (a key that does not match fails the start, saying so).
    const where = `listeners[${snap.config.listeners.indexOf(lc)}].tls`;
    const material = lc.tls ? loadTls(lc.tls, where) : null;
    let keeper: TlsKeeper | null = null;
    const server = createServer(
      lc,
      snap.config.limits,
      (req) => {
        const ws = this.#snapshot.config.websocket;
        return isAcceptedUpgrade(req, ws.protocols, ws.enabled);
      },
      material === null ? null : { material, sni: (name, cb) => keeper!.sniCallback(name, cb) },
    );
    // Before anything wraps node:http's connection listener (the HTTP/2 side does): the parker needs it.
    const parker = IdleParker.create(server, material !== null, snap.config.memory.park_idle_connections_after, this.logger);
    if (lc.tls && material !== null) {
      keeper = new TlsKeeper(server as https.Server, lc.tls, where, material, this.logger);
      if (!this.#tlsMetricsOn) this.#tlsMetrics();
    }
    const proto = lc.tls ? "https" : "http";
    const listenerInfo: ListenerInfo = { proto, port: lc.port, hsts: lc.tls?.hsts ?? null };
    const deps = { state: this.state, tunnels: this.tunnels, shadow: this.shadow, snapshot: () => this.#snapshot };
    const onRequest = createRequestHandler(deps, listenerInfo);
    server.on("request", onRequest);
    const h2 = lc.http2
      ? serveHttp2(server, snap.config.limits, onRequest as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void, snap.config.websocket.enabled ? (req, res, key) => handleHttp2Upgrade(deps, listenerInfo, req, res, key) : null)
      : null;
    if (h2 !== null && !this.#http2MetricsOn) this.#http2Metrics();
    server.on("upgrade", createUpgradeHandler(deps, listenerInfo));
    handleClientErrors(server, this.logger, () => this.#snapshot.requestIdHeader);
    // After the HTTP/2 side has wrapped the connection listeners (it replaces them).
    closeSilentClients(server, material !== null, () => this.#snapshot.config.limits.header_timeout);
    // Expect: 100-continue: refuse an oversized body before the client sends it, otherwise invite it.
    server.on("checkContinue", (req, res) => {
      const max = this.#snapshot.maxBodyBytes;
      if (max === 0 || !(Number(req.headers["content-length"]) > max)) res.writeContinue();
      server.emit("request", req, res);
    });
    // Any other Expect: refused by the handler (417, connection closed), not by Node behind our back.
    server.on("checkExpectation", (req, res) => server.emit("request", req, res));
    const addr = await listen(server, lc.host, lc.port);
    listenerInfo.port = addr.port;
    this.listeners.push({ config: lc, server, http2: h2, tls: keeper, parker, info: listenerInfo, url: urlOf(proto, addr) });
  }

  /**
   * Stop accepting, let in-flight requests finish for up to drainMs (responses ask clients to close),
   * then cut what is left and close the backend pools. Idempotent.
   */
  shutdown(drainMs: number = this.#snapshot.config.shutdown.drain_timeout): Promise<ShutdownResult> {
    this.#shutdown ??= this.#doShutdown(drainMs);
    return this.#shutdown;
  }

  async #doShutdown(drainMs: number): Promise<ShutdownResult> {
    const state = this.state;
    state.draining = true;
    this.#trimmer.stop();
    const closed = this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    for (const l of this.listeners) {
      l.tls?.close();
      l.server.closeIdleConnections();
      l.parker?.stop();
      l.parker?.closeAll();
      l.http2?.drain(); // GOAWAY: streams in flight finish, no new ones
    }
    this.logger.info({ inflight: state.inflight, drain_timeout_ms: drainMs }, "shutdown: draining");

    const drained = await this.#idle(drainMs);
    const cut = state.inflight;
    for (const l of this.listeners) {
      l.server.closeAllConnections();
      l.parker?.closeAll(); // woken after the first pass and parked again: none is left open
    }
    // Upgraded sockets are no longer the server's: tell WebSocket clients we are going away (an
    // HTTP/2 connection carrying one is closed after its close frame is out, below).
    this.tunnels.closeAll(CLOSE_GOING_AWAY, "shutdown");
    // Cut exchanges see their sockets close on the next ticks; wait so each one is logged before we return.
    await this.#idle(2000);
    for (const l of this.listeners) l.http2?.destroy();
    await Promise.all(closed);
    await (drained ? this.pools.close() : this.pools.destroy());
    await this.shadow.close();
    this.health.close();
    this.logger.info({ drained, cut }, "shutdown: done");
    return { drained, cut };
  }

  /** Resolves true once no request is in flight, or false after `ms`. */
  #idle(ms: number): Promise<boolean> {
    const state = this.state;
    if (state.inflight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        state.onIdle = null;
        resolve(false);
      }, ms);
      state.onIdle = () => {
        clearTimeout(timer);
        state.onIdle = null;
        resolve(true);
      };
    });
  }
}
