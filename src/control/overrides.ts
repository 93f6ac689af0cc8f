// The runtime layer (Envoy's "runtime" over static config): a few typed keys an operator sets through
// the admin API, laid over the file's config before it is compiled. Pure: values in, config out.
//
//   routing.mode                  disabled | pilot | mixed | full
//   routing.kill_switch           true (the rollback) | false
//   features.<name>.enabled       true | false          <name> may be "*": every feature (all_endpoints)
//   features.<name>.percent       0..100 (0.01 steps)   sets target to { percent }
//   features.<name>.target        legacy | new
//
// A feature-specific key beats the "*" key, which beats the file.
import type { Config } from "../config/schema.ts";

export type OverrideKey = string;
export type OverrideValue = string | number | boolean;

export interface OverrideEntry {
  value: OverrideValue;
  /** Who set it (token name), from where, and when (ISO time). */
  by: string;
  at: string;
}

export type Overrides = ReadonlyMap<OverrideKey, OverrideEntry>;

const MODES = new Set(["disabled", "pilot", "mixed", "full"]);

/** Why a key/value pair is not a valid override for this config, or null when it is. */
export function overrideProblem(config: Config, key: string, value: unknown): string | null {
  if (key === "routing.mode") return typeof value === "string" && MODES.has(value) ? null : `routing.mode must be one of disabled, pilot, mixed, full (got ${JSON.stringify(value)})`;
  if (key === "routing.kill_switch") return typeof value === "boolean" ? null : `routing.kill_switch must be true or false (got ${JSON.stringify(value)})`;
  const m = /^features\.([^.]+)\.(enabled|percent|target)$/.exec(key);
  if (!m) return `unknown override key "${key}"; expected routing.mode, routing.kill_switch or features.<name>.enabled|percent|target`;
  const [, name, field] = m as unknown as [string, string, string];
  if (name !== "*" && !(name in config.features)) return `no feature named "${name}" (known: ${Object.keys(config.features).join(", ") || "none"})`;
  if (field === "enabled") return typeof value === "boolean" ? null : `${key} must be true or false (got ${JSON.stringify(value)})`;
  if (field === "target") return value === "legacy" || value === "new" ? null : `${key} must be legacy or new (got ${JSON.stringify(value)})`;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 100) return `${key} must be a number from 0 to 100 (got ${JSON.stringify(value)})`;
  if (Math.abs(value * 100 - Math.round(value * 100)) > 1e-9) return `${key} has at most two decimals (0.01 % steps)`;
  return null;
}

/** The config with the overrides laid over it (a new object; the input is not touched). */
export function applyOverrides(config: Config, overrides: Overrides): Config {
  if (overrides.size === 0) return config;
  const out: Config = { ...config, routing: { ...config.routing }, features: {} };
  const get = (k: string) => overrides.get(k)?.value;
  if (get("routing.mode") !== undefined) out.routing.mode = get("routing.mode") as Config["routing"]["mode"];
  if (get("routing.kill_switch") !== undefined) out.routing.kill_switch = get("routing.kill_switch") as boolean;
  for (const [name, f] of Object.entries(config.features)) {
    const pick = (field: string) => get(`features.${name}.${field}`) ?? get(`features.*.${field}`);
    const feature = { ...f };
    const enabled = pick("enabled");
    if (enabled !== undefined) feature.enabled = enabled as boolean;
    // The more specific of percent/target wins; between equals, a feature key beats "*".
    const target = get(`features.${name}.target`) ?? (get(`features.${name}.percent`) === undefined ? get("features.*.target") : undefined);
    const percent = get(`features.${name}.percent`) ?? (get(`features.${name}.target`) === undefined ? get("features.*.percent") : undefined);
    if (target !== undefined) feature.target = target as "legacy" | "new";
    else if (percent !== undefined) feature.target = { percent: percent as number };
    out.features[name] = feature;
  }
  return out;
}

/** The file's value for an override key (to show what an override shadows). */
export function fileValue(config: Config, key: string): OverrideValue | null {
  if (key === "routing.mode") return config.routing.mode;
  if (key === "routing.kill_switch") return config.routing.kill_switch;
  const m = /^features\.([^.]+)\.(enabled|percent|target)$/.exec(key);
  if (!m || m[1] === "*") return null;
  const f = config.features[m[1]!];
  if (!f) return null;
  if (m[2] === "enabled") return f.enabled;
  if (m[2] === "percent") return typeof f.target === "string" ? (f.target === "new" ? 100 : 0) : f.target.percent;
  return typeof f.target === "string" ? f.target : `percent ${f.target.percent}`;
}
