// Comparing two answers to the same request: status, chosen headers, and the body - for JSON a
// structural diff (key order and whitespace do not matter; value, type, missing/extra keys, array
// length and order do), otherwise bytes. Pure: decoded answers and options in, differences out.
import type { PresetName } from "../config/shadow-schema.ts";

export interface Answer {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Decoded body, or null when it was over max_compare_size (then only status and headers count). */
  body: Buffer | null;
}

export type DiffKind = "status" | "header" | "value" | "type" | "missing" | "extra" | "length" | "order" | "bytes";

export interface DiffEntry {
  /** `status`, `headers.content-type`, `$.a.items[3].id`, `$` (whole body). */
  path: string;
  kind: DiffKind;
  a: unknown;
  b: unknown;
}

export interface CompareOptions {
  headers: readonly string[];
  ignore: PathMatcher;
  arrayOrder: "strict" | "ignore";
  presets: ReadonlySet<PresetName>;
  /** Most entries kept per comparison. */
  maxEntries?: number;
}

export interface Comparison {
  diffs: DiffEntry[];
  /** Presets that made a difference disappear in this comparison. */
  presetsUsed: PresetName[];
  /** False when a body was too large, or statuses differ (bodies of different statuses are not compared). */
  bodyCompared: boolean;
  truncated: boolean;
}

const VALIDATION = new Set([400, 422]);
const REDIRECT = new Set([307, 308]);

export function compareAnswers(a: Answer, b: Answer, opts: CompareOptions): Comparison {
  const max = opts.maxEntries ?? 100;
  const out: DiffEntry[] = [];
  const used = new Set<PresetName>();
  let compareBody = true;
  if (a.status !== b.status) {
    if (opts.presets.has("validation_status") && VALIDATION.has(a.status) && VALIDATION.has(b.status)) used.add("validation_status");
    else if (opts.presets.has("redirect_status") && REDIRECT.has(a.status) && REDIRECT.has(b.status)) used.add("redirect_status");
    else out.push({ path: "status", kind: "status", a: a.status, b: b.status });
    compareBody = false;
  } else if (opts.presets.has("validation_status") && VALIDATION.has(a.status)) {
    compareBody = false; // two validation envelopes: the frameworks word them differently
  }

  for (const name of opts.headers) {
    const ha = headerValue(a.headers, name, opts.presets, used);
    const hb = headerValue(b.headers, name, opts.presets, used);
    if (ha !== hb) {
      if (ha !== undefined && hb !== undefined && opts.presets.has("header_case") && ha.toLowerCase() === hb.toLowerCase()) used.add("header_case");
      else out.push({ path: `headers.${name}`, kind: "header", a: ha ?? null, b: hb ?? null });
    }
  }

  const bodyCompared = compareBody && a.body !== null && b.body !== null;
  // The same bytes are the same document (the usual case once a route is ported): nothing to parse.
  if (bodyCompared && !a.body!.equals(b.body!)) {
    const ja = isJson(a.headers) ? parseJson(a.body!) : NOT_JSON;
    const jb = isJson(b.headers) ? parseJson(b.body!) : NOT_JSON;
    if (ja !== NOT_JSON && jb !== NOT_JSON) diffJson(ja, jb, "$", out, { ...opts, used, max });
    else if (ja !== NOT_JSON || jb !== NOT_JSON) out.push({ path: "$", kind: "type", a: ja === NOT_JSON ? `not JSON (${a.body!.length} bytes)` : "JSON", b: jb === NOT_JSON ? `not JSON (${b.body!.length} bytes)` : "JSON" });
    else out.push({ path: "$", kind: "bytes", a: `${a.body!.length} bytes`, b: `${b.body!.length} bytes` });
  }
  return { diffs: out.length > max ? out.slice(0, max) : out, presetsUsed: used.size === 0 ? [] : [...used], bodyCompared, truncated: out.length > max };
}

