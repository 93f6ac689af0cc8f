// The messages between a `workers: N` primary (control plane) and its workers (data planes), over
// the cluster IPC channel with structured-clone serialisation. Every message carries the protocol
// version, so a worker from another build is refused instead of misread.
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Config } from "../config/schema.ts";
import type { BackendPools } from "../forward/pools.ts";
import type { TunnelRegistry } from "../tunnel/registry.ts";
import type { HealthSnapshot } from "../health/state.ts";
import type { SeriesDelta } from "../observe/metrics.ts";
import type { WindowDelta } from "../observe/window.ts";
import type { PairRow } from "../shadow/store/store.ts";

export const PROTOCOL = 1;

/** Primary -> worker. */
export type ToWorker =
  | { p: 1; type: "config"; version: number; config: Config }
  | { p: 1; type: "metrics"; id: number }
  | { p: 1; type: "shutdown"; drainMs: number }
  /** An active health check result from the primary's prober. */
  | { p: 1; type: "check"; origin: string; ok: boolean; detail: string };

/** One pool's live counters, as BackendPools.stats() gives them. */
export type PoolFigures = ReturnType<BackendPools["stats"]>[number];
/** Tunnel counters, as TunnelRegistry.stats() gives them. */
export type TunnelFigures = ReturnType<TunnelRegistry["stats"]>;

/** What a worker reports about once a second (and the primary merges or keeps as its latest). */
export interface Telemetry {
  /** Request windows since the last report (the guard and GET /stats run on their merge). */
  windows: SeriesDelta[];
  /** Shadow comparison windows since the last report (the guard's shadow rule). */
  comparisons: { feature: string; deltas: WindowDelta[] }[];
  inflight: number;
  pools: PoolFigures[];
  tunnels: TunnelFigures;
  health: Record<string, HealthSnapshot>;
  /** Compared pairs this worker dropped because its buffer for the primary was full (since start). */
  pairsLost: number;
}

/** Worker -> primary. */
export type FromWorker =
  | { p: 1; type: "ready"; urls: string[]; version: number }
  | { p: 1; type: "applied"; version: number; hash: string }
  | { p: 1; type: "telemetry"; t: Telemetry }
  | { p: 1; type: "metrics"; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { p: 1; type: "pairs"; rows: PairRow[]; counts: [feature: string, name: string, n: number][] }
  | { p: 1; type: "drained"; drained: boolean; cut: number }
  /** The worker could not start (a listener could not bind, say); it exits after this. */
  | { p: 1; type: "failed"; message: string; code?: string };

/** The environment variable that tells a forked process which worker it is (1-based). */
export const WORKER_ID_ENV = "SWITCHYARD_WORKER_ID";
/** ... and how many workers there are (each takes its share of the fleet-wide caps). */
export const WORKER_COUNT_ENV = "SWITCHYARD_WORKERS";
