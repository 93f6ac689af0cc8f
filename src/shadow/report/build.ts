// The comparison report as data: from the store's records over a time range, per feature and route,
// the match rate with noise excluded, the differing JSON paths with examples, status confusion, error
// rates, latency side by side with a significance test, and the seeds' success criteria filled in.
import type { DatabaseSync } from "node:sqlite";
import { PRESETS, type PresetName } from "../../config/shadow-schema.ts";
import { NoiseModel, type NoiseRule } from "../noise.ts";
import type { PairRecord } from "../store.ts";
import { hodgesLehmann, mannWhitney, quantile, type HodgesLehmann, type MannWhitney } from "./stats.ts";

export interface Thresholds {
  min_pairs: number;
  /** Percent. */
  max_error_rate: number;
  /** Percent. */
  min_p99_improvement: number;
  /** Percent. */
  min_match_rate: number;
}

export interface ReportOptions {
  since: number;
  until: number;
  feature?: string;
  thresholds: Thresholds;
  noise: NoiseRule;
  /** Configured sample percent per feature, when known (to state the effective rate). */
  configuredPercent?: Record<string, number>;
}

type Row = Omit<PairRecord, "req_id" | "legacy_bytes" | "new_bytes">;

export interface PathRow {
  path: string;
  kinds: string[];
  count: number;
  /** Share of compared pairs with this difference. */
  rate: number;
  noise_rate: number | null;
  examples: { legacy: unknown; new: unknown; path: string }[];
}

