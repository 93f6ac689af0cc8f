// The comparison report as data: from the store's records over a time range, per feature and route,
// the match rate with noise excluded, the differing JSON paths with examples, status confusion, error
// rates, latency side by side with a significance test, and the rollout guides' success criteria filled in.
//
// Built where the data lives, in bounded memory whatever the number of pairs: counts come from SQL,
// rows are streamed (never held), noise is learned in a first pass over the rows that differ, and each
// feature keeps fixed-size state: 7 %-wide latency histograms (quantiles and the chart) and a seeded
// reservoir of 10,000 pairs for Mann-Whitney and Hodges-Lehmann (exact while a window has fewer).
// Several stores (replicas) are read as one.
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { PRESETS, type PresetName } from "../../config/shadow-schema.ts";
import { BUCKETS, bucketOf, bucketValue } from "../../observe/window.ts";
import { NoiseModel, type NoiseRule } from "../noise.ts";
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
  /** Pairs kept per feature for the significance tests. Default 10,000. */
  sampleSize?: number;
  /** Distinct (route, set of differing paths) counted per feature before matches need a second pass. Default 50,000. */
  maxSignatures?: number;
}

export interface PathRow {
  path: string;
  kinds: string[];
  count: number;
  /** Share of compared pairs with this difference. */
  rate: number;
  /**
   * The share on the route whose verdict is shown - the first route where the difference is real
   * (for a difference), else the first where it was seen - and that route's noise rate (share of
   * replays to one backend that differed there).
   */
  route_rate: number;
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
    p95_change_percent: number | null;
    p99_change_percent: number | null;
    mann_whitney: MannWhitney | null;
    hodges_lehmann_ms: HodgesLehmann | null;
    histogram: { edges_ms: number[]; legacy: number[]; new: number[] };
    /**
     * How the numbers were made: quantiles exact (every pair held) or from 7 %-wide buckets (within
     * ±3.5 %); the significance tests on `sampled` of `pairs` pairs drawn by a seeded reservoir.
     */
    method: { quantiles: "exact" | "histogram"; pairs: number; sampled: number };
  };
  differences: PathRow[];
  noise: PathRow[];
  /** Distinct differing paths beyond the ones tracked (a report keeps at most 2,000 per feature). */
  untracked_paths: number;
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

export const ALL = "(all features)";
export const DEFAULT_SAMPLE = 10_000;
/** Distinct differing paths tracked per feature and per route model; more are counted, not kept. */
export const MAX_PATHS = 2_000;
const COMPARED = "verdict IN ('match', 'mismatch', 'noise_only')";

type Diff = { path: string; kind: string; legacy: unknown; new: unknown };

