// The CLI side of the admin API: `switchyard status | set | mode | rollback | unset` talk to a running
// proxy. Where it is: --admin URL, else $SWITCHYARD_ADMIN_URL, else the admin listener of -c FILE,
// else a running `switchyard demo` of this user (it says where its admin API is in the temp
// directory), else http://127.0.0.1:9901. The token: $SWITCHYARD_ADMIN_TOKEN, else admin.token of -c FILE.
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir, userInfo } from "node:os";
import { requestOnce } from "../forward/undici.ts";
import { loadConfigFile } from "../config/load.ts";
import { DEFAULT_ADMIN_PORT } from "../config/defaults.ts";
import type { ReplicaView } from "../control/control-plane.ts";

export interface AdminTarget {
  url: string;
  token: string | undefined;
}

export class AdminCallError extends Error {}

export function resolveAdmin(opts: { admin?: string; config?: string }, env: NodeJS.ProcessEnv): AdminTarget {
  let url = opts.admin ?? (env.SWITCHYARD_ADMIN_URL || undefined);
  let token = env.SWITCHYARD_ADMIN_TOKEN || undefined;
  if (opts.config && (!url || !token)) {
    const result = loadConfigFile(opts.config, env);
    if (!result.ok) throw new AdminCallError(`${opts.config}: ${result.errors.map((e) => e.format()).join("\n")}`);
    const a = result.config.admin;
    const host = a.host === "0.0.0.0" ? "127.0.0.1" : a.host === "::" ? "[::1]" : a.host.includes(":") ? `[${a.host}]` : a.host;
    url ??= `http://${host}:${a.port}`;
    token ??= a.token || undefined;
  }
  url ??= runningDemo() ?? `http://127.0.0.1:${DEFAULT_ADMIN_PORT}`;
  if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new AdminCallError(`admin URL must look like http://127.0.0.1:9901, got "${url}"`);
  return { url: url.replace(/\/$/, ""), token };
}

/** One admin call; resolves to the parsed JSON body, or throws AdminCallError with the server's words. */
export async function callAdmin(target: AdminTarget, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { accept: "application/json", "x-switchyard-actor": actor() };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await requestOnce(`${target.url}${path}`, { method: method as "GET", headers, body: body === undefined ? undefined : JSON.stringify(body), timeoutMs });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === "ECONNREFUSED" ? " (is the proxy running? pass --admin URL or -c FILE)" : "";
    throw new AdminCallError(`cannot reach the admin API at ${target.url}: ${(err as Error).message}${hint}`);
  }
  const text = res.text;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new AdminCallError(`${method} ${target.url}${path}: HTTP ${res.statusCode}, not JSON: ${text.slice(0, 200)}`);
  }
  if (res.statusCode >= 400) {
    const hint = res.statusCode === 401 ? " (set SWITCHYARD_ADMIN_TOKEN)" : "";
    throw new AdminCallError(`${method} ${path}: HTTP ${res.statusCode}: ${String(parsed.error ?? text)}${hint}`);
  }
  return parsed;
}

function actor(): string {
  try {
    return userInfo().username.replace(/[^\w.@+-]/g, "").slice(0, 64) || "cli";
  } catch {
    return "cli";
  }
}

type Sourced = { value: unknown; source: string; file_value?: unknown; set_by?: string; set_at?: string };

const show = (v: unknown): string => (typeof v === "object" && v !== null && "percent" in v ? `${(v as { percent: number }).percent}%` : String(v));
const from = (s: Sourced): string => (s.source === "override" ? ` (override by ${s.set_by} at ${s.set_at}; file: ${show(s.file_value)})` : "");