function headerValue(h: Record<string, string>, name: string, presets: ReadonlySet<PresetName>, used: Set<PresetName>): string | undefined {
  const v = h[name];
  if (v === undefined || name !== "content-type" || !presets.has("charset")) return v;
  const stripped = v.replace(/;\s*charset="?utf-8"?/i, "").trim();
  if (stripped !== v) used.add("charset");
  return stripped;
}

const NOT_JSON = Symbol("not json");

function isJson(h: Record<string, string>): boolean {
  const t = h["content-type"]?.toLowerCase() ?? "";
  return /^application\/(?:[\w.+-]+\+)?json\b/.test(t) || t.startsWith("text/json");
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return NOT_JSON;
  }
}

interface DiffContext extends CompareOptions {
  used: Set<PresetName>;
  max: number;
}

type JsonType = "null" | "array" | "object" | "string" | "number" | "boolean";
const typeOf = (v: unknown): JsonType => (v === null ? "null" : Array.isArray(v) ? "array" : (typeof v as JsonType));

function diffJson(a: unknown, b: unknown, path: string, out: DiffEntry[], ctx: DiffContext): void {
  if (out.length > ctx.max || ctx.ignore(path)) return;
  const ta = typeOf(a);
  const tb = typeOf(b);
  if (ta !== tb) {
    out.push({ path, kind: "type", a, b });
    return;
  }
  switch (ta) {
    case "number":
      if (a !== b) {
        if (ctx.presets.has("float_format") && closeEnough(a as number, b as number)) ctx.used.add("float_format");
        else out.push({ path, kind: "value", a, b });
      }
      return;
    case "string":
      if (a !== b) {
        if (ctx.presets.has("date_format") && sameInstant(a as string, b as string)) ctx.used.add("date_format");
        else out.push({ path, kind: "value", a, b });
      }
      return;
    case "boolean":
    case "null":
      if (a !== b) out.push({ path, kind: "value", a, b });
      return;
    case "object": {
      const oa = a as Record<string, unknown>;
      const ob = b as Record<string, unknown>;
      for (const k of Object.keys(oa)) {
        const p = childPath(path, k);
        if (!Object.hasOwn(ob, k)) {
          if (!ctx.ignore(p)) out.push({ path: p, kind: "missing", a: oa[k], b: undefined });
        } else diffJson(oa[k], ob[k], p, out, ctx);
      }
      for (const k of Object.keys(ob)) {
        const p = childPath(path, k);
        if (!Object.hasOwn(oa, k) && !ctx.ignore(p)) out.push({ path: p, kind: "extra", a: undefined, b: ob[k] });
      }
      return;
    }
    case "array": {
      const xa = a as unknown[];
      const xb = b as unknown[];
      if (ctx.arrayOrder === "ignore") {
        diffMultiset(xa, xb, path, out, ctx);
        return;
      }
      // Element by element first (the common, equal case costs nothing more); a reordering of the
      // same elements is then reported once, as order, not as one entry per shifted element.
      const found: DiffEntry[] = [];
      if (xa.length !== xb.length) found.push({ path, kind: "length", a: xa.length, b: xb.length });
      for (let i = 0; i < Math.min(xa.length, xb.length); i++) diffJson(xa[i], xb[i], `${path}[${i}]`, found, ctx);
      if (found.length > 0 && sameMultiset(xa, xb, path, ctx)) out.push({ path, kind: "order", a: `${xa.length} items`, b: "same items, other order" });
      else out.push(...found);
      return;
    }
  }
}

