// Per-backend request metrics. The hot path only bumps numbers in a per-(feature, backend) Series
// found by two map lookups on strings the routing table already holds: no label objects, no string
// building, no hashing. prom-client renders them at scrape time through collectors registered on its
// Registry (exposition format, escaping, default process metrics), and the same record feeds the
// sliding windows behind GET /stats.
import { collectDefaultMetrics, Registry } from "prom-client";
import type { ErrorCode } from "../errors/codes.ts";
import { WINDOWS, WindowStats, type WindowDelta, type WindowName, type WindowSummary } from "./window.ts";

/** Prometheus histogram bounds, seconds: sub-millisecond to 30 s. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"] as const;
const METHOD_INDEX: Record<string, number> = Object.fromEntries(METHODS.map((m, i) => [m, i]));
const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

const methodSeen = (requests: Float64Array, m: number) => {
  for (let c = 0; c < CLASSES.length; c++) if (requests[m * CLASSES.length + c]! > 0) return true;
  return false;
};
export const ERROR_KINDS = ["connect", "timeout", "reset", "bad_response", "5xx"] as const;
type ErrorKind = (typeof ERROR_KINDS)[number];
const KIND_OF: Partial<Record<ErrorCode, ErrorKind>> = {
  SY_UPSTREAM_CONNECT_REFUSED: "connect",
  SY_UPSTREAM_UNREACHABLE: "connect",
  SY_UPSTREAM_TLS: "connect",
  SY_UPSTREAM_CONNECT_TIMEOUT: "connect",
  SY_UPSTREAM_HEADERS_TIMEOUT: "timeout",
  SY_UPSTREAM_BODY_TIMEOUT: "timeout",
  SY_UPSTREAM_RESET: "reset",
  SY_UPSTREAM_BAD_RESPONSE: "bad_response",
};
/** Label value for requests no feature claimed, and for those refused before a backend was chosen. */
export const NO_FEATURE = "none";
/** How often the event loop's delay is sampled for the nodejs_eventloop_lag_* gauges. */
export const EVENT_LOOP_SAMPLE_MS = 100;
export const NO_BACKEND = "none";

class Histogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** Everything counted for one (feature, backend) pair. */
export class Series {
  readonly feature: string;
  readonly backend: string;
  readonly requests = new Float64Array(METHODS.length * CLASSES.length);
  readonly upstream = new Histogram();
  readonly total = new Histogram();
  readonly window = new WindowStats();

  constructor(feature: string, backend: string, trackDeltas: boolean) {
    this.feature = feature;
    this.backend = backend;
    if (trackDeltas) this.window.trackDeltas();
  }
}

/** A worker's window records for one (feature, backend), handed to the primary. */
export interface SeriesDelta {
  feature: string;
  backend: string;
  deltas: WindowDelta[];
}

/** How a metric's values from several processes (workers) combine at scrape time. */
export type Aggregator = "sum" | "min" | "max" | "first";

export interface RequestOutcome {
  feature: string | null;
  backend: string | null;
  method: string;
  status: number;
  /** Seconds from sending upstream to the end of the upstream answer; null when nothing was sent. */
  upstreamSeconds: number | null;
  totalSeconds: number;
  error: ErrorCode | undefined;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #series = new Map<string, Map<string, Series>>();
  readonly #errors = new Map<string, Float64Array>();
  readonly #now: () => number;
  readonly #trackDeltas: boolean;

