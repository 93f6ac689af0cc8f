// File -> validated Config, or every problem with its file:line:column and field path.
import { accessSync, constants, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { LineCounter, parseDocument, isScalar, visit, type Document, type Node as YamlNode } from "yaml";
import type { z } from "zod";
import { ConfigError, ConfigErrors, formatPath } from "./errors.ts";
import { hasMalformedReference, interpolate, type Env } from "./interpolate.ts";
import { BACKEND_NAMES, ConfigSchema, isLoopback, type Config } from "./schema.ts";
import { knownKeysAt, suggest } from "./suggest.ts";

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

export function loadConfigFile(file: string, env: Env = process.env): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    return { ok: false, errors: [new ConfigError({ file, line: 0, column: 0, path: "" }, `cannot read config: ${reason}`)] };
  }
  return parseConfigText(text, file, env);
}

/** Like loadConfigFile but throws ConfigErrors; for callers that cannot go on without a config. */
export function loadConfigFileOrThrow(file: string, env: Env = process.env): Config {
  const result = loadConfigFile(file, env);
  if (!result.ok) throw new ConfigErrors(result.errors);
  return result.config;
}

export function parseConfigText(text: string, file: string, env: Env = process.env): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const at = (offset: number, path: string) => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, column: pos.col, path };
  };

  const syntaxErrors = doc.errors.map((e) => new ConfigError(at(e.pos[0], ""), `YAML syntax: ${firstLine(e.message)}`));
  if (syntaxErrors.length > 0) return { ok: false, errors: syntaxErrors };
  if (doc.contents === null) {
    return { ok: false, errors: [new ConfigError({ file, line: 1, column: 1, path: "" }, "the file is empty; expected a map with listeners and backends (see config/switchyard.example.yaml)")] };
  }

  // Environment problems do not stop validation: `check` reports every error in one run.
  const envErrors = interpolateDocument(doc, env, at);
  const input = doc.toJS({ maxAliasCount: 100 }) as unknown;
  let parsed: ReturnType<typeof ConfigSchema.safeParse>;
  try {
    parsed = ConfigSchema.safeParse(input, { reportInput: true });
  } catch (err) {
    // A validator that throws is our bug, but the file still gets a located, counted failure.
    return { ok: false, errors: [new ConfigError({ file, line: 1, column: 1, path: "" }, `cannot validate this file: ${(err as Error).message}`)] };
  }
  const adminErrors = adminTokenProblems(input, env, doc, at);
  if (parsed.success && envErrors.length === 0 && adminErrors.length === 0) {
    const fileErrors = resolveFiles(parsed.data, file, doc, at);
    return fileErrors.length === 0 ? { ok: true, config: parsed.data } : { ok: false, errors: fileErrors };
  }
  const envPaths = new Set(envErrors.map((e) => e.path));
  const schemaErrors = parsed.success ? [] : parsed.error.issues.flatMap((issue) => issueToErrors(issue, doc, at)).filter((e) => !envPaths.has(e.path));
  const errors = [...envErrors, ...schemaErrors, ...adminErrors].sort((a, b) => a.line - b.line || a.column - b.column);
  return { ok: false, errors };
}

/** An admin listener off loopback needs a token, from the file or from $SWITCHYARD_ADMIN_TOKEN. */
function adminTokenProblems(input: unknown, env: Env, doc: Document, at: AtFn): ConfigError[] {
  const admin = (input as { admin?: { host?: unknown; token?: unknown } } | null)?.admin;
  const host = typeof admin?.host === "string" ? admin.host : undefined;
  if (host === undefined || isLoopback(host) || (typeof admin?.token === "string" && admin.token !== "") || env.SWITCHYARD_ADMIN_TOKEN) return [];
  const node = nearestNode(doc, ["admin", "token"]);
  return [new ConfigError(at(node?.range?.[0] ?? 0, "admin.token"), `admin.host ${host} is not loopback, so an admin token is required: set admin.token (e.g. token: \${SWITCHYARD_ADMIN_TOKEN}) or the environment variable SWITCHYARD_ADMIN_TOKEN`)];
}

function interpolateDocument(doc: Document, env: Env, at: AtFn): ConfigError[] {
  const errors: ConfigError[] = [];
  visit(doc, {
    Scalar(key, node, path) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("${")) return;
      const where = at(node.range?.[0] ?? 0, formatPath(yamlPath(path, node)));
      if (hasMalformedReference(node.value)) {
        errors.push(new ConfigError(where, `malformed environment reference in ${JSON.stringify(node.value)}; expected \${NAME} or \${NAME:-default} (write $\${ for a literal \${)`));
        return;
      }
      const result = interpolate(node.value, env);
      if (result.missing.length > 0) {
        const names = result.missing.join(", ");
        errors.push(new ConfigError(where, `environment variable ${names} is not set; set it or give a default with \${${result.missing[0]}:-value}`));
        return;
      }
      // A plain (unquoted) scalar that was only a reference takes the type its value reads as,
      // so `port: ${PORT:-8080}` is a number; quoted scalars always stay strings.
      node.value = node.type === "PLAIN" && result.substituted ? readAsPlainScalar(result.value) : result.value;
    },
  });
  return errors;
}

