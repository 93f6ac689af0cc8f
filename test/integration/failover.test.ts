// Upstream resilience with real sockets and real processes: a backend killed, stopped and restarted
// under load, writes executed exactly once through every fault, ejection and recovery, the retry
// budget, and failover shown honestly (metrics, access log, decision header, /status).
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { parseConfigText } from "../../src/config/load.ts";
import { parseProm } from "../helpers/prom.ts";
import { closedPort, startBackend, startProxyWithConfig, waitFor, type TestBackend, type TestProxy } from "../helpers/servers.ts";
import { send } from "../helpers/client.ts";

const SCRIPT = new URL("../helpers/child-backend.ts", import.meta.url).pathname;

interface ChildBackend {
  url: string;
  port: number;
  proc: ChildProcess;
  /** "METHOD url" of every request it received whole. */
  executed: string[];
  exited: Promise<void>;
}

async function childBackend(name: string, port = 0): Promise<ChildBackend> {
  const proc = spawn(process.execPath, [SCRIPT, name, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  const executed: string[] = [];
  let buf = "";
  const ready = new Promise<number>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("READY ")) resolve(Number(line.slice(6)));
        else if (line.startsWith("EXEC ")) executed.push(line.slice(5));
      }
    });
    proc.once("exit", (code) => reject(new Error(`backend exited ${code}`)));
  });
  const p = await ready;
  return { url: `http://127.0.0.1:${p}`, port: p, proc, executed, exited: new Promise((r) => proc.once("exit", () => r())) };
}

let proxy: TestProxy | undefined;
const servers: { close(): Promise<void> }[] = [];
const procs: ChildProcess[] = [];
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  for (const p of procs.splice(0)) {
    p.kill("SIGCONT");
    p.kill("SIGKILL");
  }
  for (const s of servers.splice(0)) await s.close();
});

/** The passive rules most tests use: three failures in a row eject new for a second. */
const PASSIVE = "{ consecutive_failures: 3, ejection: 1s, max_ejection: 4s }";

/**
 * Everything to new (one feature over every path), with a legacy stamping backend beside; `health`
 * is new's health block.
 */
async function setup(newUrl: string, health = `{ passive: ${PASSIVE} }`, extra = ""): Promise<{ legacy: TestBackend; proxy: TestProxy }> {
  const legacy = await startBackend((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "legacy", url: req.url })));
  });
  servers.push(legacy);
  const yaml = `listeners: [{ host: 127.0.0.1, port: 0 }]
backends:
  legacy: { url: "${legacy.url}" }
  new:
    url: "${newUrl}"
    timeouts: { response_header: 400ms }
    health: ${health}
admin: { port: 0 }
routing:
  decision_header: true
features:
  everything:
    routes: ["/**"]
    target: new
${extra}`;
  const loaded = parseConfigText(yaml, "failover.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  proxy = await startProxyWithConfig(loaded.config);
  return { legacy, proxy };
}

const backendOf = (body: Buffer) => (JSON.parse(body.toString()) as { backend: string }).backend;

async function metrics(p: TestProxy): Promise<Map<string, number>> {
  return parseProm(await p.app.metrics.registry.metrics());
}