  /** trackDeltas: keep window records for drainWindowDeltas() (a worker reporting to its primary). */
  constructor(opts: { processMetrics?: boolean; now?: () => number; trackDeltas?: boolean } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#trackDeltas = opts.trackDeltas === true;
    // Error counters exist at 0 from the start, so rate() and alerts see them before the first failure.
    for (const backend of ["legacy", "new"]) this.#errors.set(backend, new Float64Array(ERROR_KINDS.length));
    // Event-loop delay sampled every 100 ms, not prom-client's 10 ms: its timer woke an idle proxy 100
    // times a second (an idle process used 1.6-2 % of a core; 0.6 % with this and the log's timer
    // armed only while lines wait). Ten samples a second still give the lag gauges their percentiles.
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.#collect("switchyard_requests_total", "counter", "Requests answered, by backend, feature (route group), method and status class.", () =>
      this.#all().flatMap((s) =>
        // Every status class of a method once it has traffic, zeros included: a 5xx series that
        // appeared only with its first errors would have them missed by Prometheus's increase().
        [...s.requests].flatMap((v, i) => (!methodSeen(s.requests, Math.floor(i / CLASSES.length)) ? [] : [{ labels: { backend: s.backend, feature: s.feature, method: METHODS[Math.floor(i / CLASSES.length)]!, status_class: CLASSES[i % CLASSES.length]! }, value: v }])),
      ),
    );
    this.#histogram("switchyard_upstream_duration_seconds", "Time from sending the request upstream to the end of the backend's answer, by backend and feature.", (s) => s.upstream);
    this.#histogram("switchyard_request_duration_seconds", "Time from the request's arrival to the last byte to the client, by backend and feature.", (s) => s.total);
    this.#collect("switchyard_upstream_errors_total", "counter", "Failed upstream exchanges by backend and kind: connect, timeout, reset, bad_response, or a 5xx answer.", () =>
      [...this.#errors].flatMap(([backend, counts]) => ERROR_KINDS.map((kind, i) => ({ labels: { backend, kind }, value: counts[i]! }))),
    );
  }

  /** One finished request (the exchange calls this once, when its client side closes). */
  record(o: RequestOutcome): void {
    const s = this.series(o.feature ?? NO_FEATURE, o.backend ?? NO_BACKEND);
    const m = METHOD_INDEX[o.method] ?? METHODS.length - 1;
    const c = o.status >= 100 && o.status < 600 ? Math.floor(o.status / 100) - 1 : 4;
    s.requests[m * CLASSES.length + c]!++;
    s.total.observe(o.totalSeconds);
    if (o.upstreamSeconds !== null) s.upstream.observe(o.upstreamSeconds);
    const kind = o.error !== undefined ? KIND_OF[o.error] : o.status >= 500 && o.upstreamSeconds !== null ? "5xx" : undefined;
    if (kind !== undefined && o.backend !== null) {
      let counts = this.#errors.get(o.backend);
      if (counts === undefined) this.#errors.set(o.backend, (counts = new Float64Array(ERROR_KINDS.length)));
      counts[ERROR_KINDS.indexOf(kind)]!++;
    }
    // The go/no-go numbers: backend latency when there was an exchange, a 5xx or upstream failure as an error.
    if (o.backend !== null) s.window.record((o.upstreamSeconds ?? o.totalSeconds) * 1000, o.status >= 500 || kind !== undefined, this.#now());
  }

  series(feature: string, backend: string): Series {
    let byBackend = this.#series.get(feature);
    if (byBackend === undefined) this.#series.set(feature, (byBackend = new Map()));
    let s = byBackend.get(backend);
    if (s === undefined) byBackend.set(backend, (s = new Series(feature, backend, this.#trackDeltas)));
    return s;
  }

  /** Window records since the last call, per series (workers send these to the primary). */
  drainWindowDeltas(): SeriesDelta[] {
    const out: SeriesDelta[] = [];
    for (const s of this.#all()) {
      const deltas = s.window.drainDeltas();
      if (deltas.length > 0) out.push({ feature: s.feature, backend: s.backend, deltas });
    }
    return out;
  }

  /** Merge a worker's window records: GET /stats, /status and the guard then see every worker. */
  mergeWindowDeltas(from: readonly SeriesDelta[]): void {
    for (const d of from) {
      const w = this.series(d.feature, d.backend).window;
      for (const x of d.deltas) w.merge(x);
    }
  }

  /** Per feature, per backend, per window: rate, error rate, p50/p95/p99 (the rollout guides' success criteria). */
  stats(): Record<string, Record<string, Record<WindowName, WindowSummary>>> {
    const now = this.#now();
    const out: Record<string, Record<string, Record<WindowName, WindowSummary>>> = {};
    for (const s of this.#all()) {
      if (s.backend === NO_BACKEND) continue;
      const windows = {} as Record<WindowName, WindowSummary>;
      for (const w of Object.keys(WINDOWS) as WindowName[]) windows[w] = s.window.summary(w, now);
      (out[s.feature] ??= {})[s.backend] = windows;
    }
    return out;
  }

  /**
   * A metric rendered from our own numbers at scrape time. With workers, each worker's values are
   * summed by default; a state (1 = healthy, a mode) says how it combines instead.
   */
  collect(name: string, type: "counter" | "gauge", help: string, values: () => { labels: Record<string, string | number>; value: number }[], aggregator: Aggregator = "sum"): void {
    this.#collect(name, type, help, values, aggregator);
  }

  #all(): Series[] {
    return [...this.#series.values()].flatMap((m) => [...m.values()]);
  }

  #collect(name: string, type: string, help: string, values: () => { labels: Record<string, string | number>; value: number; metricName?: string }[], aggregator: Aggregator = "sum"): void {
    this.registry.registerMetric({ name, help, type, aggregator, get: () => ({ name, help, type, values: values(), aggregator }) } as never);
  }

  #histogram(name: string, help: string, pick: (s: Series) => Histogram): void {
    this.#collect(name, "histogram", help, () =>
      this.#all().flatMap((s) => {
        const h = pick(s);
        if (h.count === 0) return [];
        const labels = { backend: s.backend, feature: s.feature };
        let cumulative = 0;
        const rows = LATENCY_BUCKETS.map((le, i) => {
          cumulative += h.counts[i]!;
          return { metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative };
        });
        rows.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" as never }, value: h.count });
        rows.push({ metricName: `${name}_sum`, labels, value: h.sum } as never, { metricName: `${name}_count`, labels, value: h.count } as never);
        return rows;
      }),
    );
  }
}