export function buildReport(stores: DatabaseSync | readonly DatabaseSync[], opts: ReportOptions): Report {
  const dbs = Array.isArray(stores) ? (stores as readonly DatabaseSync[]) : [stores as DatabaseSync];
  const where = `ts >= ? AND ts < ?${opts.feature ? " AND feature = ?" : ""}`;
  const params: SQLInputValue[] = [opts.since, opts.until, ...(opts.feature ? [opts.feature] : [])];

  // From SQL: each feature's span of compared pairs (the timeline's axis), and the sampling counters.
  const spans = new Map<string, { first: number; last: number }>();
  const widen = (key: string, first: number, last: number) => {
    const s = spans.get(key);
    spans.set(key, s === undefined ? { first, last } : { first: Math.min(s.first, first), last: Math.max(s.last, last) });
  };
  const counters: { feature: string; name: string; value: number }[] = [];
  for (const db of dbs) {
    for (const r of db.prepare(`SELECT feature, min(ts) AS first, max(ts) AS last FROM pairs WHERE ${where} AND ${COMPARED} GROUP BY feature`).all(...params) as { feature: string; first: number; last: number }[]) {
      widen(r.feature, r.first, r.last);
      widen(ALL, r.first, r.last);
    }
    const minuteParams: SQLInputValue[] = [Math.floor(opts.since / 60_000), Math.ceil(opts.until / 60_000), ...(opts.feature ? [opts.feature] : [])];
    counters.push(...(db.prepare(`SELECT feature, name, SUM(value) AS value FROM counters WHERE minute >= ? AND minute < ?${opts.feature ? " AND feature = ?" : ""} GROUP BY feature, name`).all(...minuteParams) as { feature: string; name: string; value: number }[]));
  }

  // Noise is learned per route (the same field can be noise on one endpoint and real on another) in
  // the same pass that aggregates: whether a pair matches is decided at the end, from counts of
  // pairs per route and set of differing paths (see Acc).
  const models = new Map<string, NoiseModel>();
  const modelOf = (feature: string, route: string | null) => {
    const key = `${feature} ${route ?? ""}`;
    let m = models.get(key);
    if (m === undefined) models.set(key, (m = new NoiseModel(MAX_PATHS)));
    return m;
  };
  const sampleSize = opts.sampleSize ?? DEFAULT_SAMPLE;
  const maxSignatures = opts.maxSignatures ?? MAX_SIGNATURES;
  const accs = new Map<string, Acc>();
  const accOf = (feature: string) => {
    let a = accs.get(feature);
    if (a === undefined) accs.set(feature, (a = new Acc(feature, sampleSize, maxSignatures, spans.get(feature))));
    return a;
  };
  const all = new Acc(ALL, sampleSize, maxSignatures, spans.get(ALL));
  const rows = () =>
    dbs.map((db) => {
      const stmt = db.prepare(`SELECT ts, feature, route, primary_backend, legacy_status, new_status, legacy_ms, new_ms, verdict, diffs, presets, error, replay_diffs FROM pairs WHERE ${where}`);
      stmt.setReturnArrays(true); // a row as an array: a third cheaper than an object per row
      return stmt.iterate(...params) as Iterable<Row>;
    });
  for (const it of rows()) {
    for (const r of it) {
      const m = modelOf(r[C_FEATURE], r[C_ROUTE]);
      const diffs = r[C_DIFFS] === "[]" ? NONE : (JSON.parse(r[C_DIFFS]) as Diff[]);
      const paths = diffs === NONE ? NO_PATHS : pathsOf(diffs);
      if (isCompared(r[C_VERDICT])) m.addPair(paths);
      if (r[C_REPLAY] !== null) m.addReplay(JSON.parse(r[C_REPLAY]) as string[]);
      const presets = r[C_PRESETS] === "[]" ? NO_PATHS : (JSON.parse(r[C_PRESETS]) as PresetName[]);
      const row: Seen = { r, diffs, paths, sig: paths.length === 0 ? "" : paths.length === 1 ? paths[0]! : [...paths].sort().join("\u0000"), presets, model: m };
      accOf(r[C_FEATURE]).add(row);
      all.add(row);
    }
  }

  // Noise decisions are final now: cached per route model, for paths and for sets of paths.
  const noiseCache = new Map<NoiseModel, Map<string, boolean>>();
  const isNoise = (m: NoiseModel, path: string) => {
    let c = noiseCache.get(m);
    if (c === undefined) noiseCache.set(m, (c = new Map()));
    let v = c.get(path);
    if (v === undefined) c.set(path, (v = m.isNoise(path, opts.noise)));
    return v;
  };
  const sigCache = new Map<NoiseModel, Map<string, boolean>>();
  const matches = (m: NoiseModel, sig: string) => {
    let c = sigCache.get(m);
    if (c === undefined) sigCache.set(m, (c = new Map()));
    let v = c.get(sig);
    if (v === undefined) c.set(sig, (v = sig === "" || sig.split("\u0000").every((p) => isNoise(m, p))));
    return v;
  };
  // A window with too many distinct sets of differing paths to count: a second pass decides per pair.
  const overflowed = [all, ...accs.values()].filter((a) => a.overflow);
  if (overflowed.length > 0) {
    for (const it of rows()) {
      for (const r of it) {
        if (!isCompared(r[C_VERDICT])) continue;
        const m = modelOf(r[C_FEATURE], r[C_ROUTE]);
        const diffs = r[C_DIFFS] === "[]" ? NONE : (JSON.parse(r[C_DIFFS]) as Diff[]);
        const matched = pathsOf(diffs).every((p) => isNoise(m, p));
        if (all.overflow) all.countMatch(r, matched);
        const a = accs.get(r[C_FEATURE])!;
        if (a.overflow) a.countMatch(r, matched);
      }
    }
  }

  const features = [...accs.keys()].sort();
  const configuredAll = features.length === 1 ? (opts.configuredPercent?.[features[0]!] ?? null) : null;
  const decide = { isNoise, matches };
  return {
    generated_at: new Date().toISOString(),
    // The window as the data fills it: from the first compared pair when that is later than asked.
    since: new Date(Math.max(opts.since, spans.get(ALL)?.first ?? opts.since)).toISOString(),
    until: new Date(opts.until).toISOString(),
    thresholds: opts.thresholds,
    noise_rule: opts.noise,
    presets_available: PRESETS,
    overall: all.report(counters, opts, configuredAll, decide),
    features: features.map((f) => accs.get(f)!.report(counters.filter((c) => c.feature === f), opts, opts.configuredPercent?.[f] ?? null, decide)),
  };
}

