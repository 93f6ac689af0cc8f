// Shadow traffic at run time. A sampled request gets a ticket: the proxy copies (up to a limit) what
// the primary backend answers while streaming it to the client as usual, the ticket sends the same
// request to the other backend (and now and then once more to the serving one, to learn noise) on
// pools of its own, and when every side is in, compares, logs one line, counts, and hands a redacted
// record to the store. Nothing here is awaited by the primary path; caps bound what is in flight.
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { Dispatcher } from "undici";
import { Pool } from "../forward/undici.ts";
import type { BackendTarget, Snapshot } from "../config/compile.ts";
import { ERRORS, type ErrorCode } from "../errors/codes.ts";
import { classifyUpstreamError } from "../forward/classify.ts";
import { connectionKey, connectOptions, streamsWhenH2 } from "../forward/pools.ts";
import type { ResponseTap } from "../forward/exchange.ts";
import type { Logger } from "../observe/logger.ts";
import { round3 } from "../observe/access-log.ts";
import type { Metrics } from "../observe/metrics.ts";
import type { Decision } from "../routing/decide.ts";
import type { BackendName } from "../routing/table.ts";
import { compareAnswers, normalizePath, type Answer, type DiffEntry } from "./compare.ts";
import { WindowStats, type WindowDelta } from "../observe/window.ts";
import { NoiseModel } from "./noise.ts";
import { redactDiffs, redactTarget } from "./redact.ts";
import { chooseShadow, type CapturedHeaders, type ShadowPlan, type ShadowSettings, type SkipReason } from "./settings.ts";
import { pairRow, type PairSink } from "./store/store.ts";

const OUTCOMES = ["mirrored", "compared", "matched", "mismatched", "noise_only", "not_compared", "shadow_error", "primary_error", "dropped"] as const;
type Outcome = (typeof OUTCOMES)[number];
const REASONS: readonly SkipReason[] = ["method", "direction", "body_too_large", "sample", "cap", "queue_full"];
const NO_FEATURE = "none";
/** Distinct paths remembered per route by the live noise model. */
const MAX_NOISE_PATHS = 2000;

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotli = promisify(zlib.brotliDecompress);

/** One side's answer as captured. */
interface Captured {
  backend: BackendName;
  status: number;
  /** The headers a comparison reads (ShadowSettings.captured), lowercase. */
  headers: Record<string, string>;
  /** Raw (possibly compressed) bytes; null when over max_compare_size. */
  body: Buffer | null;
  bytes: number;
  ms: number;
  error: string | null;
}

/** Per-backend budget: open shadow requests and a token bucket of starts per second. */
class Budget {
  inFlight = 0;
  #tokens: number;
  #last = performance.now();
  readonly #max: number;
  readonly #rate: number;

  constructor(maxInFlight: number, perSecond: number) {
    this.#max = maxInFlight;
    this.#rate = perSecond;
    this.#tokens = Math.max(1, perSecond);
  }

  take(): "ok" | "cap" | "queue_full" {
    const now = performance.now();
    this.#tokens = Math.min(Math.max(1, this.#rate), this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.inFlight >= this.#max) return "queue_full";
    if (this.#tokens < 1) return "cap";
    this.#tokens--;
    this.inFlight++;
    return "ok";
  }
}

export interface BeginArgs {
  snap: Snapshot;
  decision: Decision;
  backend: BackendTarget;
  method: string;
  path: string;
  /** Upstream headers as sent to the primary (flat name/value list). */
  headers: readonly string[];
  requestId: string;
  /** Declared body size; -1 chunked; 0 none. */
  bodyBytes: number;
}

export class ShadowRunner {
  readonly #logger: Logger;
  readonly #openStore: () => PairSink | null;
  readonly #trackDeltas: boolean;
  readonly #pools = new Map<string, Pool>();
  readonly #budgets = new Map<BackendName, Budget>();
  #budgetKey = "";
  readonly #counts = new Map<string, Float64Array>();
  readonly #skips = new Map<string, Float64Array>();
  readonly #noise = new Map<string, NoiseModel>();
  /** Compared pairs per feature over sliding windows; "errors" are mismatches (noise excluded). */
  readonly #comparisons = new Map<string, WindowStats>();
  replays = 0;
  #closed = false;