describe("a backend killed under load", () => {
  it("costs no idempotent request: connect failures and resets fail over, then the backend is ejected", async () => {
    const neu = await childBackend("new");
    procs.push(neu.proc);
    const { proxy: p } = await setup(neu.url);
    const pool = new Pool(p.url, { connections: 8 });
    const results: { status: number; backend: string }[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const res = await pool.request({ path: `/api/items/${results.length}`, method: "GET" });
        const body = Buffer.from(await res.body.arrayBuffer());
        results.push({ status: res.statusCode, backend: res.statusCode === 200 ? backendOf(body) : "-" });
      }
    };
    const running = Promise.all(Array.from({ length: 8 }, worker));
    await waitFor(() => results.length > 300, "traffic to new");
    neu.proc.kill("SIGKILL");
    await neu.exited;
    const killedAt = results.length;
    await waitFor(() => results.length > killedAt + 500, "traffic after the kill");
    stop = true;
    await running;
    await pool.close();
    const failed = results.filter((r) => r.status !== 200);
    console.log(`[failover] new SIGKILLed under 8 concurrent GETs: ${results.length} requests, ${failed.length} failed; after the kill ${results.slice(killedAt).filter((r) => r.backend === "legacy").length} answered by legacy`);
    expect(failed).toEqual([]);
    expect(results.slice(0, killedAt - 8).every((r) => r.backend === "new")).toBe(true);
    expect(results.slice(killedAt + 8).every((r) => r.backend === "legacy")).toBe(true);
    const m = await metrics(p);
    expect(m.get('switchyard_backend_healthy{backend="new"}')).toBe(0);
    expect(m.get('switchyard_backend_ejections_total{backend="new",reason="passive"}')).toBeGreaterThanOrEqual(1);
    // The attempts that failed count against new; then, ejected, new gets none until half-open.
    const errored = ["connect", "reset"].reduce((sum, kind) => sum + (m.get(`switchyard_upstream_errors_total{backend="new",kind="${kind}"}`) ?? 0), 0);
    expect(errored).toBeGreaterThanOrEqual(3);
    expect(m.get('switchyard_failovers_total{feature="everything",from="new",to="legacy",reason="ejected"}')).toBeGreaterThan(100);
    const logged = p.accessLogs().filter((l) => typeof l.failover === "string");
    expect(logged.length).toBeGreaterThan(100);
    expect(logged.every((l) => l.backend === "legacy" && /^new->legacy \((ejected|connect|reset)\)$/.test(String(l.failover)))).toBe(true);
  });
});