function diffMultiset(xa: unknown[], xb: unknown[], path: string, out: DiffEntry[], ctx: DiffContext): void {
  const count = new Map<string, number>();
  for (let i = 0; i < xa.length; i++) {
    const c = canonical(xa[i], `${path}[${i}]`, ctx);
    count.set(c, (count.get(c) ?? 0) + 1);
  }
  const extra: unknown[] = [];
  for (let i = 0; i < xb.length; i++) {
    const c = canonical(xb[i], `${path}[${i}]`, ctx);
    const n = count.get(c) ?? 0;
    if (n > 0) count.set(c, n - 1);
    else extra.push(xb[i]);
  }
  const missing = [...count].flatMap(([c, n]) => Array.from({ length: n }, () => JSON.parse(c) as unknown));
  if (xa.length !== xb.length) out.push({ path, kind: "length", a: xa.length, b: xb.length });
  if (missing.length > 0) out.push({ path: `${path}[*]`, kind: "missing", a: missing[0], b: undefined });
  if (extra.length > 0) out.push({ path: `${path}[*]`, kind: "extra", a: undefined, b: extra[0] });
}

function sameMultiset(xa: unknown[], xb: unknown[], path: string, ctx: DiffContext): boolean {
  if (xa.length !== xb.length || xa.length < 2) return false;
  const ca = xa.map((v, i) => canonical(v, `${path}[${i}]`, ctx)).sort();
  const cb = xb.map((v, i) => canonical(v, `${path}[${i}]`, ctx)).sort();
  return ca.every((c, i) => c === cb[i]) && ca.length > 0;
}

/** A value as sorted-key JSON, ignored paths left out, so equal values are equal strings. */
function canonical(v: unknown, path: string, ctx: DiffContext): string {
  if (Array.isArray(v)) return `[${v.map((x, i) => canonical(x, `${path}[${i}]`, ctx)).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v).filter((k) => !ctx.ignore(childPath(path, k))).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k], childPath(path, k), ctx)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

export function childPath(path: string, key: string): string {
  return /^[A-Za-z_][\w-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** `$.items[3].id` -> `$.items[*].id`: the path as aggregated across requests. */
export function normalizePath(path: string): string {
  return path.replace(/\[\d+\]/g, "[*]");
}

function closeEnough(x: number, y: number): boolean {
  return Math.abs(x - y) <= 1e-9 * Math.max(Math.abs(x), Math.abs(y), 1e-300);
}

const ISO = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/i;
const RFC1123 = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} (GMT|UTC|[+-]\d{4})$/;

/** Microseconds since the epoch for an ISO 8601 or RFC 1123 date-time; null for anything else. */
export function instant(s: string): number | null {
  const m = ISO.exec(s);
  if (m) {
    const zone = m[4] === undefined ? "Z" : m[4].toUpperCase() === "Z" ? "Z" : m[4].replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
    const ms = Date.parse(`${m[1]}T${m[2]!.length === 5 ? `${m[2]}:00` : m[2]}${zone}`);
    if (Number.isNaN(ms)) return null;
    return ms * 1000 + Number((m[3] ?? "").padEnd(6, "0").slice(0, 6));
  }
  if (RFC1123.test(s)) {
    const ms = Date.parse(s);
    return Number.isNaN(ms) ? null : ms * 1000;
  }
  return null;
}

function sameInstant(x: string, y: string): boolean {
  const a = instant(x);
  return a !== null && a === instant(y);
}

export type PathMatcher = (path: string) => boolean;

/** Ignore-path patterns ($.a.b, $.items[*].id, $..key) -> one matcher; a match covers the subtree. */
export function compilePaths(patterns: readonly string[]): PathMatcher {
  if (patterns.length === 0) return () => false;
  const parts = patterns.map((p) => {
    let re = "^\\$";
    for (const [, dots, name, index] of p.slice(1).matchAll(/(\.\.?)([A-Za-z_][\w-]*)|\[(\*|\d+)\]/g)) {
      if (index !== undefined) re += index === "*" ? "\\[\\d+\\]" : `\\[${index}\\]`;
      else if (dots === "..") re += `(?:\\.[A-Za-z_][\\w-]*|\\[[^\\]]*\\])*\\.${escape(name!)}`;
      else re += `\\.${escape(name!)}`;
    }
    return `${re}(?=$|[.[])`;
  });
  const all = new RegExp(parts.join("|"));
  return (path) => all.test(path);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
