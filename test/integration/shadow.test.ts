// Shadow traffic end to end: two real backends that differ in known ways, the proxy mirroring to the
// one that did not serve, the SQLite store, and `switchyard report` reading it back.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Report } from "../../src/shadow/report/build.ts";
import { json, send } from "../helpers/client.ts";
import { baseYaml, closeAfterEach, configDir, type Controlled, openControlled } from "../helpers/control.ts";
import { closedPort, startBackend, waitFor, type TestBackend } from "../helpers/servers.ts";
import { parseProm } from "../helpers/prom.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
let running: Controlled | undefined;
const servers: TestBackend[] = [];
closeAfterEach(() => running, () => (running = undefined), servers);

let clock = 0n;
/** A timestamp with microseconds, as Python's isoformat() writes: two answers never share one. */
const stamp = () => {
  const ns = process.hrtime.bigint();
  clock = ns > clock ? ns : clock + 1000n;
  return `${new Date(Number(clock / 1_000_000n) % 1e12 + 1.7e12).toISOString().slice(0, 19)}.${String(clock % 1_000_000n).padStart(6, "0")}Z`;
};

/** The legacy (Flask-like) and new (FastAPI-like) backends: the same API with known differences. */
function api(flavour: "legacy" | "new") {
  return startBackend((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url!, "http://x");
      const common = { generated_at: stamp(), request_id: randomUUID() };
      const send = (status: number, body: string) => res.writeHead(status, { "content-type": "application/json", date: new Date().toUTCString(), server: flavour }).end(body);
      if (url.pathname.startsWith("/api/users/")) {
        // The real difference: age is a string on legacy, a number on new.
        const id = url.pathname.split("/")[3];
        return send(200, JSON.stringify({ id, name: `user ${id}`, age: flavour === "legacy" ? "18" : 18, ...common }));
      }
      if (url.pathname === "/api/orders") {
        // Same data; key order and whitespace differ.
        const items = [{ sku: "a", qty: 1 }, { sku: "b", qty: 2 }];
        return send(200, flavour === "legacy" ? JSON.stringify({ items, total: 3, ...common }, null, 2) : JSON.stringify({ ...common, total: 3, items: items.map((i) => ({ qty: i.qty, sku: i.sku })) }));
      }
      if (url.pathname === "/api/archive") return send(flavour === "legacy" ? 404 : 410, JSON.stringify({ error: "gone", ...common }));
      if (url.pathname === "/api/login") {
        // Secrets in bodies that differ: they must never reach the store.
        return send(200, JSON.stringify({ ok: true, password: flavour === "legacy" ? "PW-SECRET-000" : "PW-SECRET-001", echo: Buffer.concat(chunks).length, ...common }));
      }
      return send(200, JSON.stringify({ path: url.pathname, ...common }));
    });
  });
}

const shadowYaml = (legacy: string, neu: string, store: string, extra = "") => `${baseYaml(legacy, neu)}shadow:
  enabled: true
  percent: 100
  max_per_second: 10000
  max_in_flight: 64
  timeout: 2s
  noise:
    percent: 50
  store:
    path: ${store}
    flush_interval: 100ms
  report:
    min_pairs: 50
features:
  users:
    routes: [/api/users/:id]
    target: legacy
  orders:
    routes: [/api/orders]
    target: legacy
  archive:
    routes: [/api/archive]
    target: legacy
  login:
    routes: [/api/login]
    target: legacy
    shadow:
      methods: [POST]
      allow_unsafe: true
  writes:
    routes: [/api/writes]
    target: legacy
${extra}`;

const cli = (...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 60_000 }, (err, stdout, stderr) => resolve({ status: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }));
  });

