// What may reach the comparison store: the request as method + path + query parameter names (values
// never), and diff entries whose example values are redacted by key and capped in size. Pure.
import type { DiffEntry } from "./compare.ts";

export const REDACTED = "[redacted]";
const ALWAYS_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie"]);
const MAX_VALUE_CHARS = 200;

/** `/a/b?token=x&page=2` -> `/a/b?token=…&page=…`. */
export function redactTarget(target: string): string {
  const q = target.indexOf("?");
  if (q < 0) return target;
  const names = target
    .slice(q + 1)
    .split("&")
    .filter((p) => p !== "")
    .map((p) => `${decodeSafe(p.split("=")[0]!)}=…`);
  return `${target.slice(0, q)}?${names.join("&")}`;
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

export interface StoredDiff {
  path: string;
  kind: string;
  legacy: unknown;
  new: unknown;
}

/** Diff entries (a = legacy, b = new) as stored: secrets redacted, values capped. */
export function redactDiffs(diffs: readonly DiffEntry[], fields: ReadonlySet<string>): StoredDiff[] {
  return diffs.map((d) => {
    const secret = isSecretPath(d.path, fields);
    const show = (v: unknown) => (v === undefined ? null : secret ? REDACTED : cap(redactValue(v, fields)));
    return { path: d.path, kind: d.kind, legacy: show(d.a), new: show(d.b) };
  });
}

function isSecretPath(path: string, fields: ReadonlySet<string>): boolean {
  if (path.startsWith("headers.")) return ALWAYS_HEADERS.has(path.slice(8)) || fields.has(path.slice(8));
  for (const [, key, quoted] of path.matchAll(/\.([A-Za-z_][\w-]*)|\["((?:[^"\\]|\\.)*)"\]/g)) {
    if (fields.has((key ?? quoted ?? "").toLowerCase())) return true;
  }
  return false;
}

/** A JSON value with the values of secret keys replaced, at any depth. */
export function redactValue(v: unknown, fields: ReadonlySet<string>): unknown {
  if (Array.isArray(v)) return v.map((x) => redactValue(x, fields));
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fields.has(k.toLowerCase()) ? REDACTED : redactValue(x, fields)]));
  }
  return v;
}

function cap(v: unknown): unknown {
  const text = typeof v === "string" ? v : JSON.stringify(v);
  if (text.length <= MAX_VALUE_CHARS) return v;
  return `${text.slice(0, MAX_VALUE_CHARS)}… (${text.length} chars)`;
}