/** A row as the report reads it (an array, see setReturnArrays), and its columns. */
type Row = [ts: number, feature: string, route: string | null, primary: string, legacyStatus: number | null, newStatus: number | null, legacyMs: number | null, newMs: number | null, verdict: string, diffs: string, presets: string, error: string | null, replay: string | null];
const C_TS = 0, C_FEATURE = 1, C_ROUTE = 2, C_PRIMARY = 3, C_LEGACY_STATUS = 4, C_NEW_STATUS = 5, C_LEGACY_MS = 6, C_NEW_MS = 7, C_VERDICT = 8, C_DIFFS = 9, C_PRESETS = 10, C_ERROR = 11, C_REPLAY = 12;
/** One row with what the pass derived from it. `sig`: its differing paths, sorted, as one key. */
type Seen = { r: Row; diffs: Diff[]; paths: string[]; sig: string; presets: readonly string[]; model: NoiseModel };
type Decide = { isNoise: (m: NoiseModel, path: string) => boolean; matches: (m: NoiseModel, sig: string) => boolean };
/** Distinct (route, route model, set of differing paths) counted per feature before the second pass is needed. */
const MAX_SIGNATURES = 50_000;

const NONE: Diff[] = [];
const NO_PATHS: string[] = [];
const norm = (p: string) => (p.includes("[") ? p.replace(/\[\d+\]/g, "[*]") : p);
const pathsOf = (diffs: readonly Diff[]) => (diffs.length === 1 ? [norm(diffs[0]!.path)] : [...new Set(diffs.map((d) => norm(d.path)))]);
const isCompared = (verdict: string) => verdict === "match" || verdict === "mismatch" || verdict === "noise_only";
const sameValue = (a: unknown, b: unknown): boolean => a === b || (typeof a === "object" && a !== null && typeof b === "object" && b !== null && JSON.stringify(a) === JSON.stringify(b));

const isError = (status: number | null) => status === null || status === 0 || status >= 500;
const pct = (x: number | null, digits = 2) => (x === null ? "n/a" : `${(x * 100).toFixed(digits)} %`);
const ms = (x: number | null) => (x === null ? "n/a" : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);

/** A small seeded PRNG (mulberry32), so a report over the same data draws the same sample. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Counts of compared pairs by route model and set of differing paths. */
type Signatures = Map<NoiseModel, Map<string, number>>;

function bumpSig(sigs: Signatures, m: NoiseModel, sig: string): boolean {
  let bySig = sigs.get(m);
  if (bySig === undefined) sigs.set(m, (bySig = new Map()));
  const n = bySig.get(sig);
  bySig.set(sig, (n ?? 0) + 1);
  return n === undefined;
}

function matchedIn(sigs: Signatures, decide: Decide): number {
  let matched = 0;
  for (const [m, bySig] of sigs) for (const [sig, n] of bySig) if (decide.matches(m, sig)) matched += n;
  return matched;
}