async function inParallel(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** Both API flavours and a proxy mirroring everything to new, storing in a fresh directory. */
async function setup() {
  const legacy = await api("legacy");
  const neu = await api("new");
  servers.push(legacy, neu);
  const dir = mkdtempSync(join(tmpdir(), "sy-shadow-"));
  const store = join(dir, "shadow.db");
  running = await openControlled(configDir("in-place", shadowYaml(legacy.url, neu.url, store)).file);
  return { legacy, neu, dir, store };
}

describe("shadow traffic", () => {
  it("reports exactly the real differences, treats order/whitespace as equal, learns timestamps and ids as noise", async () => {
    const { legacy, neu, dir, store } = await setup();
    if (!running) throw new Error("no proxy");
    const { url } = running;

    await inParallel(600, 8, async (i) => {
      const path = ["/api/users/7", "/api/orders", "/api/archive"][i % 3]!;
      const res = await send(url, { path, headers: { "x-user-id": `u${i}` } });
      expect(res.status).toBe(path === "/api/archive" ? 404 : 200); // the client always gets legacy's answer
      expect(res.headers.server).toBe("legacy");
    });
    // Every sampled request was mirrored to new with the shadow mark and the same correlation id.
    await waitFor(() => neu.seen.length >= 600, "the shadow requests");
    const shadowSeen = neu.seen.filter((r) => r.headers["x-switchyard-shadow"] === "1");
    expect(shadowSeen.length).toBe(600);
    const ids = new Set(legacy.seen.map((r) => r.headers["x-request-id"]));
    expect(shadowSeen.every((r) => ids.has(r.headers["x-request-id"]))).toBe(true);
    // Replays (noise learning) went to legacy, marked too.
    const replays = legacy.seen.filter((r) => r.headers["x-switchyard-shadow"] === "1").length;
    expect(replays).toBeGreaterThan(200);
    expect(replays).toBeLessThan(400);

    await waitFor(() => running!.logs.filter((l) => l.msg === "shadow compared").length === 600, "600 comparisons");
    const line = running.logs.find((l) => l.msg === "shadow compared" && l.feature === "users")!;
    expect(line).toMatchObject({ verdict: "mismatch", primary: { backend: "legacy", status: 200 }, shadow: { backend: "new", status: 200 } });
    expect(line.paths).toEqual(expect.arrayContaining(["type $.age"]));
    const m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get('switchyard_shadow_requests_total{feature="users",outcome="mirrored"}')).toBe(200);
    expect(m.get('switchyard_shadow_requests_total{feature="users",outcome="compared"}')).toBe(200);
    expect(m.get('switchyard_shadow_requests_total{feature="users",outcome="mismatched"}')).toBeGreaterThan(190);

    // The live summary in the admin API, then the report from the file after shutdown.
    const live = json(await send(running.admin.url, { path: "/shadow?since=1h" })) as unknown as Report;
    expect(live.features.map((f) => f.feature)).toEqual(["archive", "orders", "users"]);
    // The store as its worker measured it, in /status and `switchyard status`.
    const status = json(await send(running.admin.url, { path: "/status" })) as { shadow_store: { path: string; records: number; bytes: number; oldest: string; lost: { overflow: number } } };
    expect(status.shadow_store).toMatchObject({ path: store, records: 600, lost: { overflow: 0, failedWrites: 0 } });
    expect(status.shadow_store.bytes).toBeGreaterThan(0);
    expect(Date.parse(status.shadow_store.oldest)).toBeGreaterThan(Date.now() - 600_000);
    expect((await cli("status", "--admin", running.admin.url)).stdout).toMatch(new RegExp(`\nshadow store: ${store.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: [\\d.]+ MiB, 600 records since `));
    await running.close();
    running = undefined;

    const out = join(dir, "report.json");
    const r1 = await cli("report", "--db", store, "--out", out);
    expect(r1.stderr).toBe("");
    expect(r1.status).toBe(3); // users and archive FAIL their match-rate criterion
    const report = JSON.parse(readFileSync(out, "utf8")) as Report;
    const f = (name: string) => report.features.find((x) => x.feature === name)!;

    const users = f("users");
    expect(users.compared).toBe(200);
    expect(users.differences.map((d) => [d.path, d.kinds])).toEqual([["$.age", ["type"]]]);
    expect(users.differences[0]!.examples[0]).toMatchObject({ legacy: "18", new: 18 });
    expect(users.differences[0]!.examples).toHaveLength(1); // the same two values 200 times: one example, not three copies
    // No --since: the window is the last 24 h, shown from the first stored pair, not from 24 h back.
    expect(Date.parse(report.since)).toBeGreaterThan(Date.now() - 600_000);
    expect(users.differences[0]!.rate).toBe(1);
    expect(users.noise.map((d) => d.path).sort()).toEqual(["$.generated_at", "$.request_id"]);
    expect(users.match_rate).toBe(0);

    const orders = f("orders");
    expect(orders.differences).toEqual([]);
    expect(orders.match_rate).toBe(1);
    expect(orders.noise.map((d) => d.path).sort()).toEqual(["$.generated_at", "$.request_id"]);
    // Identical answers and no errors pass; the latency criteria depend on this machine's timing.
    expect(orders.kpis.filter((k) => !k.metric.startsWith("Response time")).map((k) => `${k.metric}: ${k.status}`)).toEqual([
      "Error rate (5xx, failures): PASS",
      "Success rate: PASS",
      "Timeout rate: PASS",
      "Identical responses (noise excluded): PASS",
    ]);

    const archive = f("archive");
    expect(archive.differences.map((d) => d.path)).toEqual(["status"]);
    expect(archive.status_mismatches).toBe(200);
    expect(archive.confusion).toEqual([{ legacy: "404", new: "410", count: 200 }]);

    // The success-criteria table is filled with measured values.
    for (const feature of [users, orders, archive]) {
      expect(feature.kpis).toHaveLength(7);
      for (const k of feature.kpis) {
        expect(k.actual, `${feature.feature} ${k.metric}`).not.toBe("n/a");
        expect(["PASS", "FAIL"]).toContain(k.status);
      }
      expect(feature.latency.mann_whitney).not.toBeNull();
      expect(feature.latency.hodges_lehmann_ms).not.toBeNull();
    }
    expect(users.kpis.find((k) => k.metric.startsWith("Identical"))).toMatchObject({ actual: "0.00 %", status: "FAIL" });
    expect(orders.kpis.find((k) => k.metric.startsWith("Error rate"))).toMatchObject({ actual: "0.00 %", status: "PASS" });

    // HTML and Markdown: self-contained, and they say the same things.
    const html = join(dir, "report.html");
    expect((await cli("report", "--db", store, "--out", html)).stdout).toMatch(/written to .*report\.html: .*users FAIL \(200 pairs, 0\.0 % identical\)/);
    const page = readFileSync(html, "utf8");
    expect(page).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)/); // no external anything
    expect(page).toContain("<svg");
    expect(page).toContain("$.age");
    // Two replicas' stores read as one (here the same pairs twice): every count doubles, nothing else moves.
    const copy = join(dir, "replica-2.db");
    copyFileSync(store, copy);
    const both = join(dir, "both.json");
    expect((await cli("report", "--db", store, "--db", copy, "--out", both)).stdout).toMatch(/users FAIL \(400 pairs, 0\.0 % identical\)/);
    const merged = JSON.parse(readFileSync(both, "utf8")) as Report;
    expect(merged.features.map((x) => [x.feature, x.compared, x.match_rate])).toEqual(report.features.map((x) => [x.feature, x.compared * 2, x.match_rate]));
    expect((await cli("report", "--db", store, "--db", join(dir, "missing.db"))).stderr).toMatch(/missing\.db: no shadow store there/);
    const md = await cli("report", "--db", store, "--feature", "orders");
    expect(md.stdout).toMatch(/^# Switchyard shadow comparison report\n[\s\S]*## orders: (PASS|FAIL)\n/);
    // The p95 change beside p50's and p99's.
    expect(typeof orders.latency.p95_change_percent).toBe("number");
    expect(md.stdout).toMatch(/\| p95 \| [\d.]+ ms \| [\d.]+ ms \| [+-]?[\d.]+ % \|/);
    expect(md.stdout).toMatch(/\| Identical responses \(noise excluded\) \| - \| >= 99 % \| 100\.00 % \| PASS \|/);
  });

  it("mirrors POST only where a feature opted in, and never stores secrets", async () => {
    const { legacy, neu, dir, store } = await setup();
    if (!running) throw new Error("no proxy");
    const secrets = { authorization: "Bearer TOKEN-SECRET-123", cookie: "session=COOKIE-SECRET-456" };
    for (let i = 0; i < 20; i++) {
      expect((await send(running.url, { method: "POST", path: "/api/writes", headers: { "content-type": "application/json", ...secrets }, body: '{"x":1}' })).status).toBe(200);
      expect((await send(running.url, { method: "POST", path: "/api/login?api_key=QUERY-SECRET-789", headers: { "content-type": "application/json", ...secrets }, body: '{"user":"a","password":"BODY-SECRET-321"}' })).status).toBe(200);
      expect((await send(running.url, { path: `/api/users/${i}?token=QUERY-SECRET-789`, headers: secrets })).status).toBe(200);
    }
    await waitFor(() => running!.logs.filter((l) => l.msg === "shadow compared").length === 40, "40 comparisons");
    // POST /api/writes (no opt-in) never reached new; the opted-in login did, with its body.
    expect(neu.seen.filter((r) => r.url === "/api/writes")).toEqual([]);
    const logins = neu.seen.filter((r) => r.url.startsWith("/api/login"));
    expect(logins).toHaveLength(20);
    expect(logins[0]!.headers["x-switchyard-shadow"]).toBe("1");
    expect(logins[0]!.headers["content-length"]).toBe(String('{"user":"a","password":"BODY-SECRET-321"}'.length));
    const m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get('switchyard_shadow_skipped_total{feature="writes",reason="method"}')).toBe(20);
    expect(m.get('switchyard_shadow_requests_total{feature="login",outcome="mirrored"}')).toBe(20);
    const loginLine = running.logs.find((l) => l.msg === "shadow compared" && l.feature === "login")!;
    expect(loginLine.paths).toContain("value $.password");
    const shadowLines = JSON.stringify(running.logs.filter((l) => l.msg === "shadow compared"));
    for (const secret of ["TOKEN-SECRET-123", "COOKIE-SECRET-456", "QUERY-SECRET-789", "BODY-SECRET-321", "PW-SECRET-000"]) expect(shadowLines.includes(secret), secret).toBe(false);

    await running.close();
    running = undefined;
    // The stored diff says the password differed, but not what it was.
    expect((await cli("report", "--db", store, "--out", join(dir, "r.json"))).stderr).toBe("");
    const report = JSON.parse(readFileSync(join(dir, "r.json"), "utf8")) as Report;
    const pw = report.features.find((f) => f.feature === "login")!.differences.find((d) => d.path === "$.password")!;
    expect(pw.examples[0]).toMatchObject({ legacy: "[redacted]", new: "[redacted]" });
    for (const file of readdirSync(dir).filter((n) => n.startsWith("shadow.db"))) {
      const bytes = readFileSync(join(dir, file)).toString("latin1");
      for (const secret of ["TOKEN-SECRET-123", "COOKIE-SECRET-456", "QUERY-SECRET-789", "BODY-SECRET-321", "PW-SECRET-000", "PW-SECRET-001"]) expect(bytes.includes(secret), `${secret} in ${file}`).toBe(false);
    }
    // The path is kept with its query parameter names only.
    expect(Buffer.concat(readdirSync(dir).filter((n) => n.startsWith("shadow.db")).map((n) => readFileSync(join(dir, n)))).toString("utf8")).toContain("/api/login?api_key=…");
  });

  it("a hung or dead shadow backend changes nothing for the client; in flight stays bounded, drops are counted", async () => {
    const legacy = await api("legacy");
    servers.push(legacy);
    const hung = await startBackend(() => {}); // accepts, never answers
    servers.push(hung);
    const dir = mkdtempSync(join(tmpdir(), "sy-shadow-"));
    const yaml = shadowYaml(legacy.url, hung.url, join(dir, "shadow.db")).replace("max_in_flight: 64", "max_in_flight: 4").replace("timeout: 2s", "timeout: 300ms").replace("percent: 50", "percent: 0");
    running = await openControlled(configDir("in-place", yaml).file);
    let maxInFlight = 0;
    const probe = setInterval(() => {
      maxInFlight = Math.max(maxInFlight, running!.cp.app.shadow.inFlight("new"));
    }, 1);
    await inParallel(100, 10, async (i) => {
      const res = await send(running!.url, { path: `/api/users/${i}` });
      expect(res.status).toBe(200);
      expect(json(res).age).toBe("18");
    });
    clearInterval(probe);
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(4); // never more than max_in_flight, however many were sampled
    const m1 = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m1.get('switchyard_shadow_in_flight{backend="new"}')).toBeLessThanOrEqual(4);
    expect(m1.get('switchyard_shadow_skipped_total{feature="users",reason="queue_full"}')).toBeGreaterThan(50);
    const mirrored = m1.get('switchyard_shadow_requests_total{feature="users",outcome="mirrored"}')!;
    expect(mirrored + m1.get('switchyard_shadow_skipped_total{feature="users",reason="queue_full"}')!).toBe(100);
    await waitFor(() => running!.logs.filter((l) => l.msg === "shadow compared").length === mirrored, "the shadow timeouts");
    expect(running.logs.find((l) => l.msg === "shadow compared")).toMatchObject({ verdict: "shadow_error", shadow: { error: "timeout after 300 ms" } });
    const m2 = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m2.get('switchyard_shadow_in_flight{backend="new"}')).toBe(0);
    expect(m2.get('switchyard_shadow_requests_total{feature="users",outcome="shadow_error"}')).toBe(mirrored);
    await running.close();

    // Dead (connection refused): errors counted, clients unaffected.
    const dead = `http://127.0.0.1:${await closedPort()}`;
    running = await openControlled(configDir("in-place", shadowYaml(legacy.url, dead, join(dir, "dead.db"))).file);
    await inParallel(30, 5, async (i) => {
      expect((await send(running!.url, { path: `/api/users/${i}` })).status).toBe(200);
    });
    await waitFor(() => running!.logs.filter((l) => l.msg === "shadow compared").length === 30, "30 shadow errors");
    expect(running.logs.filter((l) => l.msg === "shadow compared").every((l) => l.verdict === "shadow_error" && /CONNECT_REFUSED|ECONNREFUSED/.test(String((l.shadow as { error: string }).error)))).toBe(true);
  });
});

