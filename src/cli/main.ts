#!/usr/bin/env -S node --max-semi-space-size=8
// switchyard: start | check | demo | explain | rollout-diff, and the admin helpers status | set |
// mode | rollback | unset. Unix habits: --help, --version, errors on stderr, exit codes
// 0 (ok), 1 (config invalid or runtime failure), 2 (usage error).
// First: `start` and `demo` re-execute under jemalloc before the rest of the program is evaluated.
import "./preexec.ts";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type { DatabaseSync } from "node:sqlite";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startAdmin, type AdminServer } from "../admin/server.ts";
import { AdminCallError, callAdmin, formatStatus, resolveAdmin } from "./admin-client.ts";
import { AllocatorError, useJemalloc } from "./allocator.ts";
import { CLI_OPTIONS } from "./options.ts";
import { ControlPlane, shadowStoreFor } from "../control/control-plane.ts";
import { ClusterPrimary } from "../cluster/primary.ts";
import { ShadowSchema } from "../config/shadow-schema.ts";
import { loadConfigFile } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { formatDuration, formatSize, parseDuration } from "../config/units.ts";
import type { SampleBackend } from "../demo/backends.ts";
import { createLogger, flushLogger } from "../observe/logger.ts";
import { runningAllocator } from "../observe/memory.ts";
import { decide } from "../routing/decide.ts";
import { compileRoutingTable } from "../routing/table.ts";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
const DEMO_CONFIG = fileURLToPath(new URL("../../config/demo.yaml", import.meta.url));

const HELP = `switchyard ${VERSION} - edge proxy that moves traffic from a legacy backend to a new one

Usage:
  switchyard start -c FILE     run the proxy with FILE (the admin API requires admin.token, else
                               $SWITCHYARD_ADMIN_TOKEN, whenever either is set)
  switchyard check -c FILE     validate FILE (like nginx -t): exit 0 with a summary, or 1 with every error
  switchyard demo              sample legacy and new backends on free ports with the proxy in front
  switchyard sample-backend legacy|new [--port N] [--host H]
                               one sample backend alone (the deploy/ lab runs two); default 127.0.0.1:0
  switchyard explain -c FILE [--user U] [--header 'Name: value']... [--ip IP] [--host H] METHOD PATH
                               print the routing decision for one request and the reasons behind it
  switchyard import [NGINX.conf | -] [-o FILE] [--legacy POOL] [--new POOL|URL]
                               write a Switchyard config that behaves like an nginx one (- or no
                               file: the output of \`nginx -T\` on stdin, includes and all) and list
                               every directive not carried over with its file:line and why; POOL
                               is an upstream name or host:port (default: guessed, and said so)
  switchyard rollout-diff OLD.yaml NEW.yaml [--users N]
                               dry run of a config change: per feature, the share of users that moves
                               and in which direction; exit 3 when users would move new -> legacy
                               although no percent went down (salt or identity-source change)

Talking to a running proxy (admin API; every change is validated, audit-logged and persisted):
  switchyard healthcheck        exit 0 when the proxy answers GET /healthz (the image's HEALTHCHECK)
  switchyard status [--json]   mode, features and where each value comes from, last reload, backends
  switchyard set FEATURE [--percent N] [--enabled | --disabled] [--target legacy|new]
                               runtime override for one feature; FEATURE all_endpoints means every one
  switchyard mode MODE         runtime override of routing.mode (disabled, pilot, mixed, full)
  switchyard rollback [--undo] everything to legacy now (kill switch override), or undo that
  switchyard unset KEY|FEATURE clear overrides (a key such as routing.mode, or all of a feature's)
  switchyard reload            re-read the config file now (like SIGHUP)
  switchyard schedule pause|resume|approve FEATURE
                               control a feature's progressive rollout (features.NAME.schedule)
  switchyard report [--db FILE]... [--since 24h|ISO] [--until ISO] [--feature F] [--out F.html|F.md|F.json]
                               shadow comparison report from the store (default --db: the store of
                               -c FILE; --db again for each replica's store, read as one); per
                               feature: match rate, differing JSON paths, noise, status confusion,
                               errors, latency with significance, success criteria (exit 3 when a
                               verdict is FAIL)
  switchyard probe-concurrency --backend legacy|new --path /x [-n 20] [--method GET] [--timeout 60s]
                               the async agent guide's check: the proxy times one request alone, then N at once,
                               and says whether the backend serves them concurrently or sequentially
                               (exit 0 concurrent, 3 sequential or limited, 1 failed)

Options:
  -c, --config FILE   config file (default: $SWITCHYARD_CONFIG); admin helpers take the admin
                      address and token from it
      --admin URL     admin API of the running proxy (default: $SWITCHYARD_ADMIN_URL, else from
                      -c FILE, else a running switchyard demo of yours, else
                      http://127.0.0.1:9901); token from $SWITCHYARD_ADMIN_TOKEN
      --state-file F  (start) where runtime overrides persist (default: $SWITCHYARD_STATE_FILE,
                      else admin.state_file, else <config name>-<hash>.state.json in the
                      state directory: $SWITCHYARD_STATE_DIR, else $STATE_DIRECTORY, else
                      /var/lib/switchyard as root, else ~/.local/state/switchyard)
      --no-watch      (start) do not watch the config file; reload on SIGHUP or POST /reload only
      --workers N     (start) processes serving traffic: a number, or auto for one per CPU core
                      (default: the config's workers, 1); with more than 1 this process keeps
                      the control plane and N workers share the listeners
  -h, --help          show this help
  -V, --version       print the version

Memory (start, demo): the proxy runs on jemalloc when it is installed (Debian: libjemalloc2), which
hands memory back after a load; glibc's allocator keeps much of it. SWITCHYARD_ALLOCATOR=auto (the
default), jemalloc (refuse to start without it), system, or the path of libjemalloc.so.2.

Signals (start, demo): SIGHUP reloads the config file (it is also watched); SIGTERM or SIGINT drain
in-flight requests (shutdown.drain_timeout), then exit 0; a second signal exits at once.

Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error, 3 rollout-diff flagged a move.
Docs: README.md; every config key: config/switchyard.example.yaml.`;