/** Fixed-size state for one feature (or all of them). */
class Acc {
  readonly feature: string;
  pairs = 0;
  compared = 0;
  statusMismatches = 0;
  readonly paths = new Map<string, { kinds: Set<string>; count: number; examples: PathRow["examples"]; models: Set<NoiseModel>; first: NoiseModel }>();
  untrackedCount = 0;
  readonly confusion = new Map<string, number>();
  readonly err = { legacy: { count: 0, timeouts: 0 }, new: { count: 0, timeouts: 0 } };
  readonly hist = { legacy: new Uint32Array(BUCKETS), new: new Uint32Array(BUCKETS) };
  /** Pairs where both sides answered; the reservoir holds up to `size` of them (legacy, new). */
  both = 0;
  readonly #size: number;
  readonly #sample: Float64Array;
  readonly #random: () => number;
  readonly presets = new Map<string, number>();
  readonly #span: { first: number; step: number } | null;
  /** Per route and per timeline bucket: pairs, and their signatures (or, after an overflow, matches). */
  readonly routes = new Map<string, { pairs: number; sigs: Signatures; matched: number }>();
  readonly timeline = new Map<number, { t: number; pairs: number; sigs: Signatures; matched: number }>();
  #signatures = 0;
  /** Too many distinct signatures to keep: matches are counted by a second pass (countMatch). */
  overflow = false;

  readonly #maxSignatures: number;

  constructor(feature: string, size: number, maxSignatures: number, span: { first: number; last: number } | undefined) {
    this.feature = feature;
    this.#size = size;
    this.#maxSignatures = maxSignatures;
    this.#sample = new Float64Array(2 * size);
    this.#random = mulberry32(seedOf(feature));
    this.#span = span === undefined ? null : { first: span.first, step: Math.max(1000, Math.ceil((span.last - span.first + 1) / 30)) };
  }