describe("shadow.log_pairs", () => {
  /** Two backends answering the same (match) or not (mismatch); 20 mirrored GETs; the log lines and the counts. */
  async function pairs(logPairs: string, differ: boolean) {
    const answer = (name: string) =>
      startBackend((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, who: differ ? name : "same" }));
      });
    const legacy = await answer("legacy");
    const neu = await answer("new");
    servers.push(legacy, neu);
    const store = join(mkdtempSync(join(tmpdir(), "sy-shadow-log-")), "shadow.db");
    const yaml = `${baseYaml(legacy.url, neu.url)}shadow:\n  enabled: true\n  percent: 100\n${logPairs ? `  log_pairs: ${logPairs}\n` : ""}  noise:\n    percent: 0\n  store:\n    path: ${store}\n`;
    running = await openControlled(configDir("in-place", yaml).file);
    for (let i = 0; i < 20; i++) expect((await send(running.url, { path: `/x/${i}` })).status).toBe(200);
    const outcome = differ ? "mismatched" : "matched";
    let m = new Map<string, number>();
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && m.get(`switchyard_shadow_requests_total{feature="none",outcome="${outcome}"}`) !== 20; await new Promise((r) => setTimeout(r, 50))) {
      m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    }
    expect(m.get(`switchyard_shadow_requests_total{feature="none",outcome="${outcome}"}`)).toBe(20);
    const lines = running.logs.filter((l) => l.msg === "shadow compared").length;
    await running.close();
    running = undefined;
    return lines;
  }

  it("all logs every pair; differences (default) skips matches but logs mismatches; none logs no pair, counts all", async () => {
    expect(await pairs("all", false)).toBe(20);
    expect(await pairs("differences", false)).toBe(0);
    expect(await pairs("", false)).toBe(0); // the default
    expect(await pairs("differences", true)).toBe(20);
    expect(await pairs("none", true)).toBe(0);
  });
});

