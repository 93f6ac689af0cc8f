// A worker of `workers: N`: one data plane. It serves the listeners it shares with the other workers,
// takes every snapshot the primary sends, and reports back what the control plane needs: window
// records (guard, /stats), pool, tunnel and health figures (/status), metric values at scrape time,
// and compared shadow pairs for the primary's store. Nothing on the request path waits for IPC.
import type { Config } from "../config/schema.ts";
import { Switchyard } from "../app.ts";
import { createLogger, flushLogger } from "../observe/logger.ts";
import type { PairRow, PairSink } from "../shadow/store/store.ts";
import { PROTOCOL, WORKER_COUNT_ENV, WORKER_ID_ENV, type FromWorker, type Telemetry, type ToWorker } from "./protocol.ts";

/** How often window records and figures go to the primary. */
const TELEMETRY_MS = 1000;
/** How often compared pairs go to the primary's store writer. */
const PAIRS_MS = 250;
/** Pairs held for the primary at most; beyond it they are counted as lost, like the store's own buffer. */
const MAX_PENDING_PAIRS = 10_000;

function send(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

/** Compared pairs and sample counters, batched to the primary, which writes them to its store. */
class ForwardingSink implements PairSink {
  #rows: PairRow[] = [];
  /** By feature, then name. */
  #counts = new Map<string, Map<string, number>>();
  readonly losses = { overflow: 0 };
  readonly #timer = setInterval(() => this.flush(), PAIRS_MS).unref();

  add(row: PairRow): void {
    if (this.#rows.length >= MAX_PENDING_PAIRS) this.losses.overflow++;
    else this.#rows.push(row);
  }

  count(feature: string, name: string, n = 1): void {
    let names = this.#counts.get(feature);
    if (names === undefined) this.#counts.set(feature, (names = new Map()));
    names.set(name, (names.get(name) ?? 0) + n);
  }

  flush(): void {
    if (this.#rows.length === 0 && this.#counts.size === 0) return;
    const counts: [string, string, number][] = [];
    for (const [feature, names] of this.#counts) for (const [name, n] of names) counts.push([feature, name, n]);
    send({ p: PROTOCOL, type: "pairs", rows: this.#rows, counts });
    this.#rows = [];
    this.#counts.clear();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.flush();
  }
}

function telemetry(app: Switchyard, sink: ForwardingSink): Telemetry {
  const snap = app.snapshot;
  return {
    windows: app.metrics.drainWindowDeltas(),
    comparisons: app.shadow.drainComparisonDeltas(),
    inflight: app.state.inflight,
    pools: app.pools.stats(),
    tunnels: app.tunnels.stats(),
    health: Object.fromEntries(Object.values(snap.backends).map((b) => [b.name, app.health.status(b)])),
    pairsLost: sink.losses.overflow,
  };
}

async function run(): Promise<void> {
  const id = process.env[WORKER_ID_ENV] ?? "?";
  const workers = Number(process.env[WORKER_COUNT_ENV] ?? 1);
  let app: Switchyard | null = null;
  let version = 0;
  const sink = new ForwardingSink();
  let stopping: Promise<void> | null = null;

  const stop = (drainMs?: number): Promise<void> =>
    (stopping ??= (async () => {
      if (app === null) process.exit(0);
      const result = await app.shutdown(drainMs);
      send({ p: PROTOCOL, type: "telemetry", t: telemetry(app, sink) });
      await sink.close();
      send({ p: PROTOCOL, type: "drained", drained: result.drained, cut: result.cut });
      flushLogger(app.logger);
      // Let the IPC channel carry the last messages, then leave.
      setTimeout(() => process.exit(0), 50);
    })());

  // The primary decides when to stop: a terminal's Ctrl+C (SIGINT to the whole group) or a service
  // manager's SIGTERM to every process reaches workers too, and they wait for the primary's word.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => {});
  process.on("SIGHUP", () => {}); // a reload is the primary's business; it sends the result
  // A primary that is gone (killed) leaves workers without a control plane: drain and exit.
  process.on("disconnect", () => void stop());

  process.on("message", (m: ToWorker) => {
    if (m?.p !== PROTOCOL) {
      process.stderr.write(`switchyard worker ${id}: message of another protocol version (${String(m?.p)}), exiting\n`);
      process.exit(70);
    }
    if (m.type === "config") {
      version = m.version;
      if (app === null) void begin(m.config);
      else {
        const { hash } = app.applyConfig(m.config);
        send({ p: PROTOCOL, type: "applied", version, hash });
      }
    } else if (m.type === "metrics") {
      void (app?.metrics.registry.getMetricsAsJSON() ?? Promise.resolve([])).then((metrics) => send({ p: PROTOCOL, type: "metrics", id: m.id, metrics }));
    } else if (m.type === "check") app?.health.applyCheck(m.origin, m.ok, m.detail);
    else if (m.type === "shutdown") void stop(m.drainMs);
  });

  async function begin(config: Config): Promise<void> {
    const logger = createLogger({ level: config.log.level, base: { worker: Number(id) } });
    try {
      app = await Switchyard.start(config, { logger, shadowSink: sink, trackDeltas: true, workers, remoteChecks: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      send({ p: PROTOCOL, type: "failed", message: e.message, ...(e.code !== undefined && { code: e.code }) });
      flushLogger(logger);
      setTimeout(() => process.exit(1), 50);
      return;
    }
    const a = app;
    setInterval(() => send({ p: PROTOCOL, type: "telemetry", t: telemetry(a, sink) }), TELEMETRY_MS).unref();
    send({ p: PROTOCOL, type: "ready", urls: a.urls, version });
  }
}

void run().catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  send({ p: PROTOCOL, type: "failed", message: e.message ?? String(err), ...(e.code !== undefined && { code: e.code }) });
  setTimeout(() => process.exit(1), 50);
});