/** GET /status in words. */
export function formatStatus(s: Record<string, unknown>): string {
  const config = s.config as { file: string; hash: string; state_file: string; last_load: { ok: boolean; at: string; trigger: string; errors: string[] }; reloads: { ok: number; failed: number } };
  const mode = s.mode as Sourced;
  const kill = s.kill_switch as Sourced;
  const lines = [
    `switchyard ${String(s.version)}, up ${String(s.uptime_seconds)} s, config ${config.hash}`,
    `config file  ${config.file} (overrides in ${config.state_file})`,
    `last load    ${config.last_load.ok ? "ok" : "FAILED"} at ${config.last_load.at} (${config.last_load.trigger}); reloads ok ${config.reloads.ok}, failed ${config.reloads.failed}`,
    ...config.last_load.errors.map((e) => `  ${e}`),
    `mode         ${show(mode.value)}${from(mode)}`,
    `kill switch  ${kill.value ? "ON: everything goes to legacy" : "off"}${from(kill)}`,
    "features:",
  ];
  const features = s.features as Record<string, { enabled: Sourced; target: Sourced }>;
  const width = Math.max(8, ...Object.keys(features).map((n) => n.length));
  for (const [name, f] of Object.entries(features)) {
    lines.push(`  ${name.padEnd(width)}  ${f.enabled.value ? "enabled " : "disabled"}${from(f.enabled)}  -> ${show(f.target.value)}${from(f.target)}`);
  }
  if (Object.keys(features).length === 0) lines.push("  (none)");
  const guard = (s.guard ?? {}) as Record<string, { percent: number; last_evaluation: { breaches: string[]; judged: boolean } | null; schedule: { next: number | null; paused: boolean; awaiting_approval: boolean } | null }>;
  if (Object.keys(guard).length > 0) {
    const src = s.guard_source as { from: string; up: boolean; error: string | null } | undefined;
    lines.push(`guard (numbers from ${src?.from ?? "switchyard windows"}):`);
    if (src && !src.up) lines.push(`  HOLDING STILL: ${src.error}`);
    for (const [name, g] of Object.entries(guard)) {
      const e = g.last_evaluation;
      const health = e === null ? "not evaluated yet" : e.breaches.length > 0 ? `BREACHING: ${e.breaches.join("; ")}` : e.judged ? "within its rules" : "too little traffic to judge";
      const sched = g.schedule ? `; schedule ${g.schedule.paused ? "PAUSED" : g.schedule.awaiting_approval ? "waiting for approval" : "running"}, next ${g.schedule.next ?? "none (last step)"}` : "";
      lines.push(`  ${name.padEnd(width)}  at ${g.percent}%: ${health}${sched}`);
    }
  }
  const store = s.shadow_store as { path: string; bytes: number | null; records: number | null; oldest: string | null; max_size_holds_hours: number | null; lost: { overflow: number; failedWrites: number } } | null | undefined;
  if (store) {
    const size = store.bytes === null ? "size not measured yet" : `${(store.bytes / 1048576).toFixed(1)} MiB, ${store.records ?? 0} records${store.oldest ? ` since ${store.oldest}` : ""}`;
    const holds = store.max_size_holds_hours === null ? "" : `; at this rate max_size holds ~${store.max_size_holds_hours} h`;
    const lost = store.lost.overflow + store.lost.failedWrites > 0 ? `; LOST ${store.lost.overflow} (buffer full) + ${store.lost.failedWrites} (failed writes)` : "";
    lines.push(`shadow store: ${store.path}: ${size}${holds}${lost}`);
  }
  lines.push("backends:");
  for (const [name, b] of Object.entries(s.backends as Record<string, { url: string; state: string; last_minute: { requests: number; errors: number }; health: { state: string; reason: string | null; ejected_until: string | null }; pool: { connected: number; running: number; pending: number } }>)) {
    const rotation = b.health.state === "healthy" ? "in rotation" : `${b.health.state.toUpperCase().replace("_", "-")}${b.health.ejected_until ? ` until ${b.health.ejected_until}` : ""}: ${b.health.reason}`;
    lines.push(`  ${name.padEnd(width)}  ${b.url}  ${rotation}; ${b.state} (last minute: ${b.last_minute.requests} requests, ${b.last_minute.errors} errors); connections ${b.pool.connected}, running ${b.pool.running}, queued ${b.pool.pending}`);
  }
  const cs = s.control_store as { kind: string; url?: string; connected?: boolean; version?: number; error?: string | null; replica?: string; leader?: boolean; replicas?: ReplicaView[]; config_hashes_differ?: boolean } | undefined;
  if (cs?.kind === "redis") {
    lines.push(`control store: ${cs.url} version ${cs.version}, ${cs.connected ? "connected" : `UNREACHABLE${cs.error ? ` (${cs.error})` : ""}: serving the last state, changes refused`}`);
    lines.push(`fleet: ${cs.replicas?.length ?? 0} replicas heard from; this one ${cs.replica}${cs.leader ? " (leader: runs the guard)" : ""}${cs.config_hashes_differ ? "; WARNING: replicas run different configs" : ""}`);
    for (const r of cs.replicas ?? []) lines.push(`  ${r.id}  ${[...r.listeners, r.admin && `admin ${r.admin}`].filter(Boolean).join(" ")}  config file ${r.config_hash}, state version ${r.version}${r.leader ? ", leader" : ""}, seen ${r.last_seen_ms_ago} ms ago`);
  }
  const workers = s.workers as { id: number; pid: number | null; up: boolean; config_hash: string | null; uptime_seconds: number | null; restarts: number }[] | null | undefined;
  if (workers) {
    lines.push(`workers: ${workers.filter((w) => w.up).length} of ${workers.length} up`);
    for (const w of workers) {
      const state = w.up ? `up ${w.uptime_seconds} s, pid ${w.pid}, config ${w.config_hash}${w.config_hash !== config.hash ? " (BEHIND)" : ""}` : "DOWN, restarting";
      lines.push(`  worker ${w.id}  ${state}${w.restarts > 0 ? `; restarted ${w.restarts} time${w.restarts === 1 ? "" : "s"}` : ""}`);
    }
  }
  return lines.join("\n");
}

// A running demo leaves a note in the temp directory (switchyard-demo-<uid>-<pid>.json), so that
// `npx switchyard status` finds it even when its admin port had to move.
const DEMO_NOTE = /^switchyard-demo-(\d+)-(\d+)\.json$/;

/** Say where this demo's admin API is; returns the function that takes the note back. */
export function announceDemo(admin: string): () => void {
  const file = join(tmpdir(), `switchyard-demo-${process.getuid?.() ?? 0}-${process.pid}.json`);
  writeFileSync(file, JSON.stringify({ admin, pid: process.pid }));
  return () => rmSync(file, { force: true });
}

/** The admin URL of this user's one running demo; undefined when none runs; an error when several do. */
export function runningDemo(): string | undefined {
  const uid = String(process.getuid?.() ?? 0);
  const found: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return undefined;
  }
  for (const name of names) {
    const m = DEMO_NOTE.exec(name);
    if (!m || m[1] !== uid) continue;
    try {
      process.kill(Number(m[2]), 0);
      found.push((JSON.parse(readFileSync(join(tmpdir(), name), "utf8")) as { admin: string }).admin);
    } catch {
      // A demo that died without taking its note back, or a note being written: not running.
    }
  }
  if (found.length > 1) throw new AdminCallError(`${found.length} switchyard demos are running (admin ${found.join(", ")}): pass --admin URL to choose one`);
  return found[0];
}