describe("writes through every fault", () => {
  /** A backend that misbehaves per path after reading the request: reset, hang, or (for /ok) answer. */
  async function faulty(): Promise<{ url: string; received: string[] }> {
    const received: string[] = [];
    const server = net.createServer((sock) => {
      let buf = "";
      sock.on("error", () => {});
      sock.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length - end - 4 < length) return; // wait for the whole body: then it is "executed"
        const line = /^(\S+) (\S+)/.exec(head)!;
        received.push(`${line[1]} ${line[2]}`);
        buf = "";
        if (line[2]!.includes("reset")) sock.resetAndDestroy();
        else if (line[2]!.includes("hang")) return;
        else sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
  }

  it("executes each POST and PUT at most once, fails over what was never sent, and GETs once per backend", async () => {
    const bad = await faulty();
    // Passive detection off: every request meets the fault itself.
    const { legacy, proxy: q } = await setup(bad.url, "{ passive: { consecutive_failures: 0 } }");
    const out: Record<string, number> = {};
    for (const method of ["POST", "PUT", "GET"]) {
      for (const fault of ["reset", "hang"]) {
        const res = await send(q.url, { method, path: `/${fault}/${method}`, body: method === "GET" ? undefined : "payload", headers: method === "GET" ? {} : { "content-length": 7 } });
        out[`${method} ${fault}`] = res.status;
      }
    }
    // Writes sent to a faulty new: never sent again (502 / 504); GETs failed over to legacy (200).
    expect(out).toEqual({ "POST reset": 502, "POST hang": 504, "PUT reset": 502, "PUT hang": 504, "GET reset": 200, "GET hang": 200 });
    const count = (list: string[], entry: string) => list.filter((e) => e === entry).length;
    for (const method of ["POST", "PUT", "GET"]) {
      for (const fault of ["reset", "hang"]) {
        const entry = `${method} /${fault}/${method}`;
        expect(count(bad.received, entry), entry).toBe(1);
        expect(legacy.seen.filter((s) => `${s.method} ${s.url}` === entry).length, `${entry} on legacy`).toBe(method === "GET" ? 1 : 0);
      }
    }
  });

  it("fails a POST over when nothing was sent (connect refused), exactly once", async () => {
    const port = await closedPort();
    const { legacy, proxy: p } = await setup(`http://127.0.0.1:${port}`);
    const res = await send(p.url, { method: "POST", path: "/pay/1", body: "payload", headers: { "content-length": 7 } });
    expect(res.status).toBe(200);
    expect(backendOf(res.body)).toBe("legacy");
    expect(res.headers["x-switchyard-decision"]).toMatch(/; failover new->legacy \(connect\)$/);
    expect(legacy.seen.filter((s) => s.url === "/pay/1")).toHaveLength(1);
  });
});

describe("a stopped backend (SIGSTOP)", () => {
  it("is ejected after the configured failures, later requests skip it at once, and it gets traffic back once it answers", async () => {
    const neu = await childBackend("new");
    procs.push(neu.proc);
    const { proxy: p } = await setup(neu.url);
    expect(backendOf((await send(p.url, { path: "/warm" })).body)).toBe("new");
    neu.proc.kill("SIGSTOP");
    const during: { status: number; backend: string }[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await send(p.url, { path: `/stopped/${i}` });
      during.push({ status: res.status, backend: backendOf(res.body) });
    }
    expect(during.every((r) => r.status === 200 && r.backend === "legacy")).toBe(true);
    const lines = p.accessLogs().filter((l) => String(l.path).startsWith("/stopped/"));
    // The first three waited for new's header timeout, then failed over; the rest never tried new.
    expect(lines.map((l) => String(l.failover).replace(/^new->legacy \((\w+)\)$/, "$1"))).toEqual(["timeout", "timeout", "timeout", "ejected", "ejected", "ejected", "ejected", "ejected"]);
    const status = p.app.health.status(p.app.snapshot.backends.new);
    expect(status).toMatchObject({ state: "ejected", ejections: 1 });
    expect(status.reason).toMatch(/^3 failed exchanges in a row \(last: timeout\); ejected for 1 s$/);

    // Back: after the ejection the backend is half-open, and its first good answer brings it back.
    neu.proc.kill("SIGCONT");
    await waitFor(() => p.app.health.available(p.app.snapshot.backends.new), "the ejection to end", 5000);
    const back = await send(p.url, { path: "/back" });
    expect(backendOf(back.body)).toBe("new");
    expect(p.app.health.status(p.app.snapshot.backends.new).state).toBe("healthy");
  });
});

describe("active health checks", () => {
  it("take a backend whose check fails out of rotation, and bring it back when it passes again", async () => {
    let healthy = true;
    const neu = await startBackend((req, res) => {
      req.resume();
      if (req.url === "/healthz") res.writeHead(healthy ? 200 : 503).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "new" }));
    });
    servers.push(neu);
    const { proxy: q } = await setup(neu.url, "{ active: { path: /healthz, interval: 100ms, timeout: 100ms, jitter: 0, unhealthy_threshold: 2, healthy_threshold: 2 } }");
    expect(backendOf((await send(q.url, { path: "/x" })).body)).toBe("new");
    healthy = false;
    await waitFor(() => !q.app.health.available(q.app.snapshot.backends.new), "the checks to fail");
    expect(backendOf((await send(q.url, { path: "/x" })).body)).toBe("legacy");
    expect(q.app.health.status(q.app.snapshot.backends.new)).toMatchObject({ state: "unhealthy", reason: "2 failed active checks in a row (last: GET /healthz answered 503)" });
    healthy = true;
    await waitFor(() => q.app.health.available(q.app.snapshot.backends.new), "the checks to pass");
    expect(backendOf((await send(q.url, { path: "/x" })).body)).toBe("new");
    expect(neu.seen.filter((s) => s.url === "/healthz" && s.headers["user-agent"] === "switchyard-health-check").length).toBeGreaterThanOrEqual(4);
  });
});

describe("the retry budget", () => {
  it("caps failovers after errors at budget_percent of requests over 10 s (plus the floor per second)", async () => {
    // new resets every request it reads; passive ejection off, so every request meets the fault.
    const resetting = net.createServer((s) => s.once("data", () => s.resetAndDestroy()));
    await new Promise<void>((r) => resetting.listen(0, "127.0.0.1", r));
    servers.push({ close: () => new Promise<void>((r) => resetting.close(() => r())) });
    const url = `http://127.0.0.1:${(resetting.address() as AddressInfo).port}`;
    const { proxy: q } = await setup(url, "{ passive: { consecutive_failures: 0 } }", "failover: { budget_percent: 20, min_per_second: 3 }\n");
    const started = Date.now();
    const statuses: number[] = [];
    for (let i = 0; i < 300; i++) statuses.push((await send(q.url, { path: `/r/${i}` })).status);
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    const ok = statuses.filter((s) => s === 200).length;
    const m = await metrics(q);
    console.log(`[failover] 300 GETs to a resetting backend in ${seconds - 1}-${seconds} s: ${ok} failed over (200), ${300 - ok} answered 502; budget refusals ${m.get("switchyard_failover_budget_exhausted_total")}`);
    expect(ok).toBe(m.get('switchyard_failovers_total{feature="everything",from="new",to="legacy",reason="reset"}'));
    expect(ok).toBeLessThanOrEqual(Math.ceil(0.2 * 300) + 3 * seconds);
    expect(ok).toBeGreaterThanOrEqual(Math.floor(0.2 * 300) - 3);
    expect(m.get("switchyard_failover_budget_exhausted_total")).toBe(300 - ok);
  });
});

