// The routing part of the config file: mode, kill switch, identity, overrides and features.
import { z } from "zod";
import { parseRoute } from "../routing/routes.ts";
import { cidr } from "./cidr.ts";
import { FeatureGuardSchema, ScheduleSchema } from "./guard-schema.ts";
import { FeatureFailoverSchema } from "./health-schema.ts";
import { FeatureShadowSchema } from "./shadow-schema.ts";
import { parseDuration } from "./units.ts";

const backend = z.enum(["legacy", "new"]);

const headerName = z.string().regex(/^[A-Za-z0-9-]+$/, { error: "expected an HTTP header name such as X-User-Id" });
const cookieName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { error: "expected a cookie name (letters, digits, - _ .)" });

const percent = z
  .number({ error: "expected a percentage from 0 to 100" })
  .min(0, { error: "expected a percentage from 0 to 100" })
  .max(100, { error: "expected a percentage from 0 to 100" })
  .refine((p) => Math.abs(p * 100 - Math.round(p * 100)) < 1e-9, { error: "a percentage has at most two decimals (0.01 % steps)" });

const Weights = z
  .strictObject({
    legacy: z.number().min(0).meta({ description: "Relative weight of legacy." }),
    new: z.number().min(0).meta({ description: "Relative weight of new." }),
  })
  .refine((w) => w.legacy + w.new > 0, { error: "at least one weight must be above 0" })
  .meta({ description: "Per-request weighted split, like nginx upstream weights (no stickiness)." });

const Route = z
  .union([
    z.string(),
    z.strictObject({
      path: z.string().meta({ description: "Path pattern: /exact, /prefix/**, /a/*/b, /users/:id." }),
      methods: z.array(z.string()).optional().meta({ description: "Methods; omitted or [\"*\"] means any." }),
      host: z.string().optional().meta({ description: "Host (exact or *.example.com); omitted means any." }),
    }),
  ])
  .superRefine((route, ctx) => {
    try {
      parseRoute(route);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  })
  .meta({ description: 'Route: "METHOD /path", "METHOD1,METHOD2 /path", "/path" (any method), or {path, methods, host}.' });

export const FeatureSchema = z
  .strictObject({
    description: z.string().optional().meta({ description: "Free text for people." }),
    routes: z.array(Route).min(1, { error: "a feature needs at least one route" }).meta({ description: "Requests this feature claims." }),
    enabled: z.boolean().default(true).meta({ description: "The feature flag: false sends the feature's traffic to legacy (e.g. ${ASYNC_FEATURE_PING:-false}). Default true." }),
    pilot: z.boolean().default(false).meta({ description: "Part of the pilot: in mode pilot only pilot features leave legacy. Default false." }),
    target: z
      .union([backend, z.strictObject({ percent: percent.meta({ description: "Share of users on new, by user hash (0.01 steps)." }) })], {
        error: 'expected legacy, new, or { percent: N }',
      })
      .meta({ description: "Where the feature's traffic goes when enabled: legacy, new, or { percent: N } of users by sticky hash." }),
    unidentified: z
      .union([backend, Weights], { error: "expected legacy, new, or { legacy: W, new: W }" })
      .default("legacy")
      .meta({ description: "For a percent target, requests with no identity: legacy, new, or weights per request. Default legacy." }),
    tunnels_on_move: z.enum(["keep", "drain", "close"]).default("keep")
      .meta({ description: "When a config change moves a user off the backend holding their WebSocket: keep it (default), drain (close with 1012 after websocket.move_drain_timeout) or close with 1012 now, so the client reconnects to the new decision." }),
    salt: z.string().min(1).optional().meta({ description: "Hash salt for this feature; default routing.salt. A different salt gives the feature its own independent user split." }),
    users: z
      .strictObject({
        allow: z.array(z.string()).default([]).meta({ description: "User ids always on new when the feature is enabled (pilot users)." }),
        deny: z.array(z.string()).default([]).meta({ description: "User ids always on legacy." }),
      })
      .prefault({})
      .meta({ description: "Per-user overrides by identity key." }),
    shadow: FeatureShadowSchema.optional().meta({ description: "Shadow settings for this feature, over the global shadow block." }),
    guard: FeatureGuardSchema.optional(),
    schedule: ScheduleSchema.optional(),
    failover: FeatureFailoverSchema.optional(),
  });

const IdentitySource = z
  .union([
    z.strictObject({ header: headerName.meta({ description: "Header carrying the user id, e.g. X-User-Id." }) }),
    z.strictObject({ cookie: cookieName.meta({ description: "Cookie carrying the user id." }) }),
    z.strictObject({ query: z.string().min(1).meta({ description: "Query parameter carrying the user id." }) }),
    z.strictObject({
      jwt: z
        .strictObject({
          header: headerName.optional().meta({ description: "Header holding `Bearer <jwt>`; default Authorization unless cookie is given." }),
          cookie: cookieName.optional().meta({ description: "Cookie holding the JWT." }),
          claim: z.string().min(1).default("sub").meta({ description: "Claim used as the user id. Default sub." }),
        })
        .meta({ description: "A JWT claim, decoded without verification: for bucketing only, never for auth." }),
    }),
    z.literal("client_ip").meta({ description: "The client address (after trusted_proxies)." }),
    z.literal("sticky_cookie").meta({ description: "The proxy's own random id cookie; minted for clients that have none." }),
  ], { error: 'expected {header: NAME}, {cookie: NAME}, {query: NAME}, {jwt: {...}}, "client_ip" or "sticky_cookie"' });

const maxAge = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, { error: 'expected a duration such as "30d" or "12h"' })
  .default("365d")
  .transform((t) => (t.endsWith("d") ? Number(t.slice(0, -1)) * 86_400_000 : parseDuration(t)!))
  .meta({ description: "Sticky cookie lifetime. Default 365d." });

