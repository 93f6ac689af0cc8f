// The primary of `workers: N`: the control plane stays here (config watch, admin API, guard, state
// file, shadow store writer) on a Switchyard that serves nothing; N workers serve the listeners.
// Every applied snapshot goes to every worker, and a change made through the admin API answers only
// once each worker has applied it. Workers' window records merge into this process's windows, so
// the guard, GET /stats and /status judge all the traffic; /metrics sums their values at scrape time.
// A worker that dies is restarted from the current snapshot after a backoff, logged and counted.
import cluster, { type Worker } from "node:cluster";
import type { Readable } from "node:stream";
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { Switchyard } from "../app.ts";
import type { Snapshot } from "../config/compile.ts";
import type { HealthSnapshot } from "../health/state.ts";
import type { Logger } from "../observe/logger.ts";
import { PROTOCOL, WORKER_COUNT_ENV, WORKER_ID_ENV, type FromWorker, type PoolFigures, type Telemetry, type TunnelFigures, type ToWorker } from "./protocol.ts";
import { moduleBeside } from "../runtime.ts";

/** How long the admin API waits for every worker to apply a change before answering anyway. */
const SETTLE_TIMEOUT_MS = 1000;
/** How long a scrape waits for a worker's metric values. */
const METRICS_TIMEOUT_MS = 2000;
/** First restart delay after a crash; doubles per crash in a row, up to the cap. */
const BACKOFF_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** A worker that lived this long resets the crash streak. */
const STABLE_MS = 30_000;

interface Slot {
  id: number;
  worker: Worker | null;
  pid: number | null;
  startedAt: number;
  version: number;
  hash: string | null;
  ready: boolean;
  restarts: number;
  streak: number;
  last: Telemetry | null;
  exited: { code: number | null; signal: string | null; at: number } | null;
  drained: { drained: boolean; cut: number } | null;
}

export interface WorkerStatus {
  id: number;
  pid: number | null;
  up: boolean;
  config_hash: string | null;
  uptime_seconds: number | null;
  restarts: number;
  last_exit: { code: number | null; signal: string | null; at: string } | null;
}

export class ClusterPrimary {
  readonly #app: Switchyard;
  readonly #logger: Logger;
  readonly #slots: Slot[];
  #version = 1;
  /** When the current version was sent to the workers, and how long the last one took to reach all of them. */
  #sentAt = 0;
  lastPropagationMs: number | null = null;
  #urls: string[] = [];
  #stopping = false;
  #nextMetricsId = 1;
  readonly #metricsWaits = new Map<number, { pending: Set<number>; got: MetricObjectWithValues<MetricValue<string>>[][]; done: () => void }>();
  readonly #appliedWaits: (() => void)[] = [];
  crashes = 0;
  /** Until every worker served once, an exit is a failed start (reported), not a crash (restarted). */
  #started = false;