describe("shadow comparisons and failover", () => {
  it("never compare a failed-over answer as if the chosen backend gave it", async () => {
    const port = await closedPort();
    const { proxy: p } = await setup(`http://127.0.0.1:${port}`, `{ passive: ${PASSIVE} }`, "shadow:\n  enabled: true\n  percent: 100\n");
    for (let i = 0; i < 6; i++) expect(backendOf((await send(p.url, { path: `/s/${i}` })).body)).toBe("legacy");
    await new Promise((r) => setTimeout(r, 200));
    const m = await metrics(p);
    // The first three were mirrored, then failed over: the primary's error is recorded, nothing compared.
    // The next three went to legacy at once (new ejected): not mirrored at all.
    expect(m.get('switchyard_shadow_requests_total{feature="everything",outcome="mirrored"}')).toBe(3);
    expect(m.get('switchyard_shadow_requests_total{feature="everything",outcome="primary_error"}')).toBe(3);
    expect(m.get('switchyard_shadow_requests_total{feature="everything",outcome="compared"}')).toBe(0);
  });
});

describe("WebSocket upgrades", () => {
  it("go to the other backend while theirs is out of rotation", async () => {
    const server = http.createServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "legacy" })));
    const wss = new WebSocketServer({ server });
    wss.on("connection", (sock) => sock.on("message", (m) => sock.send(`legacy: ${m.toString()}`)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push({ close: () => new Promise<void>((r) => { wss.close(); server.closeAllConnections(); server.close(() => r()); }) });
    const port = await closedPort();
    const loaded = parseConfigText(`listeners: [{ host: 127.0.0.1, port: 0 }]\nbackends:\n  legacy: { url: "http://127.0.0.1:${(server.address() as AddressInfo).port}" }\n  new: { url: "http://127.0.0.1:${port}", health: { passive: ${PASSIVE} } }\nadmin: { port: 0 }\nfeatures:\n  everything:\n    routes: ["/**"]\n    target: new\n`, "ws.yaml", {});
    if (!loaded.ok) throw new Error("config");
    proxy = await startProxyWithConfig(loaded.config);
    const p = proxy;
    for (let i = 0; i < 3; i++) await send(p.url, { path: "/eject" }); // three connect failures (failed over) eject new
    expect(p.app.health.available(p.app.snapshot.backends.new)).toBe(false);
    const ws = new WebSocket(`${p.url.replace("http", "ws")}/chat`);
    const answer = await new Promise<string>((resolve, reject) => {
      ws.once("open", () => ws.send("hello"));
      ws.once("message", (m) => resolve(m.toString()));
      ws.once("error", reject);
    });
    ws.close();
    expect(answer).toBe("legacy: hello");
  });
});

describe("health across a reload", () => {
  it("is kept for a backend whose address did not change, and starts fresh for one that moved", async () => {
    const port = await closedPort();
    const { legacy, proxy: p } = await setup(`http://127.0.0.1:${port}`);
    for (let i = 0; i < 3; i++) await send(p.url, { path: "/eject" });
    expect(p.app.health.status(p.app.snapshot.backends.new)).toMatchObject({ state: "ejected", ejections: 1 });
    // Another setting changes: new keeps its ejection.
    p.app.applyConfig({ ...p.app.snapshot.config, routing: { ...p.app.snapshot.config.routing, decision_header: false } });
    expect(p.app.health.status(p.app.snapshot.backends.new)).toMatchObject({ state: "ejected", ejections: 1 });
    expect(backendOf((await send(p.url, { path: "/after-reload" })).body)).toBe("legacy");
    // new moves to another address: what was known of the old one does not apply.
    const cfg = p.app.snapshot.config;
    p.app.applyConfig({ ...cfg, backends: { ...cfg.backends, new: { ...cfg.backends.new, url: legacy.url } } });
    expect(p.app.health.status(p.app.snapshot.backends.new).state).toBe("healthy");
  });
});
