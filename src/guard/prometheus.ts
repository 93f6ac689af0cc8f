// guard.source: prometheus - the guard's numbers from a Prometheus that scrapes every replica, as
// Flagger and Argo Rollouts judge canaries. Four instant queries per rule window, built from
// Switchyard's own metrics and summed over the fleet: requests and 5xx answers per feature and
// backend, upstream latency buckets (p99 and the significance test's bins), compared and mismatched
// shadow pairs per feature. Parsing and the quantile are pure; the fetch is the only I/O.
import { requestOnce } from "../forward/undici.ts";
import type { WindowName } from "../observe/window.ts";
import type { ShadowNumbers, SideNumbers } from "./evaluate.ts";

export interface PrometheusOptions {
  url: string;
  /** Label matchers without braces, added to every query (e.g. job="switchyard"). */
  selector: string;
  timeoutMs: number;
}

/** One feature's numbers over a window, as the evaluator takes them. */
export interface FeatureNumbers {
  legacy: SideNumbers;
  neu: SideNumbers;
  shadow: ShadowNumbers;
}

export interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The PromQL the guard sends for one window (exported for the docs, /status and tests). */
export function guardQueries(window: WindowName, selector: string): { requests: string; errors: string; buckets: string; shadow: string } {
  const sel = (extra: string) => `{${[selector.trim(), extra].filter((s) => s !== "").join(", ")}}`;
  return {
    requests: `sum by (feature, backend) (increase(switchyard_requests_total${sel("")}[${window}]))`,
    errors: `sum by (feature, backend) (increase(switchyard_requests_total${sel('status_class="5xx"')}[${window}]))`,
    buckets: `sum by (feature, backend, le) (increase(switchyard_upstream_duration_seconds_bucket${sel("")}[${window}]))`,
    shadow: `sum by (feature, outcome) (increase(switchyard_shadow_requests_total${sel('outcome=~"compared|mismatched"')}[${window}]))`,
  };
}

/**
 * Per feature, both sides' numbers from the four query results. increase() extrapolates, so counts
 * are rounded; a bucket series gives the latency bins (non-cumulative, in `le` order) and a p99
 * interpolated within its bucket as histogram_quantile() does.
 */
export function featureNumbers(r: { requests: VectorSample[]; errors: VectorSample[]; buckets: VectorSample[]; shadow: VectorSample[] }): Map<string, FeatureNumbers> {
  const out = new Map<string, FeatureNumbers>();
  const side = (s: VectorSample): SideNumbers | null => {
    const { feature, backend } = s.metric;
    if (feature === undefined || (backend !== "legacy" && backend !== "new")) return null;
    let f = out.get(feature);
    if (f === undefined) out.set(feature, (f = { legacy: emptySide(), neu: emptySide(), shadow: { pairs: 0, mismatches: 0 } }));
    return backend === "new" ? f.neu : f.legacy;
  };
  for (const s of r.requests) {
    const x = side(s);
    if (x) x.requests += count(s);
  }
  for (const s of r.errors) {
    const x = side(s);
    if (x) x.errors += count(s);
  }
  const cumulative = new Map<SideNumbers, [number, number][]>();
  for (const s of r.buckets) {
    const x = side(s);
    if (!x) continue;
    const le = s.metric.le === "+Inf" ? Infinity : Number(s.metric.le);
    if (Number.isNaN(le)) continue;
    let c = cumulative.get(x);
    if (c === undefined) cumulative.set(x, (c = []));
    c.push([le, Math.max(0, Number(s.value[1]) || 0)]);
  }
  for (const [x, c] of cumulative) {
    c.sort((a, b) => a[0] - b[0]);
    x.hist = c.map(([, n], i) => Math.max(0, Math.round(n - (i > 0 ? c[i - 1]![1] : 0))));
    x.p99_ms = quantileMs(0.99, c);
  }
  for (const f of out.values()) for (const x of [f.legacy, f.neu]) x.error_rate = x.requests > 0 ? Math.min(1, x.errors / x.requests) : null;
  for (const s of r.shadow) {
    const feature = s.metric.feature;
    if (feature === undefined) continue;
    let f = out.get(feature);
    if (f === undefined) out.set(feature, (f = { legacy: emptySide(), neu: emptySide(), shadow: { pairs: 0, mismatches: 0 } }));
    if (s.metric.outcome === "compared") f.shadow.pairs += count(s);
    else if (s.metric.outcome === "mismatched") f.shadow.mismatches += count(s);
  }
  return out;
}

