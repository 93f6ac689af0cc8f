// Shadow config -> per-feature settings the hot path reads, and the pure decision whether one request
// is mirrored. Sampling is a hash of the request id (or the user key) against the percent, so the
// same request id always gets the same answer, in any process.
import { PRESET_NAMES, type PresetName, type ShadowConfig } from "../config/shadow-schema.ts";
import type { Config } from "../config/schema.ts";
import { BUCKETS, bucketOf } from "../routing/hash.ts";
import type { BackendName } from "../routing/table.ts";
import { compilePaths, type CompareOptions } from "./compare.ts";

export const DEFAULT_COMPARE_HEADERS = ["content-type", "location", "cache-control", "content-language", "www-authenticate"];

export interface ShadowSettings {
  readonly enabled: boolean;
  /** Bucket threshold out of 10,000 (percent x 100). */
  readonly threshold: number;
  readonly sampleBy: "request" | "user";
  readonly direction: "other" | "to_new" | "to_legacy";
  readonly methods: ReadonlySet<string>;
  readonly compare: CompareOptions;
  /** Answer headers a comparison reads (those compared, content type and encoding): the only ones captured. */
  readonly captured: CapturedHeaders;
  /** Names of the presets in effect, for the report. */
  readonly presets: readonly PresetName[];
}

export interface ShadowPlan {
  readonly enabled: boolean;
  readonly global: ShadowSettings;
  readonly features: ReadonlyMap<string, ShadowSettings>;
  readonly maxBodyBytes: number;
  readonly maxCompareBytes: number;
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  readonly maxPerSecond: number;
  readonly header: string;
  readonly replayThreshold: number;
  readonly noise: { relative: number; absolute: number };
  /** JSON keys whose values never reach the store, lower-cased. */
  readonly redactFields: ReadonlySet<string>;
  /** Which compared pairs get a log line. */
  readonly logPairs: "all" | "differences" | "none";
  readonly config: ShadowConfig;
}

/** Header names (lowercase) and their lengths, so a name of another length is skipped unread. */
export interface CapturedHeaders {
  readonly names: ReadonlySet<string>;
  readonly lengths: ReadonlySet<number>;
}

export function compileShadowPlan(config: Config): ShadowPlan {
  const s = config.shadow;
  const global = settings(s, undefined);
  const features = new Map<string, ShadowSettings>();
  for (const [name, f] of Object.entries(config.features)) features.set(name, settings(s, f.shadow));
  return {
    enabled: global.enabled || [...features.values()].some((f) => f.enabled),
    global,
    features,
    maxBodyBytes: s.max_body_size,
    maxCompareBytes: s.max_compare_size,
    timeoutMs: s.timeout,
    maxInFlight: s.max_in_flight,
    maxPerSecond: s.max_per_second,
    header: s.header,
    replayThreshold: Math.round(s.noise.percent * 100),
    noise: { relative: s.noise.relative, absolute: s.noise.absolute },
    redactFields: new Set(s.store.redact_fields.map((f) => f.toLowerCase())),
    logPairs: s.log_pairs,
    config: s,
  };
}

function settings(g: ShadowConfig, f: Config["features"][string]["shadow"]): ShadowSettings {
  const presetList = f?.compare?.presets ?? g.compare.presets ?? [];
  const presets = new Set<PresetName>(presetList.flatMap((p) => (p === "flask_fastapi" ? PRESET_NAMES : [p])));
  const headers = (f?.compare?.headers ?? g.compare.headers ?? DEFAULT_COMPARE_HEADERS).map((h) => h.toLowerCase());
  const names = new Set([...headers, "content-type", "content-encoding"]);
  return {
    enabled: f?.enabled ?? g.enabled,
    threshold: Math.round((f?.percent ?? g.percent) * 100),
    sampleBy: g.sample_by,
    direction: f?.direction ?? g.direction,
    methods: new Set(f?.methods ?? g.methods),
    presets: [...presets],
    compare: {
      headers,
      ignore: compilePaths([...(g.compare.ignore_paths ?? []), ...(f?.compare?.ignore_paths ?? [])]),
      arrayOrder: f?.compare?.array_order ?? g.compare.array_order ?? "strict",
      presets,
    },
    captured: { names, lengths: new Set([...names].map((n) => n.length)) },
  };
}

export type SkipReason = "method" | "direction" | "body_too_large" | "sample" | "cap" | "queue_full";

export type ShadowChoice = { mirror: true; target: BackendName; replay: boolean } | { mirror: false; reason: SkipReason | null };

export interface ShadowFacts {
  method: string;
  /** Declared request body size; -1 for chunked (decided when the body ends), 0 for none. */
  bodyBytes: number;
  requestId: string;
  userKey: string | null;
  primary: BackendName;
}

/** The answers that mirror nothing, made once (most requests get one of them). */
const SKIP = {
  off: { mirror: false, reason: null },
  direction: { mirror: false, reason: "direction" },
  method: { mirror: false, reason: "method" },
  body_too_large: { mirror: false, reason: "body_too_large" },
  sample: { mirror: false, reason: "sample" },
} as const satisfies Record<string, ShadowChoice>;

/** Whether to mirror this request, and where; reason null means shadowing is off for it (not counted). */
export function chooseShadow(plan: ShadowPlan, s: ShadowSettings, facts: ShadowFacts): ShadowChoice {
  if (!s.enabled) return SKIP.off;
  const target: BackendName = facts.primary === "legacy" ? "new" : "legacy";
  if ((s.direction === "to_new" && target !== "new") || (s.direction === "to_legacy" && target !== "legacy")) return SKIP.direction;
  if (!s.methods.has(facts.method)) return SKIP.method;
  if (facts.bodyBytes > plan.maxBodyBytes) return SKIP.body_too_large;
  // The bucket of "shadow:user:<key>" or "shadow:req:<id>", hashed without joining them first (and
  // not at all at 0 % or 100 %, where it cannot change the answer).
  if (s.threshold <= 0) return SKIP.sample;
  if (s.threshold < BUCKETS) {
    const bucket = s.sampleBy === "user" && facts.userKey !== null ? bucketOf("shadow:user", facts.userKey) : bucketOf("shadow:req", facts.requestId);
    if (bucket >= s.threshold) return SKIP.sample;
  }
  const replay = plan.replayThreshold > 0 && (facts.method === "GET" || facts.method === "HEAD") && bucketOf("noise", facts.requestId) < plan.replayThreshold;
  return { mirror: true, target, replay };
}