  #bucket(ts: number): number {
    return this.#span!.first + Math.floor((ts - this.#span!.first) / this.#span!.step) * this.#span!.step;
  }

  add(s: Seen): void {
    const r = s.r;
    this.pairs++;
    if (isCompared(r[C_VERDICT])) {
      this.compared++;
      const route = r[C_ROUTE] ?? "(default)";
      let rt = this.routes.get(route);
      if (rt === undefined) this.routes.set(route, (rt = { pairs: 0, sigs: new Map(), matched: 0 }));
      rt.pairs++;
      let b: { t: number; pairs: number; sigs: Signatures; matched: number } | undefined;
      if (this.#span !== null) {
        const t = this.#bucket(r[C_TS]);
        b = this.timeline.get(t);
        if (b === undefined) this.timeline.set(t, (b = { t, pairs: 0, sigs: new Map(), matched: 0 }));
        b.pairs++;
      }
      if (!this.overflow) {
        if (bumpSig(rt.sigs, s.model, s.sig)) this.#signatures++;
        if (b !== undefined && bumpSig(b.sigs, s.model, s.sig)) this.#signatures++;
        if (this.#signatures > this.#maxSignatures) this.#overflow();
      }
      for (const path of s.paths) this.#addPath(path, s);
    }
    const l = r[C_LEGACY_STATUS] === null ? "error" : String(r[C_LEGACY_STATUS]);
    const n = r[C_NEW_STATUS] === null ? "error" : String(r[C_NEW_STATUS]);
    const key = `${l}\u0000${n}`;
    this.confusion.set(key, (this.confusion.get(key) ?? 0) + 1);
    if (l !== n) this.statusMismatches++;
    for (const side of ["legacy", "new"] as const) {
      const status = side === "legacy" ? r[C_LEGACY_STATUS] : r[C_NEW_STATUS];
      if (!isError(status)) continue;
      this.err[side].count++;
      const failedSide = r[C_VERDICT] === "shadow_error" ? (r[C_PRIMARY] === "legacy" ? "new" : "legacy") : r[C_PRIMARY];
      if (status === 504 || (status === null && failedSide === side && /timeout/i.test(r[C_ERROR] ?? ""))) this.err[side].timeouts++;
    }
    const lms = r[C_LEGACY_MS];
    const nms = r[C_NEW_MS];
    if (lms !== null && nms !== null && !isError(r[C_LEGACY_STATUS]) && !isError(r[C_NEW_STATUS])) this.#addLatency(lms, nms);
    for (const p of s.presets) this.presets.set(p, (this.presets.get(p) ?? 0) + 1);
  }

  #overflow(): void {
    this.overflow = true;
    for (const rt of this.routes.values()) rt.sigs.clear();
    for (const b of this.timeline.values()) b.sigs.clear();
  }

  /** After an overflow, the second pass says whether each compared pair matched. */
  countMatch(r: Row, matched: boolean): void {
    if (!matched) return;
    this.routes.get(r[C_ROUTE] ?? "(default)")!.matched++;
    if (this.#span !== null) this.timeline.get(this.#bucket(r[C_TS]))!.matched++;
  }

  #addPath(path: string, s: Seen): void {
    let a = this.paths.get(path);
    if (a === undefined) {
      if (this.paths.size >= MAX_PATHS) {
        this.untrackedCount++;
        return;
      }
      this.paths.set(path, (a = { kinds: new Set(), count: 0, examples: [], models: new Set(), first: s.model }));
    }
    a.count++;
    a.models.add(s.model);
    for (const d of s.diffs) {
      if (norm(d.path) !== path) continue;
      a.kinds.add(d.kind);
      // Up to three different examples: the same pair of values seen again says nothing new.
      if (a.examples.length < 3 && !a.examples.some((e) => e.path === d.path && sameValue(e.legacy, d.legacy) && sameValue(e.new, d.new))) a.examples.push({ path: d.path, legacy: d.legacy, new: d.new });
    }
  }
  /** Algorithm R: every pair has the same chance to be in the sample, whatever the window's size. */
  #addLatency(legacyMs: number, newMs: number): void {
    this.hist.legacy[bucketOf(legacyMs)]!++;
    this.hist.new[bucketOf(newMs)]!++;
    const i = this.both++;
    const slot = i < this.#size ? i : Math.floor(this.#random() * (i + 1));
    if (slot < this.#size) {
      this.#sample[2 * slot] = legacyMs;
      this.#sample[2 * slot + 1] = newMs;
    }
  }

  report(counters: readonly { name: string; value: number }[], opts: ReportOptions, configured: number | null, decide: Decide): FeatureReport {
    const t = opts.thresholds;
    // Matches, now that noise is known: per route and per timeline bucket, from the signatures.
    const routes = [...this.routes].map(([route, r]) => {
      const matched = this.overflow ? r.matched : matchedIn(r.sigs, decide);
      return { route, pairs: r.pairs, matched, match_rate: r.pairs === 0 ? null : matched / r.pairs };
    });
    const matchedTotal = routes.reduce((sum, r) => sum + r.matched, 0);
    const timeline = [...this.timeline.values()].map((b) => ({ t: b.t, pairs: b.pairs, matched: this.overflow ? b.matched : matchedIn(b.sigs, decide) }));
    const pathRows = [...this.paths].map(([path, a]) => {
      // A path is noise in this feature only where it is noise on every route it differed on. The
      // numbers shown are those of the first route where it is real, so that a difference listed
      // always shows why (its rate there above that route's noise), else of the first route.
      let real: NoiseModel | undefined;
      for (const m of a.models) {
        if (!decide.isNoise(m, path)) {
          real = m;
          break;
        }
      }
      const v = (real ?? a.first).verdict(path, opts.noise);
      return { path, kinds: [...a.kinds].sort(), count: a.count, rate: a.count / Math.max(1, this.compared), route_rate: v.rate, noise_rate: v.noiseRate, examples: a.examples, noise: real === undefined };
    });
    const order = (x: PathRow, y: PathRow) => y.count - x.count || x.path.localeCompare(y.path);
    const strip = ({ noise: _n, ...rest }: (typeof pathRows)[number]): PathRow => rest;
    const differences = pathRows.filter((r) => !r.noise).map(strip).sort(order);
    const noise = pathRows.filter((r) => r.noise).map(strip).sort(order);

    // Latency: exact while every pair is in the sample, from the histograms beyond.
    const kept = Math.min(this.both, this.#size);
    const legacy = new Array<number>(kept);
    const neu = new Array<number>(kept);
    for (let i = 0; i < kept; i++) {
      legacy[i] = this.#sample[2 * i]!;
      neu[i] = this.#sample[2 * i + 1]!;
    }
    legacy.sort((x, y) => x - y);
    neu.sort((x, y) => x - y);
    const exact = this.both <= this.#size;
    const side = (sorted: number[], hist: Uint32Array): SideLatency =>
      exact
        ? { n: this.both, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99) }
        : { n: this.both, p50: histQuantile(hist, this.both, 0.5), p95: histQuantile(hist, this.both, 0.95), p99: histQuantile(hist, this.both, 0.99) };
    const L = side(legacy, this.hist.legacy);
    const N = side(neu, this.hist.new);
    const change = (a: number | null, b: number | null) => (a === null || b === null || a === 0 ? null : Math.round(((b - a) / a) * 1000) / 10);

    const skipped: Record<string, number> = {};
    let mirrored = 0;
    for (const c of counters) {
      if (c.name === "mirrored") mirrored += c.value;
      else skipped[c.name.replace(/^skipped_/, "")] = (skipped[c.name.replace(/^skipped_/, "")] ?? 0) + c.value;
    }
    const capped = (skipped.cap ?? 0) + (skipped.queue_full ?? 0);
    const effective = configured !== null && mirrored + capped > 0 ? (configured * mirrored) / (mirrored + capped) : configured;
    const errorRate = (c: number) => (this.pairs === 0 ? null : c / this.pairs);
    const matchRate = this.compared === 0 ? null : matchedTotal / this.compared;
    const { kpis, verdict, enough } = judge(t, { legacy: L, new: N }, { legacy: errorRate(this.err.legacy.count), new: errorRate(this.err.new.count) }, { legacy: errorRate(this.err.legacy.timeouts), new: errorRate(this.err.new.timeouts) }, this.err.new.timeouts, this.pairs, this.compared, matchRate);
    return {
      feature: this.feature,
      pairs: this.pairs,
      compared: this.compared,
      matched: matchedTotal,
      match_rate: matchRate,
      status_mismatches: this.statusMismatches,
      confusion: [...this.confusion].map(([k, count]) => {
        const [l, n] = k.split("\u0000") as [string, string];
        return { legacy: l, new: n, count };
      }).sort((a, b) => b.count - a.count),
      errors: { legacy: { ...this.err.legacy, rate: errorRate(this.err.legacy.count) }, new: { ...this.err.new, rate: errorRate(this.err.new.count) } },
      latency: {
        legacy: L,
        new: N,
        p50_change_percent: change(L.p50, N.p50),
        p95_change_percent: change(L.p95, N.p95),
        p99_change_percent: change(L.p99, N.p99),
        mann_whitney: mannWhitney(neu, legacy),
        hodges_lehmann_ms: hodgesLehmann(legacy, neu),
        histogram: chart(this.hist.legacy, this.hist.new),
        method: { quantiles: exact ? "exact" : "histogram", pairs: this.both, sampled: kept },
      },
      differences,
      noise,
      untracked_paths: this.untrackedCount,
      routes: routes.sort((a, b) => b.pairs - a.pairs),
      timeline: timeline.sort((a, b) => a.t - b.t),
      presets: [...this.presets].map(([name, pairs]) => ({ name, pairs })),
      sampling: { mirrored, skipped, configured_percent: configured, effective_percent: effective === null ? null : Math.round(effective * 100) / 100, capped: capped > 0 },
      enough_data: enough,
      kpis,
      verdict,
    };
  }
}

