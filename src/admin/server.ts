// The admin API, on its own listener (loopback by default): status, feature toggles with the rollout guides'
// semantics (all_endpoints included), percents, mode, rollback and its undo, override clearing.
// Bearer-token auth on every path when a token is configured; JSON in and out; every change audited.
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "../config/schema.ts";
import { OverrideError, type ControlPlane } from "../control/control-plane.ts";
import { GuardError } from "../guard/guard.ts";
import type { OverrideValue } from "../control/overrides.ts";
import { normalizeIp } from "../proxy/client-ip.ts";
import { probeConcurrency, probeProblem } from "./probe.ts";
import { buildStats, buildStatus } from "./status.ts";
import { parseDuration } from "../config/units.ts";
import type { Report } from "../shadow/report/build.ts";
import { ReportRunner } from "../shadow/report/runner.ts";

const MAX_BODY = 64 * 1024;

export interface AdminServer {
  url: string;
  close(): Promise<void>;
}

/** A non-JSON answer (Prometheus text, the admin page). */
class Raw {
  readonly type: string;
  readonly text: string;
  constructor(type: string, text: string) {
    this.type = type;
    this.text = text;
  }
}

class HttpError extends Error {
  readonly status: number;
  readonly scheme: "Bearer" | "Basic";
  constructor(status: number, message: string, scheme: "Bearer" | "Basic" = "Bearer") {
    super(message);
    this.status = status;
    this.scheme = scheme;
  }
}

