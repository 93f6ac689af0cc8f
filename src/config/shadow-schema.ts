// The shadow part of the config: which requests are mirrored to the other backend, how the two answers
// are compared, and where the comparisons are kept. A global `shadow:` block, and per feature a
// `shadow:` block whose keys override it.
import { z } from "zod";
import { duration, size } from "./fields.ts";

export const SAFE_METHODS = ["GET", "HEAD", "OPTIONS"] as const;

/** Equivalences a Flask -> FastAPI migration meets everywhere; `flask_fastapi` turns them all on. */
export const PRESETS = {
  validation_status: "400 (Flask/marshmallow) and 422 (FastAPI/pydantic) validation errors count as the same answer; their bodies are not compared",
  redirect_status: "307 and 308 trailing-slash redirects count as the same; Location is compared",
  float_format: "numbers equal within a relative 1e-9 (float formatting and rounding of the two runtimes)",
  date_format: "strings that are the same instant in different ISO 8601 / RFC 1123 spellings are equal",
  header_case: "compared header values equal regardless of letter case",
  charset: "Content-Type equal with or without a charset=utf-8 parameter",
  content_encoding: "a compressed and an identity answer may be equal: bodies are decoded before comparing and Content-Encoding is not compared",
} as const;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

const preset = z.enum([...PRESET_NAMES, "flask_fastapi"], { error: `expected a preset: ${[...PRESET_NAMES, "flask_fastapi"].join(", ")}` });

const method = z.string().regex(/^[A-Z]+$/, { error: "expected an HTTP method in capitals, such as GET" });

/** A JSON path to ignore: $.a.b, $.items[*].id, $..request_id (any depth). */
export const jsonPath = z
  .string()
  .regex(/^\$(\.\.?[A-Za-z_][\w-]*|\[\*\]|\[\d+\])+$/, { error: "expected a JSON path such as $.generated_at, $.items[*].id or $..request_id" });

const percent = z
  .number({ error: "expected a percentage from 0 to 100" })
  .min(0, { error: "expected a percentage from 0 to 100" })
  .max(100, { error: "expected a percentage from 0 to 100" });

const CompareSchema = z.strictObject({
  headers: z.array(z.string().regex(/^[A-Za-z0-9-]+$/)).optional()
    .meta({ description: "Response headers compared (case-insensitive names). Default content-type, location, cache-control, content-language, www-authenticate. Date, Server, Set-Cookie, request ids and hop-by-hop headers are never compared." }),
  ignore_paths: z.array(jsonPath).optional()
    .meta({ description: "JSON paths left out of the comparison, e.g. $.generated_at, $..request_id. Per feature these add to the global list." }),
  array_order: z.enum(["strict", "ignore"]).optional()
    .meta({ description: "strict: arrays equal only in the same order (default); ignore: as multisets." }),
  presets: z.array(preset).optional().meta({ description: "Framework-difference presets, listed in the report when used. Default none." }),
});

export const FeatureShadowSchema = z
  .strictObject({
    enabled: z.boolean().optional().meta({ description: "Mirror this feature (default: shadow.enabled)." }),
    percent: percent.optional().meta({ description: "Share of this feature's requests mirrored (default: shadow.percent)." }),
    methods: z.array(method).optional().meta({ description: "Methods mirrored (default: shadow.methods). Unsafe methods need allow_unsafe." }),
    allow_unsafe: z.boolean().default(false)
      .meta({ description: "DANGEROUS: allow POST/PUT/PATCH/DELETE in methods. The other backend then performs the write too, unless it honours the shadow header. Default false." }),
    direction: z.enum(["other", "to_new", "to_legacy"]).optional().meta({ description: "Default: shadow.direction." }),
    compare: CompareSchema.optional().meta({ description: "Comparison settings for this feature (override or add to shadow.compare)." }),
  })
  .superRefine((f, ctx) => {
    const unsafe = (f.methods ?? []).filter((m) => !(SAFE_METHODS as readonly string[]).includes(m));
    if (unsafe.length > 0 && !f.allow_unsafe) {
      ctx.addIssue({
        code: "custom",
        path: ["methods"],
        message: `${unsafe.join(", ")} may write: mirroring it makes the other backend write too. Set allow_unsafe: true only if that backend ignores writes carrying the shadow header`,
      });
    }
  });