/** The q-quantile from a bucketed histogram of n values (the bucket's geometric middle, ±3.5 %). */
function histQuantile(hist: Uint32Array, n: number, q: number): number | null {
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return bucketValue(i);
  }
  return bucketValue(hist.length - 1);
}

/** The two latency histograms on at most 24 shared bins between the fastest and slowest bucket used. */
function chart(a: Uint32Array, b: Uint32Array): { edges_ms: number[]; legacy: number[]; new: number[] } {
  let lo = -1;
  let hi = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i]! + b[i]! === 0) continue;
    if (lo === -1) lo = i;
    hi = i;
  }
  if (lo === -1) return { edges_ms: [], legacy: [], new: [] };
  const span = hi - lo + 1;
  const bins = Math.min(24, span);
  const per = Math.ceil(span / bins);
  const n = Math.ceil(span / per);
  const legacy = new Array<number>(n).fill(0);
  const neu = new Array<number>(n).fill(0);
  for (let i = lo; i <= hi; i++) {
    legacy[Math.floor((i - lo) / per)]! += a[i]!;
    neu[Math.floor((i - lo) / per)]! += b[i]!;
  }
  // Bucket i holds (0.01 * 1.07^(i-1), 0.01 * 1.07^i] ms.
  const edge = (i: number) => Math.round((i <= 0 ? 0 : 0.01 * 1.07 ** (i - 1)) * 1000) / 1000;
  return { edges_ms: Array.from({ length: n + 1 }, (_, k) => edge(lo + k * per)), legacy, new: neu };
}