  private constructor(app: Switchyard, n: number, logger: Logger) {
    this.#app = app;
    this.#logger = logger;
    this.#slots = Array.from({ length: n }, (_, i) => ({ id: i + 1, worker: null, pid: null, startedAt: 0, version: 0, hash: null, ready: false, restarts: 0, streak: 0, last: null, exited: null, drained: null }));
    app.onApply((snapshot) => this.#broadcast(snapshot));
    // Active checks run here, once; every result goes to every worker, which judges with it.
    app.health.onCheck = (origin, ok, detail) => {
      for (const s of this.#slots) if (s.ready) this.#send(s, { p: PROTOCOL, type: "check", origin, ok, detail });
    };
    const m = app.metrics;
    m.collect("switchyard_workers", "gauge", "Worker processes by state: up (serving) or down (restarting).", () => [
      { labels: { state: "up" }, value: this.#slots.filter((s) => s.ready).length },
      { labels: { state: "down" }, value: this.#slots.filter((s) => !s.ready).length },
    ]);
    m.collect("switchyard_worker_restarts_total", "counter", "Workers restarted after they exited unexpectedly.", () => [{ labels: {}, value: this.crashes }]);
  }

  /** Fork n workers on the app's current snapshot; resolves with the listener URLs once all serve. */
  static async start(app: Switchyard, n: number, logger: Logger): Promise<ClusterPrimary> {
    // Connections are dealt round-robin by the primary (one hand-off per connection, not per request):
    // workers accepting on the shared socket themselves (NODE_CLUSTER_SCHED_POLICY=none) measured no
    // cheaper and leave a burst of new connections on whichever worker wakes first (bench/README.md).
    cluster.schedulingPolicy = process.env.NODE_CLUSTER_SCHED_POLICY === "none" ? cluster.SCHED_NONE : cluster.SCHED_RR;
    cluster.setupPrimary({ exec: moduleBeside(import.meta.url, "worker").pathname, args: [], serialization: "advanced", stdio: ["ignore", "pipe", "inherit", "ipc"] });
    const primary = new ClusterPrimary(app, n, logger);
    try {
      await Promise.all(primary.#slots.map((s) => primary.#fork(s)));
    } catch (err) {
      await primary.shutdown(0);
      throw err;
    }
    primary.#started = true;
    logger.info({ workers: n, listeners: primary.#urls, config_hash: app.snapshot.hash, pid: process.pid }, "switchyard started");
    return primary;
  }

  get urls(): string[] {
    return this.#urls;
  }

  #fork(slot: Slot): Promise<void> {
    const worker = cluster.fork({ [WORKER_ID_ENV]: String(slot.id), [WORKER_COUNT_ENV]: String(this.#slots.length) });
    slot.worker = worker;
    slot.pid = worker.process.pid ?? null;
    slot.startedAt = Date.now();
    slot.ready = false;
    slot.drained = null;
    relayLines(worker.process.stdout, process.stdout);
    let failure: Error | null = null;
    return new Promise((resolve, reject) => {
      worker.on("message", (m: FromWorker) => {
        if (m?.p !== PROTOCOL) return;
        if (m.type === "failed") {
          // Its own words (EADDRINUSE, a TLS file it cannot read), for the operator.
          failure = Object.assign(new Error(`worker ${slot.id}: ${m.message}`), { code: m.code });
          this.#logger.error({ worker: slot.id, code: m.code }, `worker ${slot.id} could not start: ${m.message}`);
        } else if (m.type === "ready") {
          slot.ready = true;
          slot.version = m.version;
          slot.hash = this.#app.snapshot.hash;
          if (this.#urls.length === 0) this.#urls = m.urls;
          resolve();
          // A change applied while this worker was starting: it gets it now.
          if (slot.version !== this.#version) this.#send(slot, { p: PROTOCOL, type: "config", version: this.#version, config: this.#app.snapshot.config });
        } else this.#onMessage(slot, m);
      });
      worker.on("exit", (code, signal) => {
        slot.ready = false;
        slot.worker = null;
        slot.exited = { code, signal, at: Date.now() };
        this.#onExit(slot);
        reject(failure ?? new Error(`worker ${slot.id} exited (${signal ?? `code ${code}`}) before it served`));
        this.#settleCheck();
      });
      this.#send(slot, { p: PROTOCOL, type: "config", version: this.#version, config: this.#app.snapshot.config });
    });
  }

  #onExit(slot: Slot): void {
    if (this.#stopping || !this.#started) return;
    const lived = Date.now() - slot.startedAt;
    slot.streak = lived >= STABLE_MS ? 1 : slot.streak + 1;
    slot.restarts++;
    this.crashes++;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** (slot.streak - 1));
    this.#logger.error({ worker: slot.id, pid: slot.pid, code: slot.exited?.code, signal: slot.exited?.signal, lived_ms: lived, restart_in_ms: delay, restarts: slot.restarts }, `worker ${slot.id} exited unexpectedly; restarting in ${delay} ms`);
    setTimeout(() => {
      if (!this.#stopping) this.#fork(slot).catch(() => {}); // a failed start is its own exit: it backs off again
    }, delay).unref();
  }

  #onMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case "applied":
        slot.version = m.version;
        slot.hash = m.hash;
        this.#settleCheck();
        return;
      case "telemetry":
        this.#app.metrics.mergeWindowDeltas(m.t.windows);
        this.#app.shadow.mergeComparisonDeltas(m.t.comparisons);
        slot.last = m.t;
        return;
      case "pairs": {
        const store = this.#app.shadowStore;
        if (store === null) return;
        for (const r of m.rows) store.add(r);
        for (const [feature, name, n] of m.counts) store.count(feature, name, n);
        return;
      }
      case "metrics": {
        const w = this.#metricsWaits.get(m.id);
        if (w === undefined) return;
        w.got.push(m.metrics);
        w.pending.delete(slot.id);
        if (w.pending.size === 0) w.done();
        return;
      }
      case "drained":
        slot.drained = { drained: m.drained, cut: m.cut };
        return;
      case "ready":
        return;
    }
  }

  #send(slot: Slot, m: ToWorker): void {
    const w = slot.worker;
    if (w !== null && w.isConnected()) w.send(m);
  }

  #broadcast(snapshot: Snapshot): void {
    this.#version++;
    this.#sentAt = performance.now();
    const m: ToWorker = { p: PROTOCOL, type: "config", version: this.#version, config: snapshot.config };
    for (const s of this.#slots) if (s.ready) this.#send(s, m);
  }

  #settleCheck(): void {
    if (!this.#slots.every((s) => !s.ready || s.version === this.#version)) return;
    if (this.#sentAt > 0) {
      this.lastPropagationMs = Math.round((performance.now() - this.#sentAt) * 1000) / 1000;
      this.#sentAt = 0;
      this.#logger.debug({ version: this.#version, propagation_ms: this.lastPropagationMs }, "every worker runs the new snapshot");
    }
    for (const resolve of this.#appliedWaits.splice(0)) resolve();
  }

  /** Resolves once every serving worker runs the current snapshot, or after a second (logged). */
  settled(): Promise<void> {
    if (this.#slots.every((s) => !s.ready || s.version === this.#version)) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const behind = this.#slots.filter((s) => s.ready && s.version !== this.#version).map((s) => s.id);
        this.#logger.warn({ workers: behind, version: this.#version }, `workers ${behind.join(", ")} did not confirm the change within ${SETTLE_TIMEOUT_MS} ms; they take it when they catch up`);
        resolve();
      }, SETTLE_TIMEOUT_MS);
      this.#appliedWaits.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Prometheus text over the primary and every worker (values summed unless a metric says otherwise). */
  async metricsText(): Promise<{ contentType: string; text: string }> {
    const own = await this.#app.metrics.registry.getMetricsAsJSON();
    const id = this.#nextMetricsId++;
    const live = this.#slots.filter((s) => s.ready);
    const got: MetricObjectWithValues<MetricValue<string>>[][] = [own];
    await new Promise<void>((resolve) => {
      if (live.length === 0) return resolve();
      const timer = setTimeout(resolve, METRICS_TIMEOUT_MS);
      this.#metricsWaits.set(id, {
        pending: new Set(live.map((s) => s.id)),
        got,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const s of live) this.#send(s, { p: PROTOCOL, type: "metrics", id });
    });
    this.#metricsWaits.delete(id);
    const registry = AggregatorRegistry.aggregate(got);
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  /** Per-worker state for /status. */
  workers(): WorkerStatus[] {
    const now = Date.now();
    return this.#slots.map((s) => ({
      id: s.id,
      pid: s.pid,
      up: s.ready,
      config_hash: s.hash,
      uptime_seconds: s.ready ? Math.round((now - s.startedAt) / 1000) : null,
      restarts: s.restarts,
      last_exit: s.exited && { code: s.exited.code, signal: s.exited.signal, at: new Date(s.exited.at).toISOString() },
    }));
  }

  /** Requests in flight over all workers, as of their last report. */
  inflight(): number {
    return this.#latest().reduce((sum, t) => sum + t.inflight, 0);
  }

  /** Pool figures summed per origin (and protocol) over all workers, as of their last report. */
  pools(): PoolFigures[] {
    const byOrigin = new Map<string, PoolFigures>();
    for (const t of this.#latest()) {
      for (const p of t.pools) {
        const key = `${p.origin}|${p.backend}|${p.http2}`;
        const acc = byOrigin.get(key);
        if (acc === undefined) byOrigin.set(key, { ...p });
        else for (const k of ["connected", "running", "pending", "active", "queued", "queue_timeouts"] as const) acc[k] += p[k];
      }
    }
    return [...byOrigin.values()];
  }

  tunnels(): TunnelFigures {
    const out: TunnelFigures = { open: { legacy: 0, new: 0 }, upgrades: {}, bytes: { legacy: { fromClient: 0, fromUpstream: 0 }, new: { fromClient: 0, fromUpstream: 0 } }, durations: { count: 0, sumMs: 0 } };
    for (const t of this.#latest()) {
      for (const b of ["legacy", "new"] as const) {
        out.open[b] += t.tunnels.open[b];
        out.bytes[b].fromClient += t.tunnels.bytes[b].fromClient;
        out.bytes[b].fromUpstream += t.tunnels.bytes[b].fromUpstream;
      }
      for (const [k, v] of Object.entries(t.tunnels.upgrades)) out.upgrades[k] = (out.upgrades[k] ?? 0) + v;
      out.durations.count += t.tunnels.durations.count;
      out.durations.sumMs += t.tunnels.durations.sumMs;
    }
    return out;
  }

  /** A backend's health as each worker sees it (passive detection on its own traffic, the primary's checks). */
  health(backend: string): { worker: number; health: HealthSnapshot }[] {
    return this.#slots.flatMap((s) => (s.ready && s.last?.health[backend] ? [{ worker: s.id, health: s.last.health[backend] }] : []));
  }

  /** Compared pairs the workers dropped before they reached the store (their buffers were full). */
  pairsLost(): number {
    return this.#latest().reduce((sum, t) => sum + t.pairsLost, 0);
  }

  #latest(): Telemetry[] {
    return this.#slots.flatMap((s) => (s.ready && s.last !== null ? [s.last] : []));
  }

  /** Drain every worker (each finishes its in-flight requests within drainMs), then wait for them to exit. */
  async shutdown(drainMs: number): Promise<{ drained: boolean; cut: number }> {
    this.#stopping = true;
    const exits = this.#slots.flatMap((s) => {
      const w = s.worker;
      if (w === null) return [];
      return [
        new Promise<void>((resolve) => {
          if (w.isDead()) return resolve();
          w.once("exit", () => resolve());
          this.#send(s, { p: PROTOCOL, type: "shutdown", drainMs });
          // A worker that does not leave after its drain (and the 2 s it takes to log the cut ones) is killed.
          setTimeout(() => w.process.kill("SIGKILL"), drainMs + 5000).unref();
        }),
      ];
    });
    await Promise.all(exits);
    const drained = this.#slots.every((s) => s.drained === null || s.drained.drained);
    const cut = this.#slots.reduce((sum, s) => sum + (s.drained?.cut ?? 0), 0);
    return { drained, cut };
  }
}

/**
 * Copy a worker's stdout to ours in whole lines only: several workers share one stdout, and a pipe
 * keeps a write whole only up to 4 KiB, so a batch of log lines could otherwise be torn by another's.
 */
function relayLines(from: Readable | null | undefined, to: NodeJS.WritableStream): void {
  if (!from) return;
  let rest: Buffer | null = null;
  from.on("data", (chunk: Buffer) => {
    const data = rest === null ? chunk : Buffer.concat([rest, chunk]);
    const end = data.lastIndexOf(10);
    if (end < 0) {
      rest = data;
      return;
    }
    if (!to.write(data.subarray(0, end + 1))) {
      from.pause();
      to.once("drain", () => from.resume());
    }
    rest = end + 1 < data.length ? data.subarray(end + 1) : null;
  });
  from.on("end", () => {
    if (rest !== null) to.write(Buffer.concat([rest, Buffer.from("\n")]));
  });
}