describe("shadow.compare.headers", () => {
  it("compares the headers named (any case, any length), and no other: a differing header left out is no difference", async () => {
    const answer = (version: string, server: string) =>
      startBackend((req, res) => {
        req.resume();
        res.writeHead(200, { "Content-Type": "application/json", "X-Api-Version": version, "X-Served-By-Very-Long-Header-Name-Here": server, Server: server }).end('{"ok":true}');
      });
    const legacy = await answer("1", "flask");
    const neu = await answer("2", "uvicorn");
    servers.push(legacy, neu);
    const store = join(mkdtempSync(join(tmpdir(), "sy-shadow-headers-")), "shadow.db");
    const yaml = `${baseYaml(legacy.url, neu.url)}shadow:\n  enabled: true\n  percent: 100\n  noise:\n    percent: 0\n  compare:\n    headers: [Content-Type, X-API-Version]\n  store:\n    path: ${store}\n`;
    running = await openControlled(configDir("in-place", yaml).file);
    for (let i = 0; i < 5; i++) expect((await send(running.url, { path: `/h/${i}` })).status).toBe(200);
    await waitFor(() => running!.logs.filter((l) => l.msg === "shadow compared").length >= 5, "the comparisons");
    const lines = running.logs.filter((l) => l.msg === "shadow compared");
    expect(lines.map((l) => l.paths)).toEqual(Array.from({ length: 5 }, () => ["header headers.x-api-version"]));
    expect(lines.every((l) => l.verdict === "mismatch")).toBe(true);
  });
});