  /** trackDeltas: keep comparison window records for drainComparisonDeltas() (a worker). */
  constructor(logger: Logger, metrics: Metrics, openStore: () => PairSink | null, opts: { trackDeltas?: boolean } = {}) {
    this.#logger = logger;
    this.#openStore = openStore;
    this.#trackDeltas = opts.trackDeltas === true;
    metrics.collect("switchyard_shadow_requests_total", "counter", "Shadow traffic by feature and outcome: mirrored, compared, matched, mismatched, noise_only, not_compared (body over max_compare_size), shadow_error, primary_error, dropped (client left).", () =>
      [...this.#counts].flatMap(([feature, c]) => OUTCOMES.map((outcome, i) => ({ labels: { feature, outcome }, value: c[i]! }))),
    );
    metrics.collect("switchyard_shadow_skipped_total", "counter", "Requests not mirrored by feature and reason: method, direction, body_too_large, sample, cap (per-second cap), queue_full (in-flight cap).", () =>
      [...this.#skips].flatMap(([feature, c]) => REASONS.map((reason, i) => ({ labels: { feature, reason }, value: c[i]! }))),
    );
    metrics.collect("switchyard_shadow_in_flight", "gauge", "Shadow and replay requests open now, by target backend.", () =>
      (["legacy", "new"] as const).map((backend) => ({ labels: { backend }, value: this.#budgets.get(backend)?.inFlight ?? 0 })),
    );
    metrics.collect("switchyard_shadow_replays_total", "counter", "Requests replayed to the serving backend to learn noise.", () => [{ labels: {}, value: this.replays }]);
  }

  /** The feature's compared pairs over time, for the guard's shadow rule. */
  comparisons(feature: string): WindowStats {
    let w = this.#comparisons.get(feature);
    if (w === undefined) {
      this.#comparisons.set(feature, (w = new WindowStats()));
      if (this.#trackDeltas) w.trackDeltas();
    }
    return w;
  }

  /** Comparison window records since the last call, per feature (workers send these to the primary). */
  drainComparisonDeltas(): { feature: string; deltas: WindowDelta[] }[] {
    return [...this.#comparisons].flatMap(([feature, w]) => {
      const deltas = w.drainDeltas();
      return deltas.length > 0 ? [{ feature, deltas }] : [];
    });
  }

  mergeComparisonDeltas(from: readonly { feature: string; deltas: WindowDelta[] }[]): void {
    for (const f of from) for (const d of f.deltas) this.comparisons(f.feature).merge(d);
  }

  /** Shadow and replay requests open now to a backend. */
  inFlight(backend: BackendName): number {
    return this.#budgets.get(backend)?.inFlight ?? 0;
  }

  get store(): PairSink | null {
    return this.#closed ? null : this.#openStore();
  }

  /** The live noise model of a route (feature + route pattern). */
  noiseModel(key: string): NoiseModel | undefined {
    return this.#noise.get(key);
  }

  /** A ticket when this request is mirrored; null otherwise (the reason is counted). */
  begin(a: BeginArgs): ShadowTicket | null {
    const plan = a.snap.shadow;
    if (!plan.enabled) return null;
    const feature = a.decision.feature ?? NO_FEATURE;
    const settings = (a.decision.feature !== null ? plan.features.get(a.decision.feature) : undefined) ?? plan.global;
    const choice = chooseShadow(plan, settings, { method: a.method, bodyBytes: a.bodyBytes, requestId: a.requestId, userKey: a.decision.identity?.key ?? null, primary: a.backend.name });
    if (!choice.mirror) {
      if (choice.reason !== null) this.#skip(feature, choice.reason);
      return null;
    }
    const budget = this.#budget(choice.target, plan);
    const taken = budget.take();
    if (taken !== "ok") {
      this.#skip(feature, taken);
      return null;
    }
    let replayBudget: Budget | null = null;
    if (choice.replay) {
      const rb = this.#budget(a.backend.name, plan);
      if (rb.take() === "ok") replayBudget = rb;
    }
    this.count(feature, "mirrored");
    this.store?.count(feature, "mirrored");
    return new ShadowTicket(this, a, plan, settings, feature, a.snap.backends[choice.target], budget, replayBudget);
  }

  count(feature: string, outcome: Outcome): void {
    let c = this.#counts.get(feature);
    if (c === undefined) this.#counts.set(feature, (c = new Float64Array(OUTCOMES.length)));
    c[OUTCOMES.indexOf(outcome)]!++;
  }

  #skip(feature: string, reason: SkipReason): void {
    let c = this.#skips.get(feature);
    if (c === undefined) this.#skips.set(feature, (c = new Float64Array(REASONS.length)));
    c[REASONS.indexOf(reason)]!++;
    // Per-minute counts for the report's effective sample rate (sample is the normal case: not stored).
    if (reason !== "sample") this.store?.count(feature, `skipped_${reason}`);
  }

  #budget(backend: BackendName, plan: ShadowPlan): Budget {
    const key = `${plan.maxInFlight}|${plan.maxPerSecond}`;
    if (key !== this.#budgetKey) {
      // New limits: fresh budgets (open requests finish against the old ones).
      this.#budgets.clear();
      this.#budgetKey = key;
    }
    let b = this.#budgets.get(backend);
    if (b === undefined) this.#budgets.set(backend, (b = new Budget(plan.maxInFlight, plan.maxPerSecond)));
    return b;
  }

  /** A pool of the shadow's own per target, so shadow load never takes the primary's connections. */
  pool(target: BackendTarget, plan: ShadowPlan): Pool {
    const key = `${target.origin}|${plan.maxInFlight}|${target.connectTimeoutMs}|${connectionKey(target)}`;
    let p = this.#pools.get(key);
    if (p === undefined) {
      p = new Pool(target.origin, { connections: plan.maxInFlight, pipelining: 1, keepAliveTimeout: target.idleTimeoutMs, ...connectOptions(target, target.connectTimeoutMs), ...(target.http2 && { factory: streamsWhenH2 }) });
      this.#pools.set(key, p);
    }
    return p;
  }

  noiseFor(key: string): NoiseModel {
    let m = this.#noise.get(key);
    if (m === undefined) this.#noise.set(key, (m = new NoiseModel()));
    return m;
  }

  get logger(): Logger {
    return this.#logger;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.destroy()));
    this.#pools.clear();
    const store = this.store;
    this.#closed = true;
    await store?.close();
  }
}

export class ShadowTicket implements ResponseTap {
  readonly #runner: ShadowRunner;
  readonly #args: BeginArgs;
  readonly #plan: ShadowPlan;
  readonly #settings: ShadowSettings;
  readonly #feature: string;
  readonly #target: BackendTarget;
  readonly #budget: Budget;
  readonly #replayBudget: Budget | null;
  readonly #body: Buffer[] | null;
  #bodyBytes = 0;
  #abandoned = false;
  #shadow: Promise<Captured> | null = null;
  #replay: Promise<Captured> | null = null;
  // The primary, as the exchange reports it.
  #status = 0;
  #headers: Record<string, string> = {};
  #chunks: Buffer[] = [];
  #bytes = 0;
  #over = false;

  constructor(runner: ShadowRunner, args: BeginArgs, plan: ShadowPlan, settings: ShadowSettings, feature: string, target: BackendTarget, budget: Budget, replayBudget: Budget | null) {
    this.#runner = runner;
    this.#args = args;
    this.#plan = plan;
    this.#settings = settings;
    this.#feature = feature;
    this.#target = target;
    this.#budget = budget;
    this.#replayBudget = replayBudget;
    const hasBody = args.bodyBytes !== 0;
    this.#body = hasBody ? [] : null;
    if (!hasBody) this.#dispatch();
  }

  // --- the request body, copied while it streams to the primary ---

  addBody(chunk: Buffer): void {
    if (this.#abandoned || this.#body === null) return;
    this.#bodyBytes += chunk.length;
    if (this.#bodyBytes > this.#plan.maxBodyBytes) {
      this.#abandon("body_too_large");
      return;
    }
    this.#body.push(chunk); // a chunk is never reused once read (socket reads are fresh buffers): no copy
  }

  bodyEnd(): void {
    if (!this.#abandoned && this.#shadow === null) this.#dispatch();
  }

  // --- the primary answer, copied while it streams to the client ---

  primaryStart(status: number, rawHeaders: readonly (Buffer | string)[]): void {
    this.#status = status;
    this.#headers = headerMap(rawHeaders, this.#settings.captured);
  }

  primaryData(chunk: Buffer): void {
    if (this.#over) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#plan.maxCompareBytes) {
      this.#over = true;
      this.#chunks = [];
      return;
    }
    this.#chunks.push(chunk);
  }

  /** The exchange ended: error is the proxy's code when the primary failed; clientGone when the client left. */
  primaryEnd(error: ErrorCode | undefined, upstreamMs: number | null, clientGone: boolean): void {
    if (this.#abandoned) return;
    if (clientGone || this.#shadow === null) {
      // Nothing sensible to compare (the client left, or the body never completed).
      this.#abandon(null);
      return;
    }
    const primary: Captured = {
      backend: this.#args.backend.name,
      status: error !== undefined ? ERRORS[error].status : this.#status,
      headers: this.#headers,
      body: this.#over ? null : joined(this.#chunks),
      bytes: this.#bytes,
      ms: upstreamMs ?? 0,
      error: error ?? null,
    };
    const shadow = this.#shadow;
    const replay = this.#replay;
    void Promise.all([shadow, replay]).then(([s, r]) => this.#finish(primary, s, r)).catch((err: unknown) => this.#runner.logger.error({ err }, "shadow comparison failed"));
  }

  #abandon(reason: "body_too_large" | null): void {
    this.#abandoned = true;
    this.#runner.count(this.#feature, "dropped");
    if (reason !== null) this.#runner.store?.count(this.#feature, `dropped_${reason}`);
    if (this.#shadow === null) {
      this.#budget.inFlight--;
      if (this.#replayBudget) this.#replayBudget.inFlight--;
    }
  }

  #dispatch(): void {
    const a = this.#args;
    const body = this.#body === null ? null : joined(this.#body);
    const headers = shadowHeaders(a.headers, a.snap, a.backend, this.#plan.header);
    const send = (target: BackendTarget, budget: Budget) =>
      capture(this.#runner.pool(target, this.#plan), target.name, { path: a.path, method: a.method, headers: headers(target), body }, this.#plan, this.#settings.captured).finally(() => budget.inFlight--);
    this.#shadow = send(this.#target, this.#budget);
    if (this.#replayBudget) {
      this.#runner.replays++;
      this.#replay = send(a.backend, this.#replayBudget);
    }
  }

  async #finish(primary: Captured, shadow: Captured, replay: Captured | null): Promise<void> {
    const runner = this.#runner;
    const a = this.#args;
    const legacy = primary.backend === "legacy" ? primary : shadow;
    const neu = primary.backend === "legacy" ? shadow : primary;
    const routeKey = `${this.#feature} ${a.decision.route ?? ""}`;
    let verdict: string;
    let diffs: DiffEntry[] = [];
    let replayPaths: string[] | null = null;
    let presets: string[] = [];
    let bodyCompared = false;
    if (shadow.error !== null) verdict = "shadow_error";
    else if (primary.error !== null) verdict = "primary_error";
    else {
      const [la, na] = await both(legacy, neu, this.#plan, this.#settings);
      const c = compareAnswers(la, na, this.#settings.compare);
      diffs = c.diffs;
      presets = c.presetsUsed;
      if (this.#settings.compare.presets.has("content_encoding") && (legacy.headers["content-encoding"] ?? "identity") !== (neu.headers["content-encoding"] ?? "identity")) presets.push("content_encoding");
      bodyCompared = c.bodyCompared;
      const paths = diffs.map((d) => normalizePath(d.path));
      const model = runner.noiseFor(routeKey);
      if (model.raw.size < MAX_NOISE_PATHS) model.addPair(paths);
      else model.addPair(paths.filter((p) => model.raw.has(p)));
      if (replay !== null && replay.error === null) {
        const [pa, ra] = await both(primary, replay, this.#plan, this.#settings);
        replayPaths = [...new Set(compareAnswers(pa, ra, this.#settings.compare).diffs.map((d) => normalizePath(d.path)))];
        model.addReplay(replayPaths);
      }
      verdict = diffs.length === 0 ? "match" : paths.every((p) => model.isNoise(p, this.#plan.noise)) ? "noise_only" : "mismatch";
    }
    runner.count(this.#feature, verdict === "shadow_error" ? "shadow_error" : verdict === "primary_error" ? "primary_error" : "compared");
    if (verdict === "match" || verdict === "mismatch" || verdict === "noise_only") runner.comparisons(this.#feature).record(0, verdict === "mismatch", Date.now());
    if (verdict === "match") runner.count(this.#feature, "matched");
    else if (verdict === "mismatch") runner.count(this.#feature, "mismatched");
    else if (verdict === "noise_only") runner.count(this.#feature, "noise_only");
    if ((verdict === "match" || verdict === "mismatch" || verdict === "noise_only") && !bodyCompared && legacy.status === neu.status) runner.count(this.#feature, "not_compared");

    const stored = redactDiffs(diffs, this.#plan.redactFields);
    const path = redactTarget(a.path);
    const logPairs = this.#plan.logPairs;
    if (logPairs === "all" || (logPairs === "differences" && verdict !== "match")) runner.logger.info(
      {
        req_id: a.requestId,
        feature: this.#feature,
        route: a.decision.route,
        method: a.method,
        path,
        primary: side(primary),
        shadow: side(shadow),
        verdict,
        differences: diffs.length,
        paths: stored.slice(0, 5).map((d) => `${d.kind} ${d.path}`),
        ...(presets.length > 0 && { presets }),
        ...(replayPaths !== null && { noise_paths: replayPaths.slice(0, 5) }),
      },
      "shadow compared",
    );
    runner.store?.add(pairRow({
      ts: Date.now(),
      req_id: a.requestId,
      feature: this.#feature,
      route: a.decision.route,
      method: a.method,
      path,
      primary_backend: primary.backend,
      legacy_status: legacy.error === null || legacy === primary ? legacy.status : null,
      new_status: neu.error === null || neu === primary ? neu.status : null,
      legacy_ms: legacy.error === null ? round3(legacy.ms) : null,
      new_ms: neu.error === null ? round3(neu.ms) : null,
      legacy_bytes: legacy.bytes,
      new_bytes: neu.bytes,
      verdict,
      diffs: JSON.stringify(stored),
      replay_diffs: replayPaths === null ? null : JSON.stringify(replayPaths),
      presets: JSON.stringify(presets),
      body_compared: bodyCompared ? 1 : 0,
      error: shadow.error ?? primary.error,
    }));
  }
}

/** Chunks as one buffer; a body that came in one chunk (most) is that chunk, not a copy of it. */
const joined = (chunks: Buffer[]): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
const side = (c: Captured) => ({ backend: c.backend, status: c.status, ms: round3(c.ms), bytes: c.bytes, ...(c.error !== null && { error: c.error }) });

/** The primary's upstream headers, re-addressed for another backend, marked as shadow. */
function shadowHeaders(flat: readonly string[], snap: Snapshot, primary: BackendTarget, mark: string) {
  return (target: BackendTarget): string[] => {
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      // Only names as long as one acted on here are lowercased (most are not).
      const lower = name.length === 4 || name.length === 14 || name.length === 17 ? name.toLowerCase() : "";
      if (lower === "content-length" || lower === "transfer-encoding") continue; // undici sets it for the copied body
      if (lower === "host" && !snap.preserveHost && flat[i + 1] === primary.hostHeader) {
        out.push("host", target.hostHeader);
        continue;
      }
      out.push(flat[i]!, flat[i + 1]!);
    }
    out.push(mark, "1");
    return out;
  };
}

/** The captured headers of an answer (lowercase names, repeats joined); the others are not read. */
function headerMap(raw: readonly (Buffer | string)[], captured: CapturedHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!captured.lengths.has(raw[i]!.length)) continue;
    const name = raw[i]!.toString().toLowerCase();
    if (!captured.names.has(name)) continue;
    const value = raw[i + 1]!.toString();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/**
 * One shadow (or replay) exchange, collected by a dispatch handler straight into a bounded buffer: no
 * response stream, no async iterator (the request API's Readable cost more than the comparison).
 */
function capture(pool: Pool, backend: BackendName, req: { path: string; method: string; headers: string[]; body: Buffer | null }, plan: ShadowPlan, captured: CapturedHeaders): Promise<Captured> {
  const started = performance.now();
  return new Promise<Captured>((resolve) => {
    let status = 0;
    let rawHeaders: readonly (Buffer | string)[] = [];
    const chunks: Buffer[] = [];
    let bytes = 0;
    let over = false;
    let done = false;
    const finish = (error: string | null) => {
      if (done) return;
      done = true;
      resolve({ backend, status: error === null ? status : 0, headers: error === null ? headerMap(rawHeaders, captured) : {}, body: error === null && !over ? joined(chunks) : null, bytes, ms: performance.now() - started, error });
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(controller, statusCode) {
        status = statusCode;
        rawHeaders = (controller.rawHeaders as (Buffer | string)[] | undefined) ?? [];
      },
      onResponseData(controller, chunk) {
        bytes += chunk.length;
        if (over) return;
        if (bytes > plan.maxCompareBytes) {
          over = true;
          chunks.length = 0;
          controller.abort(new Error("over max_compare_size")); // enough: status and headers are in
          finish(null);
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        finish(null);
      },
      onResponseError(_controller, err) {
        if (over) return;
        const kind = classifyUpstreamError(err);
        finish(kind === "SY_UPSTREAM_HEADERS_TIMEOUT" || kind === "SY_UPSTREAM_BODY_TIMEOUT" ? `timeout after ${plan.timeoutMs} ms` : `${kind}: ${err.message}`);
      },
    };
    // undici's own timers bound the wait for headers and each body gap (no extra timer per request).
    try {
      pool.dispatch({ path: req.path, method: req.method as "GET", headers: req.headers, body: req.body, headersTimeout: plan.timeoutMs, bodyTimeout: plan.timeoutMs }, handler);
    } catch (err) {
      finish(`${classifyUpstreamError(err)}: ${(err as Error).message}`); // refused before sending: still counted, budget released
    }
  });
}

/** The answer with its body decoded (gzip, deflate, br), for comparison. */
const encodingOf = (c: Captured) => c.headers["content-encoding"]?.trim().toLowerCase();
const isEncoded = (c: Captured) => {
  if (c.body === null || c.body.length === 0) return false;
  const encoding = encodingOf(c);
  return encoding !== undefined && encoding !== "identity";
};

/** Both answers ready to compare; no promise round trip when neither is compressed (the usual case). */
function both(a: Captured, b: Captured, plan: ShadowPlan, settings: ShadowSettings): [Answer, Answer] | Promise<[Answer, Answer]> {
  if (!isEncoded(a) && !isEncoded(b)) return [a, b];
  return Promise.all([decoded(a, plan, settings), decoded(b, plan, settings)]);
}

async function decoded(c: Captured, plan: ShadowPlan, settings: ShadowSettings): Promise<Answer> {
  let body = c.body;
  const encoding = encodingOf(c);
  const headers = { ...c.headers };
  if (body !== null && isEncoded(c)) {
    const opts = { maxOutputLength: plan.maxCompareBytes };
    try {
      body = encoding === "gzip" || encoding === "x-gzip" ? await gunzip(body, opts) : encoding === "deflate" ? await inflate(body, opts) : encoding === "br" ? await brotli(body, opts) : body;
      if (settings.compare.presets.has("content_encoding")) delete headers["content-encoding"];
    } catch {
      body = null; // undecodable or over the limit once decoded: status and headers only
    }
  }
  return { status: c.status, headers, body };
}
