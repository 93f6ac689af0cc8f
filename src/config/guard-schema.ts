// Guard rules (automatic rollback on SLO breach) and progressive rollout schedules, per feature over
// global defaults.
import { z } from "zod";
import { duration } from "./fields.ts";
import { parseDuration } from "./units.ts";

const url = z.string().regex(/^https?:\/\/\S+$/, { error: "expected an http:// or https:// URL" });

const rules = {
  window: z.enum(["1m", "5m", "1h"]).optional().meta({ description: "Sliding window the rules read (1m, 5m or 1h). Default 1m." }),
  min_requests: z.int().min(1).optional().meta({ description: "No judgement with fewer new-backend requests in the window. Default 100." }),
  consecutive: z.int().min(1).optional().meta({ description: "Breaching evaluations in a row before acting (hysteresis). Default 2." }),
  new_error_rate_above: z.number().min(0).max(100).optional().meta({ description: "Breach when the new backend's error rate (5xx, failures) is above this percent. Default 1." }),
  error_rate_over_legacy: z.number().min(0).max(100).optional().meta({ description: "... and above legacy's by this many points. Default 0.5." }),
  confidence: z.number().min(0).max(99.99).optional()
    .meta({ description: "... and, when legacy has traffic in the window, significantly so: a one-sided two-proportion test at this confidence in percent (95: p < 0.05); the p99 rule against legacy likewise needs new's latencies significantly above legacy's (one-sided Mann-Whitney on the window's latency buckets). The p-value is in the audit line. 0 turns the tests off. Default 95." }),
  p99_above: z.union([z.literal(0), z.string().refine((v) => parseDuration(v) !== undefined, { error: "expected a duration such as 2s or 1500ms" })]).optional().meta({ description: "Breach when new p99 is above this (e.g. 2s); 0 turns the rule off. Default 2s." }),
  p99_ratio_over_legacy: z.number().min(0).optional().meta({ description: "Breach when new p99 is above this multiple of legacy's; 0 off. Default 1.5." }),
  p99_ratio_min_difference: z.union([z.literal(0), z.string().refine((v) => parseDuration(v) !== undefined, { error: "expected a duration such as 50ms" })]).optional()
    .meta({ description: "The ratio rule also needs new p99 this much above legacy's, so sub-millisecond jitter is no regression. Default 50ms." }),
  shadow_mismatch_above: z.number().min(0).max(100).optional()
    .meta({ description: "Breach when more than this percent of the feature's shadow comparisons in the window differ (learned noise excluded); 0 off. Default 0." }),
  shadow_min_pairs: z.int().min(1).optional().meta({ description: "Compared pairs the shadow rule needs in the window. Default 50." }),
  action: z.enum(["rollback", "step_down"]).optional().meta({ description: "rollback: the feature to percent 0; step_down: to the previous schedule step. Default rollback." }),
};

export const GuardSchema = z
  .strictObject({
    enabled: z.boolean().default(false).meta({ description: "Evaluate guard rules and schedules. Default false." }),
    interval: duration("How often the guard evaluates.", "5s"),
    cooldown: duration("After an action on a feature, no other action on it for this long.", "5m"),
    ...rules,
    source: z.enum(["switchyard", "prometheus"]).default("switchyard")
      .meta({ description: "Where the guard reads its numbers. switchyard: its own sliding windows (with control.store: redis://..., every replica's, merged by the leader). prometheus: queries to guard.prometheus.url built from Switchyard's own metrics (switchyard_requests_total, switchyard_upstream_duration_seconds, switchyard_shadow_requests_total) over the rule window, as Flagger and Argo Rollouts judge canaries; when Prometheus does not answer the guard holds still and says so. Default switchyard." }),
    prometheus: z
      .strictObject({
        url: url.meta({ description: "Prometheus base URL, e.g. http://prometheus:9090 (queries go to /api/v1/query)." }),
        selector: z.string().regex(/^[^{}]*$/, { error: 'label matchers without braces, e.g. job="switchyard", namespace="edge"' }).default("")
          .meta({ description: 'Label matchers added to every query to pick this fleet\'s series, e.g. job="switchyard". Default none.' }),
        timeout: duration("Per query.", "2s"),
      })
      .optional()
      .meta({ description: "The Prometheus the guard reads when guard.source is prometheus." }),
    webhooks: z.array(url).default([]).meta({ description: "URLs receiving a JSON POST for every guard or schedule action." }),
    webhook_timeout: duration("Per webhook attempt.", "5s"),
    webhook_retries: z.int().min(0).max(10).default(3).meta({ description: "Retries after a failed webhook attempt (1 s, 2 s, 4 s ... apart). Default 3." }),
  })
  .superRefine((g, ctx) => {
    if (g.source === "prometheus" && g.prometheus === undefined) {
      ctx.addIssue({ code: "custom", path: ["prometheus"], message: "guard.source is prometheus but guard.prometheus.url is not set: add guard: { prometheus: { url: http://prometheus:9090 } } or set guard.source: switchyard" });
    }
  })
  .meta({ description: "Guard: automatic rollback when the new backend breaches its SLO, and progressive schedules." });

export const FeatureGuardSchema = z.strictObject({ enabled: z.boolean().optional(), ...rules }).meta({ description: "Guard rules for this feature over the global guard block." });

export const ScheduleSchema = z
  .strictObject({
    steps: z.array(z.number().min(0).max(100)).min(1).refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), { error: "steps must increase, e.g. [1, 10, 25, 50, 100]" })
      .meta({ description: "Percent steps, increasing." }),
    hold: duration("Least time at a step, with the guard rules passing over it on enough traffic, before the next.", "1h"),
    approval: z.enum(["auto", "manual"]).default("auto").meta({ description: "auto: advance when the gates pass; manual: wait for POST /features/NAME/schedule/approve. Default auto." }),
  })
  .meta({ description: "Progressive rollout for this feature (the report rollout guide's 10 -> 25 -> 50 -> 100)." });

export type GuardConfig = z.output<typeof GuardSchema>;
export type FeatureGuardConfig = z.output<typeof FeatureGuardSchema>;
export type ScheduleConfig = z.output<typeof ScheduleSchema>;