/** The rollout guides' success criteria from a feature's numbers, and the verdict. */
export function judge(
  t: Thresholds,
  lat: { legacy: SideLatency; new: SideLatency },
  errorRate: { legacy: number | null; new: number | null },
  timeoutRate: { legacy: number | null; new: number | null },
  newTimeouts: number,
  pairs: number,
  compared: number,
  matchRate: number | null,
): { kpis: Kpi[]; verdict: FeatureReport["verdict"]; enough: boolean } {
  const L = lat.legacy;
  const N = lat.new;
  const enough = compared >= t.min_pairs;
  const newErr = errorRate.new;
  const legacyErr = errorRate.legacy;
  const p99Improvement = L.p99 !== null && N.p99 !== null && L.p99 > 0 ? ((L.p99 - N.p99) / L.p99) * 100 : null;
  const status = (ok: boolean | null): Kpi["status"] => (!enough || ok === null ? "N/A" : ok ? "PASS" : "FAIL");
  const kpis: Kpi[] = [
    { metric: "Response time (p50)", baseline: ms(L.p50), target: `<= legacy`, actual: ms(N.p50), status: status(L.p50 === null || N.p50 === null ? null : N.p50 <= L.p50) },
    { metric: "Response time (p95)", baseline: ms(L.p95), target: "<= legacy", actual: ms(N.p95), status: status(L.p95 === null || N.p95 === null ? null : N.p95 <= L.p95) },
    { metric: "Response time (p99)", baseline: ms(L.p99), target: `>= ${t.min_p99_improvement} % faster`, actual: `${ms(N.p99)}${p99Improvement === null ? "" : ` (${p99Improvement >= 0 ? p99Improvement.toFixed(1) + " % faster" : (-p99Improvement).toFixed(1) + " % slower"})`}`, status: status(p99Improvement === null ? null : p99Improvement >= t.min_p99_improvement) },
    { metric: "Error rate (5xx, failures)", baseline: pct(legacyErr), target: `< ${t.max_error_rate} %`, actual: pct(newErr), status: status(newErr === null ? null : newErr * 100 < t.max_error_rate) },
    { metric: "Success rate", baseline: pct(legacyErr === null ? null : 1 - legacyErr), target: ">= legacy", actual: pct(newErr === null ? null : 1 - newErr), status: status(newErr === null || legacyErr === null ? null : newErr <= legacyErr) },
    { metric: "Timeout rate", baseline: pct(timeoutRate.legacy), target: "0 %", actual: pct(timeoutRate.new), status: status(pairs === 0 ? null : newTimeouts === 0) },
    { metric: "Identical responses (noise excluded)", baseline: "-", target: `>= ${t.min_match_rate} %`, actual: pct(matchRate), status: status(matchRate === null ? null : matchRate * 100 >= t.min_match_rate) },
  ];
  const verdict = !enough ? "INSUFFICIENT DATA" : kpis.every((k) => k.status !== "FAIL") ? "PASS" : "FAIL";
  return { kpis, verdict, enough };
}