/** Bearer TOKEN, or Basic user:TOKEN (what a browser sends for the admin page). */
function credentials(header: string | undefined): { secret: string; user?: string } | null {
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return null;
  if (m[1]!.toLowerCase() === "bearer") return { secret: m[2]! };
  const decoded = Buffer.from(m[2]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? null : { user: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

function safeHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

/**
 * The report over the last `since` (default 1h, at most shadow.store.max_age) from the live store:
 * pending records written first, then built in the report worker (cached per window for a few seconds).
 */
async function shadowSummary(cp: ControlPlane, url: URL, reports: ReportRunner): Promise<Report> {
  const store = cp.app.shadowStore;
  if (store === null) throw new HttpError(404, "no shadow store: shadow is off, or the proxy was started without a store path");
  const sinceText = url.searchParams.get("since") ?? "1h";
  const asked = parseDuration(sinceText);
  if (asked === undefined) throw new HttpError(400, `since must be a duration such as 15m, 1h, 7d (got "${sinceText}")`);
  const feature = url.searchParams.get("feature") ?? undefined;
  await store.flush();
  return reports.get({ paths: [store.path], window: `${sinceText}|${feature ?? ""}` }, () => {
    const cfg = cp.app.snapshot.config;
    const ago = cfg.shadow.store.max_age > 0 ? Math.min(asked, cfg.shadow.store.max_age) : asked; // nothing older is kept
    const now = Date.now();
    const configuredPercent = Object.fromEntries([["none", cfg.shadow.percent], ...Object.entries(cfg.features).map(([n, f]) => [n, f.shadow?.percent ?? cfg.shadow.percent])]);
    return { since: now - ago, until: now + 1, feature, thresholds: cfg.shadow.report, noise: { relative: cfg.shadow.noise.relative, absolute: cfg.shadow.noise.absolute }, configuredPercent };
  });
}

let page: string | null = null;
const adminPage = () => (page ??= readFileSync(new URL("./page.html", import.meta.url), "utf8"));

export async function startAdmin(cp: ControlPlane, admin: Config["admin"]): Promise<AdminServer> {
  // The file's admin.token, else $SWITCHYARD_ADMIN_TOKEN: a token set anywhere is always required.
  const secret = cp.adminToken;
  const token = secret ? Buffer.from(secret) : null;
  const reports = new ReportRunner();
  const server = http.createServer((req, res) => {
    handle(cp, token, req, reports).then(
      (out) => (out instanceof Raw ? res.writeHead(200, { "content-type": out.type, "content-length": Buffer.byteLength(out.text), "cache-control": "no-store" }).end(out.text) : reply(res, out.status, out.body)),
      (err: unknown) => {
        const known = err instanceof HttpError || err instanceof OverrideError || err instanceof GuardError;
        if (!known) cp.app.logger.error({ err }, "admin API error");
        reply(res, known ? err.status : 500, { error: known ? err.message : "internal error (see the proxy log)" }, err instanceof HttpError ? err.scheme : "Bearer");
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(admin.port, admin.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
  cp.adminUrl = url;
  cp.app.logger.info({ admin: url, auth: token ? "bearer token" : "none (loopback only)" }, "admin API listening");
  return {
    url,
    close: async () => {
      await new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      });
      await reports.close();
    },
  };
}

function reply(res: http.ServerResponse, status: number, body: unknown, scheme: "Bearer" | "Basic" = "Bearer"): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  const headers: http.OutgoingHttpHeaders = { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" };
  if (status === 401) headers["www-authenticate"] = `${scheme} realm="switchyard-admin"`;
  res.writeHead(status, headers).end(text);
}

async function handle(cp: ControlPlane, token: Buffer | null, req: http.IncomingMessage, reports: ReportRunner): Promise<{ status: number; body: unknown } | Raw> {
  const url = new URL(req.url ?? "/", "http://admin");
  const isPage = req.method === "GET" && (url.pathname === "/" || url.pathname === "/ui");
  const creds = credentials(req.headers.authorization);
  const authorized = token === null || (creds !== null && safeEqual(Buffer.from(creds.secret), token));
  // Liveness and readiness probes (Kubernetes, the image's HEALTHCHECK) carry no secret: /healthz
  // answers them without the token, and tells them nothing but that the process serves.
  if (!authorized && req.method === "GET" && url.pathname === "/healthz") return { status: 200, body: { ok: true } };
  if (!authorized) {
    throw new HttpError(401, isPage ? "the admin page needs the admin token as the password (any user name)" : "missing or wrong bearer token (Authorization: Bearer <admin.token>)", isPage ? "Basic" : "Bearer");
  }
  // A browser on another site must not drive the admin API through the operator's browser (CSRF):
  // browsers send Origin / Sec-Fetch-Site on cross-origin requests; curl and the CLI send neither.
  const origin = req.headers.origin;
  if (req.headers["sec-fetch-site"] === "cross-site" || (origin !== undefined && origin !== "null" && safeHost(origin) !== req.headers.host) || origin === "null") {
    throw new HttpError(403, "cross-origin admin request refused (use the admin page itself, curl or the switchyard CLI)");
  }
  // Who, for the audit log: the caller may name itself (the CLI sends $USER, the page the Basic user name).
  const named = String(req.headers["x-switchyard-actor"] ?? creds?.user ?? "");
  const actor = /^[\w.@+-]{1,64}$/.exec(named)?.[0] ?? (token ? "token" : "anonymous");
  const who = `${actor}@${normalizeIp(req.socket.remoteAddress ?? "")}`;
  const path = url.pathname.replace(/^\/api\/1\/async(?=\/features\/)/, ""); // the deployment guide's runtime API path
  const method = req.method ?? "GET";
  const route = `${method} ${path}`;

  if (isPage) return new Raw("text/html; charset=utf-8", adminPage());
  if (route === "GET /status") return { status: 200, body: buildStatus(cp) };
  if (route === "GET /audit") return { status: 200, body: { entries: await cp.auditEntries(50) } };
  if (route === "GET /stats") return { status: 200, body: buildStats(cp) };
  if (route === "GET /metrics") {
    if (cp.cluster !== null) {
      const { contentType, text } = await cp.cluster.metricsText();
      return new Raw(contentType, text);
    }
    return new Raw(cp.app.metrics.registry.contentType, await cp.app.metrics.registry.metrics());
  }
  if (route === "GET /guard") return { status: 200, body: cp.guard.status() };
  const sm = /^\/features\/([^/]+)\/schedule\/(pause|resume|approve)$/.exec(path);
  if (sm && method === "POST") {
    const feature = decodeURIComponent(sm[1]!);
    const what = sm[2] as "pause" | "resume" | "approve";
    const state = cp.guard.control(feature, what);
    cp.app.logger.info({ audit: { who, action: `schedule ${what} ${feature}` } }, `admin change by ${who}: schedule ${what} ${feature}`);
    cp.remember({ who, action: `schedule ${what} ${feature}`, changes: [], ok: true });
    return { status: 200, body: { feature, schedule: what, state } };
  }
  if (route === "GET /shadow") return { status: 200, body: await shadowSummary(cp, url, reports) };
  if (route === "GET /healthz") return { status: 200, body: { ok: true, config_hash: cp.app.snapshot.hash } };
  if (route === "GET /overrides") return { status: 200, body: Object.fromEntries(cp.overrides) };
  if (route === "POST /reload") return { status: 200, body: await cp.reload("api") };
  if (route === "POST /probe") {
    const body = await readJson(req, ["backend", "path", "n", "method", "timeout_ms"]);
    const problem = probeProblem(body);
    if (problem !== null) throw new HttpError(400, problem);
    const target = cp.app.snapshot.backends[body.backend as "legacy" | "new"];
    const result = await probeConcurrency(target, { backend: body.backend as "legacy", path: body.path as string, n: body.n as number, method: (body.method as "GET") ?? "GET", timeoutMs: (body.timeout_ms as number) ?? 60_000 });
    cp.app.logger.info({ probe: result, who }, `concurrency probe of ${result.backend}: ${result.verdict}`);
    return { status: 200, body: result };
  }
  if (route === "POST /rollback") return change(cp, who, [{ key: "routing.kill_switch", value: true }], "rollback: everything to legacy");
  if (route === "POST /rollback/undo") {
    if (!cp.overrides.has("routing.kill_switch")) throw new HttpError(409, "no rollback override to undo (is routing.kill_switch set in the file?)");
    return clear(cp, who, ["routing.kill_switch"], "rollback undone");
  }
  if (route === "PUT /mode") {
    const body = await readJson(req, ["mode"]);
    const mode = body.mode ?? url.searchParams.get("mode");
    if (mode === null || mode === undefined) throw new HttpError(400, 'give the mode as JSON {"mode": "pilot"} or ?mode=pilot (disabled, pilot, mixed or full)');
    return change(cp, who, [{ key: "routing.mode", value: mode as OverrideValue }], "mode");
  }
  let m = /^\/features\/([^/]+)$/.exec(path);
  if (m && (method === "PUT" || method === "POST" || method === "PATCH")) {
    const name = featureKey(m[1]!);
    const body = await readJson(req, ["enabled", "percent", "target"]);
    const changes: { key: string; value: OverrideValue }[] = [];
    const enabled = body.enabled ?? queryBool(url, "enabled");
    const percent = body.percent ?? queryNumber(url, "percent");
    if (enabled !== undefined) changes.push({ key: `features.${name}.enabled`, value: enabled as OverrideValue });
    if (percent !== undefined) changes.push({ key: `features.${name}.percent`, value: percent as OverrideValue });
    if (body.target !== undefined) changes.push({ key: `features.${name}.target`, value: body.target as OverrideValue });
    if (changes.length === 0) throw new HttpError(400, "nothing to change: give enabled (true/false), percent (0-100) or target (legacy/new), as JSON or query parameters");
    return change(cp, who, changes, `feature ${m[1]}`);
  }
  if (m && method === "DELETE") {
    const name = featureKey(m[1]!);
    const keys = [...cp.overrides.keys()].filter((k) => k.startsWith(`features.${name}.`));
    if (keys.length === 0) throw new HttpError(404, `no runtime override on feature ${m[1]}`);
    return clear(cp, who, keys, `feature ${m[1]} back to the file`);
  }
  m = /^\/overrides\/(.+)$/.exec(path);
  if (m && method === "DELETE") return clear(cp, who, [decodeURIComponent(m[1]!)], "override cleared");
  throw new HttpError(404, `no such admin endpoint: ${route} (see GET / for the page, GET /status, /stats, /metrics, /audit, PUT /features/NAME, PUT /mode, POST /rollback, POST /rollback/undo, POST /reload, POST /probe, GET /shadow, GET /guard, POST /features/NAME/schedule/pause|resume|approve, DELETE /overrides/KEY)`);
}

async function change(cp: ControlPlane, who: string, changes: { key: string; value: OverrideValue }[], action: string) {
  const { record, before } = await cp.set(changes, who);
  const after = Object.fromEntries(changes.map((c) => [c.key, c.value]));
  cp.app.logger.info({ audit: { who, action, before, after }, config_hash: record.hash }, `admin change by ${who}: ${action}`);
  cp.remember({ who, action, before, after, changes: record.changes, ok: true });
  return { status: 200, body: { applied: after, before, config_hash: record.hash, changes: record.changes } };
}

async function clear(cp: ControlPlane, who: string, keys: string[], action: string) {
  const { record, before } = await cp.clear(keys, who);
  cp.app.logger.info({ audit: { who, action, before, after: "file value" }, config_hash: record.hash }, `admin change by ${who}: ${action}`);
  cp.remember({ who, action, before, after: "file value", changes: record.changes, ok: true });
  return { status: 200, body: { cleared: keys, before, config_hash: record.hash, changes: record.changes } };
}

/** "all_endpoints" (the deployment guide's name) and "*" address every feature. */
const featureKey = (name: string) => (name === "all_endpoints" ? "*" : decodeURIComponent(name));

function queryBool(url: URL, name: string): boolean | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new HttpError(400, `${name} must be true or false (got "${v}")`);
}

function queryNumber(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new HttpError(400, `${name} must be a number (got "${v}")`);
  return n;
}

async function readJson(req: http.IncomingMessage, fields: string[]): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, `admin request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  let body: Record<string, unknown>;
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    body = v as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, `body must be a JSON object (${(err as Error).message})`);
  }
  const unknown = Object.keys(body).filter((k) => !fields.includes(k));
  if (unknown.length > 0) throw new HttpError(400, `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; expected ${fields.join(", ")}`);
  return body;
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