class UsageError extends Error {}

const COMMANDS = "start, check, demo, sample-backend, explain, import, rollout-diff, report, healthcheck, status, set, mode, rollback, unset, reload, schedule or probe-concurrency";
const ADMIN_COMMANDS = new Set(["healthcheck", "status", "set", "mode", "rollback", "unset", "reload", "probe-concurrency", "schedule"]);

interface AdminFlags {
  config?: string;
  admin?: string;
  percent?: string;
  enabled?: boolean;
  disabled?: boolean;
  target?: string;
  undo?: boolean;
  json?: boolean;
  backend?: string;
  path?: string;
  n?: string;
  method?: string;
  timeout?: string;
}

async function adminCommand(command: string, args: string[], flags: AdminFlags): Promise<number> {
  const want = (n: number, usage: string) => {
    if (args.length !== n) throw new UsageError(`usage: switchyard ${usage}`);
  };
  const target = resolveAdmin({ admin: flags.admin, config: flags.config ?? process.env.SWITCHYARD_CONFIG }, process.env);
  let out: Record<string, unknown>;
  try {
    switch (command) {
      case "status":
        want(0, "status [--json]");
        out = await callAdmin(target, "GET", "/status");
        return print(flags.json ? JSON.stringify(out, null, 2) : formatStatus(out));
      case "set": {
        want(1, "set FEATURE [--percent N] [--enabled | --disabled] [--target legacy|new]");
        if (flags.enabled && flags.disabled) throw new UsageError("--enabled and --disabled contradict each other");
        const body: Record<string, unknown> = {};
        if (flags.percent !== undefined) {
          const n = Number(flags.percent.replace(/%$/, ""));
          if (flags.percent.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--percent wants a number from 0 to 100, got "${flags.percent}"`);
          body.percent = n;
        }
        if (flags.enabled || flags.disabled) body.enabled = Boolean(flags.enabled);
        if (flags.target !== undefined) body.target = flags.target;
        if (Object.keys(body).length === 0) throw new UsageError("set needs --percent N, --enabled, --disabled or --target legacy|new");
        out = await callAdmin(target, "PUT", `/features/${encodeURIComponent(args[0]!)}`, body);
        break;
      }
      case "mode":
        want(1, "mode disabled|pilot|mixed|full");
        out = await callAdmin(target, "PUT", "/mode", { mode: args[0] });
        break;
      case "rollback":
        want(0, "rollback [--undo]");
        out = await callAdmin(target, "POST", flags.undo ? "/rollback/undo" : "/rollback");
        break;
      case "unset": {
        want(1, "unset KEY|FEATURE (e.g. routing.mode, features.reports.percent, reports)");
        const key = args[0]!;
        out = key.includes(".") ? await callAdmin(target, "DELETE", `/overrides/${encodeURIComponent(key)}`) : await callAdmin(target, "DELETE", `/features/${encodeURIComponent(key)}`);
        break;
      }
      case "schedule": {
        want(2, "schedule pause|resume|approve FEATURE");
        const [what, feature] = args as [string, string];
        if (!["pause", "resume", "approve"].includes(what)) throw new UsageError(`schedule wants pause, resume or approve, got "${what}"`);
        out = await callAdmin(target, "POST", `/features/${encodeURIComponent(feature)}/schedule/${what}`);
        const st = out.state as { paused: boolean; awaiting: boolean; approved: boolean };
        return print(`ok: schedule of ${feature} ${st.paused ? "paused" : st.approved ? "approved to advance at the next evaluation" : "running"}`);
      }
      case "healthcheck":
        want(0, "healthcheck [--admin URL]");
        await callAdmin(target, "GET", "/healthz", undefined, 3000);
        return print(`ok: ${target.url}/healthz`);
      case "probe-concurrency":
        want(0, "probe-concurrency --backend legacy|new --path /x [-n 20] [--method GET] [--timeout 60s]");
        return probe(target, flags);
      default:
        want(0, "reload");
        out = await callAdmin(target, "POST", "/reload");
        if (out.ok === false) {
          process.stderr.write(`switchyard: reload failed, the proxy keeps its previous config:\n${(out.errors as string[]).map((e) => `  ${e}`).join("\n")}\n`);
          return 1;
        }
    }
  } catch (err) {
    if (!(err instanceof AdminCallError)) throw err;
    process.stderr.write(`switchyard: ${err.message}\n`);
    return 1;
  }
  if (flags.json) return print(JSON.stringify(out, null, 2));
  const changes = (out.changes as string[] | undefined) ?? [];
  return print(`ok, config ${String(out.config_hash ?? out.hash)}: ${changes.length > 0 ? changes.join("; ") : "no routing change"}`);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, allowNegative: true, options: CLI_OPTIONS });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return print(HELP);
  if (values.version) return print(VERSION);
  const [command, ...extra] = positionals;
  const configPath = values.config ?? process.env.SWITCHYARD_CONFIG;
  if (command === "explain") return explain(requireConfig(configPath), extra, values);
  if (command === "rollout-diff") return diff(extra, values.users);
  if (command !== undefined && ADMIN_COMMANDS.has(command)) return adminCommand(command, extra, values);
  if (command === "import") return importCommand(extra, values);
  if (command === "sample-backend") return sampleBackend(extra, values);
  if (command === "report") {
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    return report(configPath, values);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (values.workers !== undefined && command !== "start") throw new UsageError(`--workers applies to start only${command ? `, not ${command}` : ""}`);
  switch (command) {
    case "check":
      return check(requireConfig(configPath));
    case "start": {
      const path = requireConfig(configPath);
      const workers = parseWorkers(values.workers);
      return start(path, values["state-file"] ?? (process.env.SWITCHYARD_STATE_FILE || undefined), values.watch, workers, allocator());
    }
    case "demo":
      return demo(allocator());
    case undefined:
      throw new UsageError(`missing command (${COMMANDS})`);
    default:
      throw new UsageError(`unknown command "${command}" (expected ${COMMANDS})`);
  }
}

async function sampleBackend(args: string[], flags: { port?: string; host?: string }): Promise<number> {
  const name = args[0];
  if (args.length !== 1 || (name !== "legacy" && name !== "new")) throw new UsageError("usage: switchyard sample-backend legacy|new [--port N] [--host H]");
  const port = Number(flags.port ?? "0");
  if (!/^\d+$/.test(flags.port ?? "0") || port > 65535) throw new UsageError(`--port wants a TCP port number 0-65535, got "${flags.port}"`);
  const { startSampleBackend } = await import("../demo/backends.ts");
  let backend: SampleBackend;
  try {
    backend = await startSampleBackend(name, flags.host ?? "127.0.0.1", port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EADDRINUSE" && code !== "EACCES" && code !== "EADDRNOTAVAIL") throw err;
    process.stderr.write(`switchyard: sample-backend: cannot listen on ${flags.host ?? "127.0.0.1"}:${port} (${code}): ${code === "EADDRINUSE" ? "the port is taken; pass another --port (0 picks a free one)" : code === "EACCES" ? "ports below 1024 need privileges" : "no such address here; pass --host"}\n`);
    return 1;
  }
  process.stdout.write(`sample ${name} backend on ${backend.url}\n`);
  return new Promise((resolve) => {
    const stop = () => void backend.close().then(() => resolve(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

async function importCommand(args: string[], flags: { out?: string; legacy?: string; new?: string; config?: string }): Promise<number> {
  if (args.length > 1) throw new UsageError(`import takes one nginx config file (or - for nginx -T on stdin), got ${args.length}`);
  const { loadNginx, NginxReadError, NginxSyntaxError } = await import("../import/nginx-parse.ts");
  const { importNginx, ImportError } = await import("../import/nginx-import.ts");
  const { renderImport, skippedLines } = await import("../import/render.ts");
  const { parseConfigText } = await import("../config/load.ts");
  const { dirname, resolve } = await import("node:path");
  const file = args[0] ?? "-";
  if (file === "-" && process.stdin.isTTY) throw new UsageError("import reads the nginx config from stdin: pipe `nginx -T` into it, or name the file");
  let result;
  try {
    const source = file === "-" ? { text: readFileSync(0, "utf8"), label: "<stdin>" } : { path: file };
    const loaded = loadNginx(source);
    result = importNginx(loaded.directives, { legacy: flags.legacy, new: flags.new, prefix: file === "-" ? (loaded.files[0] === "<stdin>" ? process.cwd() : dirname(loaded.files[0]!)) : dirname(resolve(file)) });
  } catch (err) {
    if (err instanceof NginxSyntaxError || err instanceof NginxReadError || err instanceof ImportError) {
      process.stderr.write(`switchyard: import: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
  const yaml = renderImport(result, file === "-" ? "nginx -T (stdin)" : resolve(file), new Date());
  // The output must load as it is written: a config that fails check is an import bug, said as one.
  const checked = parseConfigText(yaml, flags.out ?? "<import>", {});
  // Certificates of another machine (the nginx host) need not be readable here: said, not fatal.
  const elsewhere = (e: { path: string; message: string }) => /\.tls\.(sni\[\d+\]\.)?(cert|key|ca)$/.test(e.path) && e.message.includes("cannot read");
  if (!checked.ok && checked.errors.every(elsewhere)) {
    for (const e of checked.errors) process.stderr.write(`switchyard: import: warning: ${e.path}: ${e.message.replace(/^.*?: cannot read/, "cannot read")} here; \`switchyard check\` needs it on the machine that runs the proxy\n`);
  } else if (!checked.ok) {
    process.stderr.write(`switchyard: import: the config made from ${file} does not validate (please report this with the nginx file):\n${checked.errors.map((e) => `  ${e.message}`).join("\n")}\n`);
    if (flags.out === undefined) process.stdout.write(yaml);
    return 1;
  }
  if (flags.out !== undefined) writeFileSync(flags.out, yaml);
  else process.stdout.write(yaml);
  for (const line of result.decisions) process.stderr.write(`decision: ${line}\n`);
  for (const line of skippedLines(result)) process.stderr.write(`${line}\n`);
  const features = Object.keys(result.config.features as object).length;
  process.stderr.write(
    `switchyard: import: ${features} feature${features === 1 ? "" : "s"}, ${result.skipped.length} directive${result.skipped.length === 1 ? "" : "s"} not carried over (listed above and in the file's header)` +
      `${flags.out !== undefined ? `; wrote ${flags.out}: check it with npx switchyard check -c ${flags.out}` : ""}\n`,
  );
  return 0;
}

async function probe(target: ReturnType<typeof resolveAdmin>, flags: AdminFlags): Promise<number> {
  if (flags.backend !== "legacy" && flags.backend !== "new") throw new UsageError(`--backend must be legacy or new, got "${flags.backend ?? ""}"`);
  if (!flags.path?.startsWith("/")) throw new UsageError(`--path must start with "/", got "${flags.path ?? ""}"`);
  const n = flags.n === undefined ? 20 : Number(flags.n);
  if (!Number.isInteger(n) || n < 2 || n > 500) throw new UsageError(`-n wants a whole number from 2 to 500, got "${flags.n}"`);
  let timeoutMs = 60_000;
  if (flags.timeout !== undefined) {
    const parsed = parseDuration(flags.timeout);
    if (parsed === undefined || parsed < 100) throw new UsageError(`--timeout wants a duration such as 30s or 2m, got "${flags.timeout}"`);
    timeoutMs = parsed;
  }
  const method = (flags.method ?? "GET").toUpperCase();
  // The proxy runs one warm-up, two solo requests and the batch: allow for all of them.
  const r = await callAdmin(target, "POST", "/probe", { backend: flags.backend, path: flags.path, n, method, timeout_ms: timeoutMs }, timeoutMs * 4 + 10_000);
  if (flags.json) {
    print(JSON.stringify(r, null, 2));
  } else {
    const s = (v: unknown) => `${Number(v).toFixed(2)} s`;
    print(
      [
        `probe ${String(r.backend)} ${String(r.method)} ${String(r.url)}: ${n} concurrent requests`,
        `  one alone        ${s(r.single_seconds)}`,
        `  ${String(n).padEnd(3)} at once      total ${s(r.total_seconds)}, slowest ${s(r.slowest_seconds)}, fastest ${s(r.fastest_seconds)}; ${String(r.ok)} ok, ${String(r.failed)} failed ${JSON.stringify(r.statuses)}`,
        ...(r.errors as string[]).map((e) => `  error            ${e}`),
        `  verdict          ${String(r.explanation)}`,
      ].join("\n"),
    );
  }
  return r.verdict === "concurrent" ? 0 : r.verdict === "failed" ? 1 : 3;
}

async function report(configPath: string | undefined, flags: { db?: string[]; since?: string; until?: string; feature?: string; out?: string }): Promise<number> {
  // The one-off commands load what only they use; a serving process never carries it.
  const [{ DatabaseSync }, { buildReport }, { renderHtml, renderMarkdown }] = await Promise.all([import("node:sqlite"), import("../shadow/report/build.ts"), import("../shadow/report/render.ts")]);
  let config: Config | null = null;
  if (configPath) {
    config = load(configPath);
    if (!config) return 1;
  }
  const dbPaths = flags.db ?? (config && configPath ? [shadowStoreFor(configPath, config)] : []);
  if (dbPaths.length === 0) throw new UsageError("report needs --db FILE (or -c FILE to find the store)");
  for (const dbPath of dbPaths) {
    if (!existsSync(dbPath)) {
      process.stderr.write(`switchyard: ${dbPath}: no shadow store there (is shadow.enabled on, and is this the store path?)\n`);
      return 1;
    }
  }
  const now = Date.now();
  const since = flags.since === undefined ? now - 24 * 3_600_000 : parseWhen(flags.since, now, "--since");
  const until = flags.until === undefined ? now + 1 : parseWhen(flags.until, now, "--until");
  const format = flags.out === undefined ? "md" : /\.html?$/i.test(flags.out) ? "html" : /\.json$/i.test(flags.out) ? "json" : /\.md$/i.test(flags.out) ? "md" : null;
  if (format === null) throw new UsageError(`--out must end in .html, .md or .json, got "${flags.out}"`);
  const shadow = config?.shadow ?? ShadowSchema.parse({});
  const dbs: DatabaseSync[] = [];
  let r;
  try {
    for (const dbPath of dbPaths) dbs.push(new DatabaseSync(dbPath, { readOnly: true }));
    const configuredPercent = config ? Object.fromEntries([["none", shadow.percent], ...Object.entries(config.features).map(([n, f]) => [n, f.shadow?.percent ?? shadow.percent])]) : undefined;
    r = buildReport(dbs, { since, until, feature: flags.feature, thresholds: shadow.report, noise: { relative: shadow.noise.relative, absolute: shadow.noise.absolute }, configuredPercent });
  } finally {
    for (const db of dbs) db.close();
  }
  const text = format === "json" ? `${JSON.stringify(r, null, 2)}\n` : format === "html" ? renderHtml(r) : renderMarkdown(r);
  if (flags.out === undefined) process.stdout.write(text);
  else {
    writeFileSync(flags.out, text);
    process.stdout.write(`switchyard: report for ${r.since} .. ${r.until} written to ${flags.out}: ${[r.overall, ...r.features].filter((f, i) => i > 0 || r.features.length !== 1).map((f) => `${f.feature} ${f.verdict} (${f.compared} pairs, ${f.match_rate === null ? "n/a" : (f.match_rate * 100).toFixed(1) + " %"} identical)`).join("; ") || "no pairs"}\n`);
  }
  return [r.overall, ...r.features].some((f) => f.verdict === "FAIL") ? 3 : 0;
}

/** "24h" / "30m" / "7d" ago, or an ISO date-time. */
function parseWhen(text: string, now: number, flag: string): number {
  const ago = parseDuration(text);
  if (ago !== undefined) return now - ago;
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`${flag} wants a duration ago (24h, 30m, 7d) or an ISO date-time, got "${text}"`);
  return t;
}

function requireConfig(path: string | undefined): string {
  if (!path) throw new UsageError("missing config file: pass -c FILE or set SWITCHYARD_CONFIG");
  return path;
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

function load(path: string): Config | null {
  const result = loadConfigFile(path);
  if (result.ok) return result.config;
  for (const e of result.errors) process.stderr.write(`${e.format()}\n`);
  process.stderr.write(`switchyard: ${path}: ${result.errors.length} error${result.errors.length === 1 ? "" : "s"}; nothing started\n`);
  return null;
}

async function check(path: string): Promise<number> {
  const config = load(path);
  if (!config) return 1;
  // Certificates as the listeners would load them: key matching certificate, dates, names.
  const { loadTls, TlsError } = await import("../proxy/tls.ts");
  type CertInfo = import("../proxy/tls.ts").CertInfo;
  const { loadBackendTls } = await import("../forward/backend-tls.ts");
  const lines: string[] = [];
  let bad = 0;
  const now = Date.now();
  // Every certificate of one place (a listener, a backend's TLS): dates checked, one line each.
  const dated = (where: string, load: () => { certs: readonly (CertInfo & { role?: "ca" | "client" })[] }) => {
    try {
      for (const c of load().certs) {
        const days = Math.floor((c.notAfter.getTime() - now) / 86_400_000);
        const names = c.names.join(", ") || c.subject;
        if (c.notAfter.getTime() <= now) {
          bad++;
          process.stderr.write(`switchyard: ${where}: ${c.file} (${names}) EXPIRED on ${c.notAfter.toISOString()}\n`);
        } else if (c.notBefore.getTime() > now) {
          bad++;
          process.stderr.write(`switchyard: ${where}: ${c.file} (${names}) is not valid before ${c.notBefore.toISOString()}\n`);
        } else {
          if (days < 21) process.stderr.write(`switchyard: warning: ${where}: ${c.file} (${names}) expires in ${days} days, on ${c.notAfter.toISOString()}\n`);
          const what = c.role === "ca" ? "trusted CA" : c.role === "client" ? "client certificate" : "certificate";
          lines.push(`  ${where.replace(/\.tls$/, "")} ${what} ${c.file}: ${names}${c.role === "ca" ? "" : "; key matches"}; expires ${c.notAfter.toISOString().slice(0, 10)} (in ${days} days)`);
        }
      }
    } catch (err) {
      if (!(err instanceof TlsError)) throw err;
      bad++;
      process.stderr.write(`switchyard: ${err.message}\n`);
    }
  };
  for (const [i, l] of config.listeners.entries()) {
    if (l.tls) dated(`listeners[${i}].tls`, () => loadTls(l.tls!, `listeners[${i}].tls`));
  }
  for (const [name, b] of Object.entries(config.backends)) {
    if (b.tls) dated(`backends.${name}.tls`, () => loadBackendTls(b.tls!, `backends.${name}.tls`));
    if (b.tls?.verify === false) process.stderr.write(`switchyard: warning: backends.${name}.tls.verify is false: any certificate is accepted from ${b.url}, so whoever sits between the proxy and it can read and change the traffic\n`);
    else if (b.url.startsWith("https:") && b.tls?.ca === undefined) lines.push(`  backends.${name}: TLS verified against the public CAs${b.http2 ? ", HTTP/2 by ALPN" : ""}`);
  }
  if (bad > 0) {
    process.stderr.write(`switchyard: ${path}: ${bad} certificate problem${bad === 1 ? "" : "s"}; nothing started\n`);
    return 1;
  }
  process.stdout.write(`switchyard: ${path} is valid: ${summarize(config)}\n${lines.map((x) => `${x}\n`).join("")}`);
  return 0;
}

export function summarize(c: Config): string {
  const listeners = c.listeners.map((l) => `${l.tls ? "https" : "http"}://${l.host}:${l.port}`).join(", ");
  return [
    `listeners ${listeners}`,
    `legacy ${c.backends.legacy.url}`,
    `new ${c.backends.new.url}`,
    `mode ${c.routing.mode}${c.routing.kill_switch ? " (KILL SWITCH ON: everything to legacy)" : ""}`,
    `${featureSummary(c)}`,
    `default backend ${c.routing.default_backend}`,
    `admin ${c.admin.host}:${c.admin.port}`,
    `max body ${formatSize(c.limits.max_body_size)}`,
    `drain ${formatDuration(c.shutdown.drain_timeout)}`,
  ].join("; ");
}

async function explain(path: string, args: string[], opts: { user?: string; header?: string[]; ip?: string; host?: string }): Promise<number> {
  const { explainDecision, identityCarriers } = await import("../routing/explain.ts");
  if (args.length !== 2) throw new UsageError("explain needs METHOD and PATH, e.g. explain -c FILE --user alice GET /api/1/ping");
  const [method, target] = args as [string, string];
  if (!target.startsWith("/")) throw new UsageError(`PATH must start with "/", got "${target}"`);
  const config = load(path);
  if (!config) return 1;
  const table = compileRoutingTable(config.routing, config.features);
  let headers: Record<string, string> = {};
  let requestTarget = target;
  let clientIp = opts.ip ?? "127.0.0.1";
  if (opts.user !== undefined) {
    // Carry the user id in the first identity source, the way a real client would.
    const first = table.identity[0];
    if (!first) throw new UsageError("--user given but routing.identity.sources is empty");
    const carried = identityCarriers([first], () => opts.user!, target);
    headers = carried.headers as Record<string, string>;
    requestTarget = carried.target;
    if (first.kind === "client_ip") clientIp = carried.clientIp;
  }
  for (const h of opts.header ?? []) {
    const colon = h.indexOf(":");
    if (colon < 1) throw new UsageError(`--header wants 'Name: value', got "${h}"`);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  const facts = { method: method.toUpperCase(), target: requestTarget, host: opts.host, clientIp, headers, requestId: "explain", mintId: () => "<new sticky id>" };
  const decision = decide(facts, table);
  process.stdout.write(`${explainDecision(facts, decision, table).join("\n")}\n`);
  return 0;
}

async function diff(args: string[], users: string | undefined): Promise<number> {
  const { formatDiff, rolloutDiff } = await import("../routing/diff.ts");
  if (args.length !== 2) throw new UsageError("rollout-diff needs OLD.yaml and NEW.yaml");
  const n = users === undefined ? 100_000 : Number(users);
  if (!Number.isInteger(n) || n < 100 || n > 10_000_000) throw new UsageError(`--users wants a whole number from 100 to 10000000, got "${users}"`);
  const before = load(args[0]!);
  const after = load(args[1]!);
  if (!before || !after) return 1;
  const rows = rolloutDiff(compileRoutingTable(before.routing, before.features), compileRoutingTable(after.routing, after.features), n);
  process.stdout.write(`rollout-diff ${args[0]} -> ${args[1]} (${n.toLocaleString("en-US")} synthetic users per feature)\n${formatDiff(rows)}`);
  return rows.some((r) => r.flag !== null) ? 3 : 0;
}

function featureSummary(c: Config): string {
  const features = Object.values(c.features);
  const enabled = features.filter((f) => f.enabled).length;
  return `${features.length} feature${features.length === 1 ? "" : "s"} (${enabled} enabled)`;
}

/** jemalloc for a serving process (re-executes this one when it must; see allocator.ts): the note for the log. */
function allocator(): string {
  try {
    return useJemalloc();
  } catch (err) {
    if (err instanceof AllocatorError) throw new UsageError(err.message);
    throw err;
  }
}

/** One start-up line: the allocator in use, and why not jemalloc when it is not. */
function logAllocator(logger: ReturnType<typeof createLogger>, note: string): void {
  const running = runningAllocator();
  if (running === "jemalloc") logger.info({ allocator: running, malloc_conf: process.env.MALLOC_CONF ?? "" }, "memory allocator: jemalloc");
  else if (running !== "system") logger.info({ allocator: running, why: note }, `memory allocator: ${running}`);
  else if (/libjemalloc\.so/.test(process.env.LD_PRELOAD ?? "")) logger.warn({ allocator: running, ld_preload: process.env.LD_PRELOAD }, "memory allocator: LD_PRELOAD names jemalloc but the loader did not load it (its message is on stderr); running on the system allocator");
  else logger.info({ allocator: running, why: note }, "memory allocator: system (memory freed after a load may stay with the process; README, Memory)");
}

/** --workers: a whole number from 1 to 256, or auto; undefined when not given. */
function parseWorkers(value: string | undefined): number | "auto" | undefined {
  if (value === undefined) return undefined;
  if (value === "auto") return "auto";
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 256) throw new UsageError(`--workers must be auto or a whole number from 1 to 256, got "${value}"`);
  return n;
}

async function start(path: string, stateFile: string | undefined, watch: boolean, workersFlag: number | "auto" | undefined, allocatorNote: string): Promise<number> {
  const config = load(path);
  if (!config) return 1;
  const logger = createLogger({ level: config.log.level });
  logAllocator(logger, allocatorNote);
  const asked = workersFlag ?? config.workers;
  const workers = asked === "auto" ? availableParallelism() : asked;
  const cp = await ControlPlane.open(path, { logger, stateFile, watch, serve: workers === 1 });
  if (workers > 1) {
    try {
      cp.cluster = await ClusterPrimary.start(cp.app, workers, logger);
    } catch (err) {
      cp.close();
      throw err;
    }
  }
  const admin = await startAdmin(cp, cp.app.snapshot.config.admin);
  return untilSignal(cp, admin, logger, []);
}

async function demo(allocatorNote: string): Promise<number> {
  const { startSampleBackend } = await import("../demo/backends.ts");
  const backends = [await startSampleBackend("legacy"), await startSampleBackend("new")];
  process.env.LEGACY_URL = backends[0]!.url;
  process.env.NEW_URL = backends[1]!.url;
  const config = load(DEMO_CONFIG);
  if (!config) return 1;
  const logger = createLogger({ level: config.log.level });
  logAllocator(logger, allocatorNote);
  // The demo keeps its runtime overrides out of the source tree.
  const demoDir = mkdtempSync(join(tmpdir(), "switchyard-demo-"));
  const stateFile = join(demoDir, "demo.state.json");
  const shadowStorePath = join(demoDir, "demo.shadow.db");
  let cp: ControlPlane;
  const moved: string[] = [];
  try {
    cp = await ControlPlane.open(DEMO_CONFIG, { logger, stateFile, shadowStorePath });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    // Port 8080 taken: any free port will do for a demo, and the banner says so.
    moved.push(`port ${config.listeners[0]!.port} is taken (another demo or server?): the proxy took a free port instead`);
    process.env.SWITCHYARD_PORT = "0";
    cp = await ControlPlane.open(DEMO_CONFIG, { logger, stateFile, shadowStorePath });
  }
  let admin: AdminServer;
  try {
    admin = await startAdmin(cp, cp.app.snapshot.config.admin);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    admin = await startAdmin(cp, { ...cp.app.snapshot.config.admin, port: 0 });
    moved.push(`admin port ${cp.app.snapshot.config.admin.port} is taken: the admin API took ${admin.url} instead (npx switchyard status, set, rollback ... find this demo; elsewhere pass --admin ${admin.url})`);
  }
  const proxy = cp.app.urls[0]!;
  const { announceDemo } = await import("./admin-client.ts");
  const unannounce = announceDemo(admin.url);
  process.once("exit", unannounce);
  process.stdout.write(
    moved.map((m) => `\nnote: ${m}`).join("") +
    `\nSwitchyard demo is running\n` +
      `  proxy    ${proxy}/   try: curl -i ${proxy}/api/1/ping\n` +
      `  legacy   ${backends[0]!.url}/   sample Flask-style backend\n` +
      `  new      ${backends[1]!.url}/   sample FastAPI-style backend\n` +
      `  admin    ${admin.url}/   the admin page (JSON: ${admin.url}/status)   try: curl -X PUT '${admin.url}/features/ping?enabled=true'\n` +
      `  config   ${DEMO_CONFIG} (edit it: changes apply without a restart)\n` +
      `  shadow   every GET is compared on both backends: ${admin.url}/shadow, or npx switchyard report --db ${shadowStorePath}\n` +
      `Access log follows (JSON lines). Ctrl+C stops.\n\n`,
  );
  return untilSignal(cp, admin, logger, backends);
}

function untilSignal(cp: ControlPlane, admin: AdminServer, logger: ReturnType<typeof createLogger>, backends: SampleBackend[]): Promise<number> {
  process.on("SIGHUP", () => {
    logger.info({ signal: "SIGHUP" }, "signal received: reloading config");
    void cp.reload("sighup");
  });
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        flushLogger(logger);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "signal received: shutting down");
      cp.close();
      void admin
        .close()
        .then(async () => {
          if (cp.cluster !== null) {
            const r = await cp.cluster.shutdown(cp.app.snapshot.config.shutdown.drain_timeout);
            logger.info({ drained: r.drained, cut: r.cut }, "workers stopped");
          }
        })
        .then(() => cp.app.shutdown())
        .then(() => Promise.all(backends.map((b) => b.close())))
        .then(() => {
          flushLogger(logger);
          resolve(0);
        });
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`switchyard: ${err.message}\nTry 'switchyard --help'.\n`);
      process.exitCode = 2;
      return;
    }
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === "EADDRINUSE" ? " (another process holds this port; change listeners[].port)" : e.code === "EACCES" ? " (ports below 1024 need privileges)" : "";
    process.stderr.write(`switchyard: ${e.message}${hint}\n`);
    process.exitCode = 1;
  },
);