export interface SideLatency {
  n: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface Kpi {
  metric: string;
  baseline: string;
  target: string;
  actual: string;
  status: "PASS" | "FAIL" | "N/A";
}

export interface FeatureReport {
  feature: string;
  pairs: number;
  compared: number;
  matched: number;
  match_rate: number | null;
  status_mismatches: number;
  confusion: { legacy: string; new: string; count: number }[];
  errors: { legacy: { count: number; rate: number | null; timeouts: number }; new: { count: number; rate: number | null; timeouts: number } };
  latency: {
    legacy: SideLatency;
    new: SideLatency;
    p50_change_percent: number | null;
    p99_change_percent: number | null;
    mann_whitney: MannWhitney | null;
    hodges_lehmann_ms: HodgesLehmann | null;
    histogram: { edges_ms: number[]; legacy: number[]; new: number[] };
  };
  differences: PathRow[];
  noise: PathRow[];
  routes: { route: string; pairs: number; matched: number; match_rate: number | null }[];
  timeline: { t: number; pairs: number; matched: number }[];
  presets: { name: string; pairs: number }[];
  sampling: { mirrored: number; skipped: Record<string, number>; configured_percent: number | null; effective_percent: number | null; capped: boolean };
  enough_data: boolean;
  kpis: Kpi[];
  verdict: "PASS" | "FAIL" | "INSUFFICIENT DATA";
}

export interface Report {
  generated_at: string;
  since: string;
  until: string;
  thresholds: Thresholds;
  noise_rule: NoiseRule;
  presets_available: Record<string, string>;
  overall: FeatureReport;
  features: FeatureReport[];
}

const ALL = "(all features)";

export function buildReport(db: DatabaseSync, opts: ReportOptions): Report {
  const rows = db
    .prepare(`SELECT ts, feature, route, method, path, primary_backend, legacy_status, new_status, legacy_ms, new_ms, verdict, diffs, replay_diffs, presets, body_compared, error FROM pairs WHERE ts >= ? AND ts < ?${opts.feature ? " AND feature = ?" : ""} ORDER BY ts`)
    .all(...([opts.since, opts.until, ...(opts.feature ? [opts.feature] : [])] as number[])) as unknown as Row[];
  const counters = db
    .prepare(`SELECT feature, name, SUM(value) AS value FROM counters WHERE minute >= ? AND minute < ?${opts.feature ? " AND feature = ?" : ""} GROUP BY feature, name`)
    .all(...([Math.floor(opts.since / 60_000), Math.ceil(opts.until / 60_000), ...(opts.feature ? [opts.feature] : [])] as number[])) as { feature: string; name: string; value: number }[];

  // Noise is learned per route: the same field can be noise on one endpoint and real on another.
  const models = new Map<string, NoiseModel>();
  const parsed = rows.map((r) => {
    const diffs = JSON.parse(r.diffs) as { path: string; kind: string; legacy: unknown; new: unknown }[];
    const paths = [...new Set(diffs.map((d) => norm(d.path)))];
    const key = `${r.feature} ${r.route ?? ""}`;
    let m = models.get(key);
    if (!m) models.set(key, (m = new NoiseModel()));
    if (isCompared(r)) m.addPair(paths);
    if (r.replay_diffs !== null) m.addReplay(JSON.parse(r.replay_diffs) as string[]);
    return { row: r, diffs, paths, model: m };
  });

  const features = [...new Set(rows.map((r) => r.feature))].sort();
  const byFeature = features.map((f) =>
    featureReport(
      f,
      parsed.filter((p) => p.row.feature === f),
      counters.filter((c) => c.feature === f),
      opts,
      opts.configuredPercent?.[f] ?? null,
    ),
  );
  const configuredAll = features.length === 1 ? (opts.configuredPercent?.[features[0]!] ?? null) : null;
  return {
    generated_at: new Date().toISOString(),
    since: new Date(opts.since).toISOString(),
    until: new Date(opts.until).toISOString(),
    thresholds: opts.thresholds,
    noise_rule: opts.noise,
    presets_available: PRESETS,
    overall: featureReport(ALL, parsed, counters, opts, configuredAll),
    features: byFeature,
  };
}

const norm = (p: string) => p.replace(/\[\d+\]/g, "[*]");
const isCompared = (r: Row) => r.verdict === "match" || r.verdict === "mismatch" || r.verdict === "noise_only";
const isError = (status: number | null) => status === null || status === 0 || status >= 500;
const pct = (x: number | null, digits = 2) => (x === null ? "n/a" : `${(x * 100).toFixed(digits)} %`);
const ms = (x: number | null) => (x === null ? "n/a" : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);

type Parsed = { row: Row; diffs: { path: string; kind: string; legacy: unknown; new: unknown }[]; paths: string[]; model: NoiseModel };

function featureReport(feature: string, items: Parsed[], counters: { name: string; value: number }[], opts: ReportOptions, configured: number | null): FeatureReport {
  const t = opts.thresholds;
  const compared = items.filter((p) => isCompared(p.row));
  // A pair matches when every path it differed on is noise on its route.
  const realPaths = (p: Parsed) => p.paths.filter((path) => !p.model.isNoise(path, opts.noise));
  const matched = compared.filter((p) => realPaths(p).length === 0).length;

  // Differences: per path, over the compared pairs, with up to three examples.
  const agg = new Map<string, { kinds: Set<string>; count: number; examples: PathRow["examples"]; noise: boolean; noiseRate: number | null }>();
  for (const p of compared) {
    for (const path of p.paths) {
      const v = p.model.verdict(path, opts.noise);
      let a = agg.get(path);
      if (!a) agg.set(path, (a = { kinds: new Set(), count: 0, examples: [], noise: v.noise, noiseRate: v.noiseRate }));
      a.count++;
      a.noise &&= v.noise;
      for (const d of p.diffs) {
        if (norm(d.path) !== path) continue;
        a.kinds.add(d.kind);
        if (a.examples.length < 3) a.examples.push({ path: d.path, legacy: d.legacy, new: d.new });
      }
    }
  }
  const pathRows = [...agg].map(([path, a]) => ({ path, kinds: [...a.kinds].sort(), count: a.count, rate: a.count / Math.max(1, compared.length), noise_rate: a.noiseRate, examples: a.examples, noise: a.noise }));
  const strip = ({ noise: _n, ...rest }: (typeof pathRows)[number]) => rest;
  const differences = pathRows.filter((r) => !r.noise).sort((x, y) => y.count - x.count || x.path.localeCompare(y.path)).map(strip);
  const noise = pathRows.filter((r) => r.noise).sort((x, y) => y.count - x.count || x.path.localeCompare(y.path)).map(strip);

  // Status confusion and errors.
  const confusion = new Map<string, number>();
  let statusMismatches = 0;
  const err = { legacy: { count: 0, timeouts: 0 }, new: { count: 0, timeouts: 0 } };
  for (const { row: r } of items) {
    const l = r.legacy_status === null ? "error" : String(r.legacy_status);
    const n = r.new_status === null ? "error" : String(r.new_status);
    confusion.set(`${l}\u0000${n}`, (confusion.get(`${l}\u0000${n}`) ?? 0) + 1);
    if (l !== n) statusMismatches++;
    for (const side of ["legacy", "new"] as const) {
      const status = side === "legacy" ? r.legacy_status : r.new_status;
      if (isError(status)) {
        err[side].count++;
        const failedSide = r.verdict === "shadow_error" ? (r.primary_backend === "legacy" ? "new" : "legacy") : r.primary_backend;
        if (status === 504 || (status === null && failedSide === side && /timeout/i.test(r.error ?? ""))) err[side].timeouts++;
      }
    }
  }
  const n = items.length;
  const errorRate = (c: number) => (n === 0 ? null : c / n);

  // Latency: both sides of every pair where both answered.
  const both = items.filter((p) => p.row.legacy_ms !== null && p.row.new_ms !== null && !isError(p.row.legacy_status) && !isError(p.row.new_status));
  const lat = { legacy: both.map((p) => p.row.legacy_ms!).sort((a, b) => a - b), new: both.map((p) => p.row.new_ms!).sort((a, b) => a - b) };
  const side = (xs: number[]): SideLatency => ({ n: xs.length, p50: quantile(xs, 0.5), p95: quantile(xs, 0.95), p99: quantile(xs, 0.99) });
  const L = side(lat.legacy);
  const N = side(lat.new);
  const change = (a: number | null, b: number | null) => (a === null || b === null || a === 0 ? null : Math.round(((b - a) / a) * 1000) / 10);

  // Sampling: configured vs effective (caps that bound lower the effective rate).
  const skipped: Record<string, number> = {};
  let mirrored = 0;
  for (const c of counters) {
    if (c.name === "mirrored") mirrored += c.value;
    else skipped[c.name.replace(/^skipped_/, "")] = (skipped[c.name.replace(/^skipped_/, "")] ?? 0) + c.value;
  }
  const capped = (skipped.cap ?? 0) + (skipped.queue_full ?? 0);
  const effective = configured !== null && mirrored + capped > 0 ? (configured * mirrored) / (mirrored + capped) : configured;

  const presets = new Map<string, number>();
  for (const p of items) for (const name of JSON.parse(p.row.presets) as PresetName[]) presets.set(name, (presets.get(name) ?? 0) + 1);

  const routes = new Map<string, { pairs: number; matched: number }>();
  for (const p of compared) {
    const r = routes.get(p.row.route ?? "(default)") ?? { pairs: 0, matched: 0 };
    r.pairs++;
    if (realPaths(p).length === 0) r.matched++;
    routes.set(p.row.route ?? "(default)", r);
  }

  const enough = compared.length >= t.min_pairs;
  const matchRate = compared.length === 0 ? null : matched / compared.length;
  const newErr = errorRate(err.new.count);
  const legacyErr = errorRate(err.legacy.count);
  const p99Improvement = L.p99 !== null && N.p99 !== null && L.p99 > 0 ? ((L.p99 - N.p99) / L.p99) * 100 : null;
  const judge = (ok: boolean | null): Kpi["status"] => (!enough || ok === null ? "N/A" : ok ? "PASS" : "FAIL");
  const kpis: Kpi[] = [
    { metric: "Response time (p50)", baseline: ms(L.p50), target: `<= legacy`, actual: ms(N.p50), status: judge(L.p50 === null || N.p50 === null ? null : N.p50 <= L.p50) },
    { metric: "Response time (p95)", baseline: ms(L.p95), target: "<= legacy", actual: ms(N.p95), status: judge(L.p95 === null || N.p95 === null ? null : N.p95 <= L.p95) },
    { metric: "Response time (p99)", baseline: ms(L.p99), target: `>= ${t.min_p99_improvement} % faster`, actual: `${ms(N.p99)}${p99Improvement === null ? "" : ` (${p99Improvement >= 0 ? p99Improvement.toFixed(1) + " % faster" : (-p99Improvement).toFixed(1) + " % slower"})`}`, status: judge(p99Improvement === null ? null : p99Improvement >= t.min_p99_improvement) },
    { metric: "Error rate (5xx, failures)", baseline: pct(legacyErr), target: `< ${t.max_error_rate} %`, actual: pct(newErr), status: judge(newErr === null ? null : newErr * 100 < t.max_error_rate) },
    { metric: "Success rate", baseline: pct(legacyErr === null ? null : 1 - legacyErr), target: ">= legacy", actual: pct(newErr === null ? null : 1 - newErr), status: judge(newErr === null || legacyErr === null ? null : newErr <= legacyErr) },
    { metric: "Timeout rate", baseline: pct(errorRate(err.legacy.timeouts)), target: "0 %", actual: pct(errorRate(err.new.timeouts)), status: judge(n === 0 ? null : err.new.timeouts === 0) },
    { metric: "Identical responses (noise excluded)", baseline: "-", target: `>= ${t.min_match_rate} %`, actual: pct(matchRate), status: judge(matchRate === null ? null : matchRate * 100 >= t.min_match_rate) },
  ];
  const verdict = !enough ? "INSUFFICIENT DATA" : kpis.every((k) => k.status !== "FAIL") ? "PASS" : "FAIL";

  return {
    feature,
    pairs: n,
    compared: compared.length,
    matched,
    match_rate: matchRate,
    status_mismatches: statusMismatches,
    confusion: [...confusion].map(([k, count]) => {
      const [legacy, neu] = k.split("\u0000") as [string, string];
      return { legacy, new: neu, count };
    }).sort((a, b) => b.count - a.count),
    errors: { legacy: { ...err.legacy, rate: legacyErr }, new: { ...err.new, rate: newErr } },
    latency: {
      legacy: L,
      new: N,
      p50_change_percent: change(L.p50, N.p50),
      p99_change_percent: change(L.p99, N.p99),
      mann_whitney: mannWhitney(lat.new, lat.legacy),
      hodges_lehmann_ms: hodgesLehmann(lat.legacy, lat.new),
      histogram: histogram(lat.legacy, lat.new),
    },
    differences,
    noise,
    routes: [...routes].map(([route, r]) => ({ route, ...r, match_rate: r.pairs === 0 ? null : r.matched / r.pairs })).sort((a, b) => b.pairs - a.pairs),
    timeline: timeline(compared, realPaths),
    presets: [...presets].map(([name, pairs]) => ({ name, pairs })),
    sampling: { mirrored, skipped, configured_percent: configured, effective_percent: effective === null ? null : Math.round(effective * 100) / 100, capped: capped > 0 },
    enough_data: enough,
    kpis,
    verdict,
  };
}

/** Shared log-spaced bins (ms) for the two latency samples. */
function histogram(a: number[], b: number[]): { edges_ms: number[]; legacy: number[]; new: number[] } {
  const all = [...a, ...b].filter((x) => x > 0);
  if (all.length === 0) return { edges_ms: [], legacy: [], new: [] };
  const lo = Math.log10(Math.min(...all));
  const hi = Math.log10(Math.max(...all)) + 1e-9;
  const bins = 24;
  const edges = Array.from({ length: bins + 1 }, (_, i) => 10 ** (lo + ((hi - lo) * i) / bins));
  const count = (xs: number[]) => {
    const c = new Array<number>(bins).fill(0);
    for (const x of xs) c[Math.min(bins - 1, Math.max(0, Math.floor(((Math.log10(Math.max(x, 1e-9)) - lo) / (hi - lo || 1)) * bins)))]!++;
    return c;
  };
  return { edges_ms: edges.map((e) => Math.round(e * 1000) / 1000), legacy: count(a), new: count(b) };
}

/** Pairs and matches over time, in about 30 buckets. */
function timeline(items: Parsed[], realPaths: (p: Parsed) => string[]): { t: number; pairs: number; matched: number }[] {
  if (items.length === 0) return [];
  const first = items[0]!.row.ts;
  const last = items.at(-1)!.row.ts;
  const step = Math.max(1000, Math.ceil((last - first + 1) / 30));
  const out = new Map<number, { t: number; pairs: number; matched: number }>();
  for (const p of items) {
    const t = first + Math.floor((p.row.ts - first) / step) * step;
    const b = out.get(t) ?? { t, pairs: 0, matched: 0 };
    b.pairs++;
    if (realPaths(p).length === 0) b.matched++;
    out.set(t, b);
  }
  return [...out.values()];
}