export const RoutingSchema = z
  .strictObject({
    mode: z.enum(["disabled", "pilot", "mixed", "full"]).default("mixed")
      .meta({ description: "disabled: everything legacy; pilot: only pilot features follow their settings; mixed: every feature follows its settings; full: everything new. Default mixed." }),
    kill_switch: z.boolean().default(false).meta({ description: "Master switch: true sends everything to legacy at once, above every other rule. Default false." }),
    default_backend: backend.default("legacy").meta({ description: "Backend for traffic no feature claims (modes pilot and mixed). Default legacy." }),
    salt: z.string().min(1).default("switchyard").meta({ description: "Shared hash salt for user bucketing. Changing it reshuffles users. Default switchyard." }),
    identity: z
      .strictObject({
        sources: z.array(IdentitySource).default([{ header: "X-User-Id" }, "sticky_cookie"])
          .meta({ description: "Where a request's user id comes from; first match wins. Default [{header: X-User-Id}, sticky_cookie]." }),
        sticky_cookie: z
          .strictObject({
            name: cookieName.default("sy_uid").meta({ description: "Cookie name. Default sy_uid." }),
            max_age: maxAge,
            secure: z.boolean().optional().meta({ description: "Secure attribute; default: on for HTTPS listeners." }),
            same_site: z.enum(["Lax", "Strict", "None"]).default("Lax").meta({ description: "SameSite attribute. Default Lax." }),
            path: z.string().startsWith("/").default("/").meta({ description: "Path attribute. Default /." }),
            domain: z.string().optional().meta({ description: "Domain attribute; default none (host-only)." }),
          })
          .prefault({})
          .meta({ description: "The random id cookie given to clients no other source identifies. It never names a backend." }),
      })
      .prefault({})
      .meta({ description: "Who the user is, for sticky splitting." }),
    force: z
      .strictObject({
        enabled: z.boolean().default(false).meta({ description: "Honour force-backend requests (QA). Default false." }),
        header: headerName.default("X-Switchyard-Backend").meta({ description: "Header naming the backend to force. Default X-Switchyard-Backend." }),
        cookie: cookieName.default("sy_backend").meta({ description: "Cookie naming the backend to force. Default sy_backend." }),
        trusted_cidrs: z.array(cidr).default([]).meta({ description: "Clients allowed to force without the secret." }),
        secret: z.string().optional().meta({ description: "Shared secret; a request carrying it in secret_header may force from anywhere." }),
        secret_header: headerName.default("X-Switchyard-Secret").meta({ description: "Header carrying the secret. Default X-Switchyard-Secret." }),
      })
      .prefault({})
      .meta({ description: "QA override: pick the backend per request. Off by default; gated by CIDR or secret." }),
    decision_header: z.boolean().default(false)
      .meta({ description: "Add X-Switchyard-Decision (backend, feature, reason) to responses, for debugging. Default false." }),
  })
  .superRefine((r, ctx) => {
    if (r.force.enabled && r.force.trusted_cidrs.length === 0 && !r.force.secret) {
      ctx.addIssue({ code: "custom", path: ["force", "enabled"], message: "force is enabled but nobody may use it: set force.trusted_cidrs or force.secret" });
    }
  });

export const FeaturesSchema = z.record(
  z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { error: "expected a feature name of lowercase letters, digits, _ or -" }),
  FeatureSchema,
);

export type RoutingConfig = z.output<typeof RoutingSchema>;
export type FeatureConfig = z.output<typeof FeatureSchema>;
export type IdentitySourceConfig = z.output<typeof IdentitySource>;