const emptySide = (): SideNumbers => ({ requests: 0, errors: 0, error_rate: null, p99_ms: null });
const count = (s: VectorSample) => Math.max(0, Math.round(Number(s.value[1]) || 0));

/** The q-quantile in ms from cumulative [le seconds, count] pairs sorted by le (histogram_quantile's interpolation). */
export function quantileMs(q: number, cumulative: readonly [number, number][]): number | null {
  const total = cumulative.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < cumulative.length; i++) {
    const [le, n] = cumulative[i]!;
    if (n < rank) continue;
    const lower = i > 0 ? cumulative[i - 1]![0] : 0;
    const below = i > 0 ? cumulative[i - 1]![1] : 0;
    // Past the last finite bound: its bound is the best answer there is (as histogram_quantile).
    if (le === Infinity) return lower * 1000;
    const inBucket = n - below;
    return (lower + (le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1)) * 1000;
  }
  return null;
}

export class PrometheusError extends Error {}

/** Runs the guard's queries against one Prometheus. */
export class PrometheusSource {
  readonly #opts: PrometheusOptions;

  constructor(opts: PrometheusOptions) {
    this.#opts = opts;
  }

  /** Every feature's numbers over `window`, ending now. */
  async numbers(window: WindowName): Promise<Map<string, FeatureNumbers>> {
    const q = guardQueries(window, this.#opts.selector);
    // All four at one instant: evaluated each at its own arrival, a scrape landing between them
    // gives errors and requests of different moments (97 errors of 98 requests when all failed).
    const at = Date.now() / 1000;
    const [requests, errors, buckets, shadow] = await Promise.all([q.requests, q.errors, q.buckets, q.shadow].map((query) => this.query(query, at)));
    return featureNumbers({ requests: requests!, errors: errors!, buckets: buckets!, shadow: shadow! });
  }

  /** One instant query (at `at`, Unix seconds; else when Prometheus gets it); a PrometheusError says what went wrong and with which query. */
  async query(query: string, at?: number): Promise<VectorSample[]> {
    const url = new URL("api/v1/query", this.#opts.url.endsWith("/") ? this.#opts.url : `${this.#opts.url}/`);
    url.searchParams.set("query", query);
    if (at !== undefined) url.searchParams.set("time", at.toFixed(3));
    let res;
    try {
      res = await requestOnce(url, { timeoutMs: this.#opts.timeoutMs });
    } catch (err) {
      throw new PrometheusError(`cannot query Prometheus at ${url.origin}: ${(err as Error).message}`);
    }
    const text = res.text;
    let body: { status?: string; error?: string; data?: { resultType?: string; result?: VectorSample[] } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new PrometheusError(`Prometheus at ${url.origin} answered ${res.statusCode} with no JSON (is guard.prometheus.url the Prometheus server? ${text.slice(0, 80)})`);
    }
    if (body.status === "error") throw new PrometheusError(`Prometheus at ${url.origin} refused the query (${res.statusCode}): ${body.error ?? "no reason given"}; query: ${query}`);
    if (body.status !== "success") throw new PrometheusError(`${url.origin} answered ${res.statusCode} but not as Prometheus's query API does (no "status"): is guard.prometheus.url the Prometheus server?`);
    if (body.data?.resultType !== "vector") throw new PrometheusError(`Prometheus at ${url.origin} answered a ${body.data?.resultType} to an instant query, not a vector`);
    return body.data.result ?? [];
  }
}
