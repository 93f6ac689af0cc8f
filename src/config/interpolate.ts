// ${VAR} and ${VAR:-default} in YAML scalar values, so env-driven deployments (ASYNC_MODE,
// ASYNC_ROLLOUT_PERCENTAGE, ...) map onto the file. Substitution happens on parsed scalars, never on
// raw text: an env value can never inject YAML structure, and line numbers stay true.

export type Env = Readonly<Record<string, string | undefined>>;

export interface InterpolationResult {
  value: string;
  /** Names referenced without a default and not set in the environment. */
  missing: string[];
  /** True when the text held at least one ${...} reference. */
  substituted: boolean;
}

// $${ escapes a literal "${".
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const MALFORMED = /\$\{(?![A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})/;

export function interpolate(text: string, env: Env): InterpolationResult {
  const missing: string[] = [];
  let substituted = false;
  const value = text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (name === undefined) return "${"; // the $${ escape
    substituted = true;
    const set = env[name];
    if (set !== undefined && (set !== "" || fallback === undefined)) return set;
    if (fallback !== undefined) return fallback;
    missing.push(name);
    return match;
  });
  return { value, missing, substituted };
}

/** A "${" that is not a well-formed reference (e.g. "${PORT" or "${1X}"), so typos do not pass silently. */
export function hasMalformedReference(text: string): boolean {
  return MALFORMED.test(text.replace(/\$\$\{/g, ""));
}