/** TLS paths (listeners' and backends') are relative to the config file's folder; each must be readable now, not at the first handshake. */
function resolveFiles(config: Config, file: string, doc: Document, at: AtFn): ConfigError[] {
  const errors: ConfigError[] = [];
  const base = dirname(resolve(file));
  const check = (holder: { cert?: string; key?: string; ca?: string }, where: (string | number)[]) => {
    for (const key of ["cert", "key", "ca"] as const) {
      const given = holder[key];
      if (given === undefined) continue;
      const path = isAbsolute(given) ? given : resolve(base, given);
      try {
        accessSync(path, constants.R_OK);
        holder[key] = path;
      } catch (err) {
        const node = nearestNode(doc, [...where, key]);
        const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "not readable";
        errors.push(new ConfigError(at(node?.range?.[0] ?? 0, [...where, key].map((p, j) => (typeof p === "number" ? `[${p}]` : j === 0 ? p : `.${p}`)).join("")), `cannot read ${path}: ${why}`));
      }
    }
  };
  config.listeners.forEach((l, i) => {
    if (!l.tls) return;
    check(l.tls, ["listeners", i, "tls"]);
    l.tls.sni.forEach((s, j) => check(s, ["listeners", i, "tls", "sni", j]));
  });
  for (const name of BACKEND_NAMES) {
    const t = config.backends[name].tls;
    if (t) check(t, ["backends", name, "tls"]);
  }
  return errors;
}

type AtFn = (offset: number, path: string) => { file: string; line: number; column: number; path: string };

function readAsPlainScalar(text: string): string | number | boolean | null {
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  if (text === "null" || text === "~") return null;
  return text;
}

/** Field path of a node from the ancestors yaml's visit() hands us. */
function yamlPath(ancestors: readonly unknown[], node: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i] as { items?: unknown[] };
    const child = chain[i + 1];
    if (parent && typeof parent === "object" && "key" in parent && "value" in parent) continue;
    if (parent?.items && Array.isArray(parent.items)) {
      const idx = parent.items.indexOf(child);
      const item = parent.items[idx] as { key?: unknown } | undefined;
      if (item && typeof item === "object" && "key" in item) {
        const k = item.key;
        out.push(isScalar(k) ? String(k.value) : String(k));
      } else out.push(idx);
    }
  }
  return out;
}

function issueToErrors(issue: z.core.$ZodIssue, doc: Document, at: AtFn): ConfigError[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  if (issue.code === "unrecognized_keys") {
    const known = knownKeysAt(ConfigSchema, path);
    return issue.keys.map((key) => {
      const hint = suggest(key, known);
      const expected = hint ? `did you mean "${hint}"?` : known.length > 0 ? `expected one of: ${known.join(", ")}` : "remove it";
      return new ConfigError(at(keyOffset(doc, [...path, key]), formatPath([...path, key])), `unknown key "${key}"; ${expected}`);
    });
  }
  const node = nearestNode(doc, path);
  const present = doc.getIn(path, true) !== undefined;
  // A bad map key (e.g. a feature name) carries the key schema's own message one level down.
  const inner = issue.code === "invalid_key" ? issue.issues[0]?.message : undefined;
  let message = (inner ?? issue.message).replace(/^Invalid (input|option): /, "").replace(/^expected object\b/, "expected a map");
  if (path.length === 0 && issue.code === "invalid_type") message = "the top level must be a map with listeners and backends (see config/switchyard.example.yaml)";
  else if (!present && issue.input === undefined) message = `required field is missing (${message.replace(/, received undefined$/, "")})`;
  else if (issue.code !== "custom" && !message.includes(" got ") && issue.input !== undefined) message = `${message} (got ${JSON.stringify(issue.input)})`;
  return [new ConfigError(at(node?.range?.[0] ?? 0, formatPath(path)), message)];
}

/** The node at path, or its nearest existing ancestor (a missing field points at its parent). */
function nearestNode(doc: Document, path: (string | number)[]): YamlNode | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = (n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)) as YamlNode | undefined;
    if (node && typeof node === "object" && "range" in node) return node;
  }
  return undefined;
}

/** Offset of the key named by the last path element (so "unknown key" points at the key itself). */
function keyOffset(doc: Document, path: (string | number)[]): number {
  const parent = nearestNode(doc, path.slice(0, -1)) as { items?: { key?: { value?: unknown; range?: number[] } }[]; range?: number[] } | undefined;
  const last = path[path.length - 1];
  const pair = parent?.items?.find((p) => p.key && isScalar(p.key) && p.key.value === last);
  return pair?.key?.range?.[0] ?? parent?.range?.[0] ?? 0;
}

function firstLine(text: string): string {
  return text.split("\n")[0]!;
}