export const ShadowSchema = z
  .strictObject({
    enabled: z.boolean().default(false).meta({ description: "Mirror sampled requests to the other backend and compare the answers. Default false." }),
    percent: percent.default(1).meta({ description: "Share of eligible requests mirrored, 0-100. Default 1." }),
    sample_by: z.enum(["request", "user"]).default("request")
      .meta({ description: "request: by a hash of the request id; user: by a hash of the user key, so a sampled user is always mirrored. Default request." }),
    direction: z.enum(["other", "to_new", "to_legacy"]).default("other")
      .meta({ description: "other: the shadow goes to the backend that did not serve; to_new / to_legacy: only mirror requests served by the other one. Default other." }),
    methods: z.array(method).default(["GET", "HEAD"])
      .refine((ms) => ms.every((m) => (SAFE_METHODS as readonly string[]).includes(m)), { error: "only GET, HEAD and OPTIONS may be mirrored globally; opt a feature in with features.NAME.shadow.allow_unsafe" })
      .meta({ description: "Methods mirrored. Default [GET, HEAD]." }),
    max_body_size: size("Largest request body copied for the shadow; larger requests are not mirrored (counted).", "64KiB"),
    max_compare_size: size("Response bytes kept per side for the comparison; beyond it only status and headers are compared (counted).", "1MiB"),
    timeout: duration("Whole shadow exchange deadline; a slower shadow is counted as an error, never waited for.", "10s"),
    max_in_flight: z.int().min(1).max(10_000).default(32).meta({ description: "Shadow requests open at once per backend; more are dropped (counted), never queued. Default 32." }),
    max_per_second: z.number().positive().default(50)
      .meta({ description: "Shadow requests started per second per backend; above it the effective sample rate drops (counted and reported). Default 50." }),
    log_pairs: z.enum(["all", "differences", "none"]).default("differences")
      .meta({ description: 'Which pairs get a "shadow compared" log line: differences (mismatches, noise-only pairs and errors; matches are only counted and stored), all, or none (the store and the metrics keep everything). Default differences.' }),
    header: z.string().regex(/^[A-Za-z0-9-]+$/).default("X-Switchyard-Shadow")
      .meta({ description: "Header (value 1) on every shadow and replay request, so backends can skip side effects. Default X-Switchyard-Shadow." }),
    compare: CompareSchema.prefault({}).meta({ description: "How the two answers are compared." }),
    noise: z
      .strictObject({
        percent: percent.default(10)
          .meta({ description: "Share of mirrored requests also replayed to the serving backend; fields that differ between its two answers are learned as noise. 0 turns it off. Default 10." }),
        relative: z.number().min(0).default(0.2).meta({ description: "A field is a real difference only when its difference rate exceeds its noise rate by this relative margin (Diffy: 0.2)." }),
        absolute: z.number().min(0).default(0.0003).meta({ description: "... and by this absolute share of the compared traffic (Diffy: 0.0003 = 0.03 %)." }),
      })
      .prefault({})
      .meta({ description: "Noise cancellation in the spirit of Twitter's Diffy." }),
    store: z
      .strictObject({
        path: z.string().optional().meta({ description: "SQLite file for comparison records (relative to the config file). Default <config name>-<hash>.shadow.db in the state directory (see admin.state_file)." }),
        max_size: size("Largest store file (with its WAL); past it the oldest records are deleted until it is at 90 %. A pair takes 220-320 bytes: 256MiB holds about a day at 10 mirrored pairs per second.", "256MiB"),
        max_age: duration("Records older than this are deleted; it only bounds what max_size would keep longer.", "7d"),
        redact_fields: z.array(z.string().min(1)).default(["password", "passwd", "secret", "token", "access_token", "refresh_token", "api_key", "apikey", "authorization", "cookie", "ssn", "credit_card"])
          .meta({ description: "JSON keys (any depth, case-insensitive) whose values never reach the store; Authorization, Cookie and Set-Cookie headers never do either." }),
        flush_interval: duration("How often buffered records are written, in one transaction.", "500ms"),
      })
      .prefault({})
      .meta({ description: "Where comparison records are kept." }),
    report: z
      .strictObject({
        min_pairs: z.int().min(1).default(100).meta({ description: "No verdict for a feature with fewer compared pairs. Default 100." }),
        max_error_rate: percent.default(0.1).meta({ description: "Success criterion: new backend error rate below this percent. Default 0.1 (the asyncio deployment and report rollout guides)." }),
        min_p99_improvement: z.number().min(-100).max(100).default(10).meta({ description: "Success criterion: new p99 at least this percent below legacy. Default 10." }),
        min_match_rate: percent.default(99).meta({ description: "Success criterion: share of pairs with identical answers (noise excluded). Default 99." }),
      })
      .prefault({})
      .meta({ description: "Report thresholds (the rollout guides' success criteria)." }),
  })
  .meta({ description: "Shadow traffic: mirror a sample of requests to the other backend and compare the answers." });

export type ShadowConfig = z.output<typeof ShadowSchema>;
export type FeatureShadowConfig = z.output<typeof FeatureShadowSchema>;
