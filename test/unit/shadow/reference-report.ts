// The brute-force reference for the report's aggregation: every row in memory, filtered per feature,
// exact sorts (the report builder before it streamed). Tests compare the streaming builder with it on
// small random stores; it is not used by the product.
import type { DatabaseSync } from "node:sqlite";
import { PRESETS, type PresetName } from "../../../src/config/shadow-schema.ts";
import { NoiseModel, type NoiseRule } from "../../../src/shadow/noise.ts";
import type { PairRecord } from "../../../src/shadow/store/writer.ts";
import { judge, type FeatureReport, type PathRow, type Report, type ReportOptions, type SideLatency } from "../../../src/shadow/report/build.ts";
import { hodgesLehmann, mannWhitney, quantile } from "../../../src/shadow/report/stats.ts";

type Row = Omit<PairRecord, "req_id" | "legacy_bytes" | "new_bytes">;

const ALL = "(all features)";

export function referenceReport(db: DatabaseSync, opts: ReportOptions): Report {
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
    // From the first compared pair when the data starts after the asked window does.
    since: new Date(Math.max(opts.since, rows.find((r) => ["match", "mismatch", "noise_only"].includes(r.verdict))?.ts ?? opts.since)).toISOString(),
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

type Parsed = { row: Row; diffs: { path: string; kind: string; legacy: unknown; new: unknown }[]; paths: string[]; model: NoiseModel };

function featureReport(feature: string, items: Parsed[], counters: { name: string; value: number }[], opts: ReportOptions, configured: number | null): FeatureReport {
  const t = opts.thresholds;
  const compared = items.filter((p) => isCompared(p.row));
  // A pair matches when every path it differed on is noise on its route.
  const realPaths = (p: Parsed) => p.paths.filter((path) => !p.model.isNoise(path, opts.noise));
  const matched = compared.filter((p) => realPaths(p).length === 0).length;

  // Differences: per path, over the compared pairs, with up to three examples.
  const agg = new Map<string, { kinds: Set<string>; count: number; examples: PathRow["examples"]; noise: boolean; noiseRate: number | null; routeRate: number }>();
  for (const p of compared) {
    for (const path of p.paths) {
      const v = p.model.verdict(path, opts.noise);
      let a = agg.get(path);
      if (!a) agg.set(path, (a = { kinds: new Set(), count: 0, examples: [], noise: v.noise, noiseRate: v.noiseRate, routeRate: v.rate }));
      // The numbers shown: the first route where the difference is real.
      if (a.noise && !v.noise) {
        a.noiseRate = v.noiseRate;
        a.routeRate = v.rate;
      }
      a.count++;
      a.noise &&= v.noise;
      for (const d of p.diffs) {
        if (norm(d.path) !== path) continue;
        a.kinds.add(d.kind);
        const seen = a.examples.some((e) => e.path === d.path && JSON.stringify(e.legacy) === JSON.stringify(d.legacy) && JSON.stringify(e.new) === JSON.stringify(d.new));
        if (a.examples.length < 3 && !seen) a.examples.push({ path: d.path, legacy: d.legacy, new: d.new });
      }
    }
  }
  const pathRows = [...agg].map(([path, a]) => ({ path, kinds: [...a.kinds].sort(), count: a.count, rate: a.count / Math.max(1, compared.length), route_rate: a.routeRate, noise_rate: a.noiseRate, examples: a.examples, noise: a.noise }));
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

  const matchRate = compared.length === 0 ? null : matched / compared.length;
  const newErr = errorRate(err.new.count);
  const legacyErr = errorRate(err.legacy.count);
  const { kpis, verdict, enough } = judge(t, { legacy: L, new: N }, { legacy: legacyErr, new: newErr }, { legacy: errorRate(err.legacy.timeouts), new: errorRate(err.new.timeouts) }, err.new.timeouts, n, compared.length, matchRate);

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
      p95_change_percent: change(L.p95, N.p95),
      p99_change_percent: change(L.p99, N.p99),
      mann_whitney: mannWhitney(lat.new, lat.legacy),
      hodges_lehmann_ms: hodgesLehmann(lat.legacy, lat.new),
      histogram: histogram(lat.legacy, lat.new),
      method: { quantiles: "exact", pairs: lat.legacy.length, sampled: lat.legacy.length },
    },
    differences,
    noise,
    untracked_paths: 0,
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
