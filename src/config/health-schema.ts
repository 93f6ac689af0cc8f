// Upstream resilience in the config file: active and passive health per backend, and failover to the
// other stack (globally and per feature) with a retry budget.
import { z } from "zod";
import { duration } from "./fields.ts";

const METHOD = /^[A-Z][A-Z0-9_-]*$/;
const methods = z.array(z.string().regex(METHOD, { error: "expected an upper-case HTTP method such as GET" }));

/** "2xx" or a status code: what an active check must answer. */
const expected = z.union([z.int().min(100).max(599), z.string().regex(/^[1-5]xx$/, { error: 'expected a status such as 200 or a class such as "2xx"' })], {
  error: 'expected a status such as 200 or a class such as "2xx"',
});

export const ActiveHealthSchema = z
  .strictObject({
    path: z.string().startsWith("/", { error: 'expected a path such as "/healthz"' }).meta({ description: "Path the check requests (GET) from the backend, e.g. /healthz." }),
    interval: duration("Time between two checks.", "5s"),
    timeout: duration("A check that has not answered in this time failed.", "2s"),
    expected_status: z.array(expected).min(1).default(["2xx"]).meta({ description: 'Statuses (200) or classes ("2xx") a healthy backend answers. Default ["2xx"].' }),
    healthy_threshold: z.int().min(1).default(2).meta({ description: "Consecutive passing checks that make an unhealthy backend healthy again. Default 2." }),
    unhealthy_threshold: z.int().min(1).default(3).meta({ description: "Consecutive failing checks that make a backend unhealthy. Default 3." }),
    jitter: duration("Each interval is lengthened by a random share of this, so replicas do not check in step.", "500ms"),
  })
  .meta({ description: "Active health checks: requests of the proxy's own to a path of the backend. Off when absent." });

export const PassiveHealthSchema = z
  .strictObject({
    consecutive_failures: z.int().min(0).default(5)
      .meta({ description: "Failed exchanges in a row (connect failures, resets, timeouts, invalid answers, 502/503/504) that eject the backend; 0 turns passive detection off. Default 5." }),
    window: duration("Failures further apart than this start the count over.", "30s"),
    ejection: duration("How long the first ejection lasts; each ejection of a backend that failed again soon after coming back lasts twice as long, up to max_ejection.", "10s"),
    max_ejection: duration("Longest ejection.", "5m"),
  })
  .prefault({})
  .meta({ description: "Passive detection (outlier ejection) from real traffic. After an ejection the backend is half-open: the next exchange (or active check) decides." });

export const BackendHealthSchema = z
  .strictObject({
    active: ActiveHealthSchema.optional(),
    passive: PassiveHealthSchema,
  })
  .prefault({})
  .meta({ description: "Health of this backend: active checks (optional) and passive detection from traffic." });

export const FailoverSchema = z
  .strictObject({
    enabled: z.boolean().default(true).meta({ description: "Send a request once to the other backend when its own is ejected or fails before answering (see methods). Default true." }),
    methods: methods.default(["GET", "HEAD", "OPTIONS"])
      .meta({ description: "Methods that fail over after the request reached the backend (a reset or timeout before any response byte). Any method fails over when nothing was sent (connect refused, pool deadline) and its body is buffered. Default [GET, HEAD, OPTIONS]." }),
    budget_percent: z.number().min(0).max(100).default(20)
      .meta({ description: "Failovers after an error may be at most this share of requests over the last 10 s (Envoy's retry budget), so failover never doubles the load of an overload. Default 20." }),
    min_per_second: z.int().min(0).default(3).meta({ description: "Failovers always allowed per second, whatever the budget (low traffic). Default 3." }),
  })
  .prefault({})
  .meta({ description: "Failover to the other stack: when the chosen backend is ejected, or an attempt fails before the answer starts, the request goes once to the other backend." });

export const FeatureFailoverSchema = z
  .strictObject({
    enabled: z.boolean().optional().meta({ description: "Failover for this feature; default failover.enabled." }),
    methods: methods.optional().meta({ description: "Methods that may fail over after being sent; default failover.methods (add POST only for idempotent POSTs)." }),
  })
  .meta({ description: "Failover settings for this feature, over the global failover block." });
