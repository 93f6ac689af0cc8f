// `workers: 2` for real: the CLI's primary forks two workers sharing the listener. A change made
// through the admin API is seen by requests served by both; /metrics sums them; /stats merges their
// windows; a killed worker comes back with the current snapshot; SIGTERM drains every worker.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { send, json } from "../helpers/client.ts";
import { parseProm } from "../helpers/prom.ts";
import { failingPair, startBackend, stampingBackends, waitFor, type TestBackend } from "../helpers/servers.ts";

interface Running {
  child: ChildProcess;
  url: string;
  admin: string;
  lines: Record<string, unknown>[];
  exit: Promise<number | null>;
}

async function startWorkers(legacy: string, neu: string, extra = ""): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-workers-"));
  const file = join(dir, "switchyard.yaml");
  writeFileSync(
    file,
    `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${legacy}\n  new:\n    url: ${neu}\nadmin:\n  port: 0\n` +
      `features:\n  root:\n    routes: [/**]\n    target: legacy\nshutdown:\n  drain_timeout: 5s\n${extra}`,
  );
  const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, "start", "-c", file, "--workers", "2", "--state-file", join(dir, "state.json")], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SWITCHYARD_STATE_DIR: dir } });
  const lines = jsonLines(child);
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await waitFor(() => lines.some((l) => l.msg === "admin API listening") || child.exitCode !== null, "the primary and its admin API", 15_000);
  const started = lines.find((l) => l.msg === "switchyard started" && l.workers === 2);
  const adminLine = lines.find((l) => l.msg === "admin API listening");
  if (!started || !adminLine) throw new Error(`did not start: ${JSON.stringify(lines)}`);
  return { child, url: (started.listeners as string[])[0]!, admin: adminLine.admin as string, lines, exit };
}

/** The child's stdout as parsed JSON lines, as they come; a line that is not whole JSON (torn between workers) throws. */
function jsonLines(child: ChildProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  let rest = "";
  child.stdout!.on("data", (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split("\n");
    rest = parts.pop()!;
    for (const p of parts) lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  return lines;
}

/** n requests, each on its own connection, `concurrency` at a time: connections land on both workers. */
async function burst(url: string, n: number, concurrency = 8, path = "/x"): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => send(url, { path })));
    for (const r of batch) {
      expect(r.status).toBe(200);
      out.push((json(r) as { backend: string }).backend);
    }
  }
  return out;
}

const accessLines = (r: Running) => r.lines.filter((l) => l.msg === "request");
const sumOf = (m: Map<string, number>, prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);

describe("workers: 2", () => {
  let backends: Awaited<ReturnType<typeof stampingBackends>>;
  let run: Running;

  beforeAll(async () => {
    backends = await stampingBackends();
    run = await startWorkers(backends.legacy.url, backends.new.url);
  });
  afterAll(async () => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    await backends.close();
  });

  it("serves on both workers; an admin change is seen at once by both; metrics and windows cover both", async () => {
    expect(await burst(run.url, 60)).toEqual(Array(60).fill("legacy"));
    await waitFor(() => accessLines(run).length >= 60, "60 access lines");
    expect(new Set(accessLines(run).map((l) => l.worker))).toEqual(new Set([1, 2]));

    // The admin call answers once both workers run the change: the very next requests, on either worker, go to new.
    const put = await send(run.admin, { method: "PUT", path: "/features/root", headers: { "content-type": "application/json" }, body: JSON.stringify({ target: "new" }) });
    expect(put.status).toBe(200);
    const after = accessLines(run).length;
    expect(await burst(run.url, 60)).toEqual(Array(60).fill("new"));
    await waitFor(() => accessLines(run).length >= after + 60, "60 more access lines");
    const later = accessLines(run).slice(after);
    expect(new Set(later.map((l) => l.worker))).toEqual(new Set([1, 2]));
    expect(later.every((l) => l.backend === "new")).toBe(true);

    // /metrics: the workers' counters summed (each worker counted only its own share).
    const metrics = parseProm((await send(run.admin, { path: "/metrics" })).body.toString());
    expect(sumOf(metrics, 'switchyard_requests_total{backend="legacy"')).toBe(60);
    expect(sumOf(metrics, 'switchyard_requests_total{backend="new"')).toBe(60);
    expect(metrics.get('switchyard_workers{state="up"}')).toBe(2);
    expect(metrics.get('switchyard_feature_new_percent{feature="root"}')).toBe(100);

    // /stats (and the guard) run on the workers' windows merged in the primary, reported each second.
    type Stats = { features: Record<string, Record<string, Record<string, { requests: number }>>> };
    const counts = async () => {
      const f = (json(await send(run.admin, { path: "/stats" })) as Stats).features.root;
      return [f?.legacy?.["1m"]?.requests, f?.new?.["1m"]?.requests];
    };
    let seen = await counts();
    for (const deadline = Date.now() + 15_000; Date.now() < deadline && !(seen[0] === 60 && seen[1] === 60); await new Promise((r) => setTimeout(r, 100))) seen = await counts();
    expect(seen).toEqual([60, 60]);

    const status = json(await send(run.admin, { path: "/status" })) as { config: { hash: string }; workers: { id: number; up: boolean; config_hash: string; pid: number }[]; listeners: string[] };
    expect(status.workers.map((w) => [w.id, w.up, w.config_hash])).toEqual([
      [1, true, status.config.hash],
      [2, true, status.config.hash],
    ]);
    expect(status.listeners).toEqual([run.url]);
    const propagation = (json(await send(run.admin, { path: "/status" })) as { workers_propagation_ms: number }).workers_propagation_ms;
    expect(propagation).toBeGreaterThan(0);
    console.log(`[workers] the admin change reached both workers ${propagation} ms after the primary sent it`);
    // `switchyard status` says the same in words.
    const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
    const out = spawnSync(process.execPath, [cli, "status", "--admin", run.admin], { encoding: "utf8" });
    expect(out.status).toBe(0);
    expect(out.stdout).toContain("workers: 2 of 2 up\n");
    expect(out.stdout).toMatch(new RegExp(`  worker 1  up \\d+ s, pid \\d+, config ${status.config.hash}\n  worker 2  up \\d+ s, pid \\d+, config ${status.config.hash}`));
  });

  it("restarts a killed worker with the current snapshot, counts and logs it, and keeps serving", async () => {
    const before = json(await send(run.admin, { path: "/status" })) as { workers: { id: number; pid: number }[] };
    const victim = before.workers[0]!;
    process.kill(victim.pid, "SIGKILL");
    await waitFor(() => run.lines.some((l) => l.msg === `worker 1 exited unexpectedly; restarting in 100 ms`), "the crash log line");
    let status = before as { workers: { id: number; pid: number; up: boolean; restarts: number }[] };
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      status = json(await send(run.admin, { path: "/status" })) as typeof status;
      if (status.workers[0]!.up) break;
    }
    expect(status.workers[0]).toMatchObject({ id: 1, up: true, restarts: 1 });
    expect(status.workers[0]!.pid).not.toBe(victim.pid);
    // The new worker runs the override made before the crash; every request is still answered.
    const from = accessLines(run).length;
    expect(await burst(run.url, 40)).toEqual(Array(40).fill("new"));
    await waitFor(() => accessLines(run).length >= from + 40, "40 access lines");
    expect(new Set(accessLines(run).slice(from).map((l) => l.worker))).toEqual(new Set([1, 2]));
    const metrics = parseProm((await send(run.admin, { path: "/metrics" })).body.toString());
    expect(metrics.get("switchyard_worker_restarts_total")).toBe(1);
  });
});

describe("workers: 2 shutdown", () => {
  let slow: TestBackend;
  beforeAll(async () => {
    slow = await startBackend((req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "legacy" })), 600);
    });
  });
  afterAll(() => slow.close());

  it("SIGTERM drains every worker: requests in flight on both finish, the primary exits 0", async () => {
    const run = await startWorkers(slow.url, slow.url);
    const inflight = Array.from({ length: 12 }, () => send(run.url, { path: "/slow" }));
    await waitFor(() => slow.seen.length === 12, "12 requests at the backend");
    run.child.kill("SIGTERM");
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    expect(await run.exit).toBe(0);
    const served = run.lines.filter((l) => l.msg === "request");
    expect(served).toHaveLength(12);
    expect(new Set(served.map((l) => l.worker))).toEqual(new Set([1, 2])); // both had some in flight
    const workersThatDrained = run.lines.filter((l) => l.msg === "shutdown: done" && l.worker !== undefined);
    expect(workersThatDrained.map((l) => [l.worker, l.drained, l.cut]).sort()).toEqual([
      [1, true, 0],
      [2, true, 0],
    ]);
    expect(run.lines.some((l) => l.msg === "workers stopped" && l.drained === true)).toBe(true);
  });
});

describe("workers: 2 with shadow traffic", () => {
  let backends: Awaited<ReturnType<typeof stampingBackends>>;
  beforeAll(async () => {
    backends = await stampingBackends();
  });
  afterAll(() => backends.close());

  it("pairs compared in both workers land in the primary's one store; the comparison windows merge", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-workers-shadow-"));
    const store = join(dir, "shadow.db");
    const run = await startWorkers(backends.legacy.url, backends.new.url, `shadow:\n  enabled: true\n  percent: 100\n  store:\n    path: ${store}\n    flush_interval: 100ms\n`);
    try {
      await burst(run.url, 40);
      await waitFor(() => run.lines.filter((l) => l.msg === "shadow compared").length === 40, "40 comparisons", 15_000);
      expect(new Set(run.lines.filter((l) => l.msg === "shadow compared").map((l) => l.worker))).toEqual(new Set([1, 2]));
      // The stamping backends differ in one field: every pair is compared once and lands in the primary's store.
      type Live = { features: { feature: string; compared: number }[] };
      let report: Live = { features: [] };
      for (const deadline = Date.now() + 15_000; Date.now() < deadline && report.features[0]?.compared !== 40; await new Promise((r) => setTimeout(r, 100))) {
        report = json(await send(run.admin, { path: "/shadow?since=1h" })) as unknown as Live;
      }
      expect(report.features.map((f) => [f.feature, f.compared])).toEqual([["root", 40]]);
      const status = json(await send(run.admin, { path: "/status" })) as { shadow_store: { path: string; records: number } };
      expect(status.shadow_store.path).toBe(store);
      const m = parseProm((await send(run.admin, { path: "/metrics" })).body.toString());
      expect(m.get('switchyard_shadow_requests_total{feature="root",outcome="compared"}')).toBe(40);
    } finally {
      run.child.kill("SIGTERM");
      await run.exit;
    }
  });
});

describe("workers: 2 that cannot start", () => {
  it("a listener that cannot bind: exit 1 with the worker's own reason and the hint", async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), "switchyard-workers-busy-"));
    const file = join(dir, "switchyard.yaml");
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: ${port}\nbackends:\n  legacy:\n    url: http://127.0.0.1:1\n  new:\n    url: http://127.0.0.1:2\nadmin:\n  port: 0\n`);
    const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
    const child = spawn(process.execPath, [cli, "start", "-c", file, "--workers", "2", "--state-file", join(dir, "state.json")], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout!.resume();
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    holder.close();
    expect(code).toBe(1);
    expect(stderr).toMatch(/^switchyard: worker \d: (bind|listen) EADDRINUSE:? .*127\.0\.0\.1:\d+ \(another process holds this port; change listeners\[\]\.port\)\n$/);
  });
});

describe("workers: 2 under the guard", () => {
  let pair: Awaited<ReturnType<typeof failingPair>>;
  beforeAll(async () => {
    pair = await failingPair();
  });
  afterAll(() => pair.close());

  it("judges the traffic of both workers together: neither alone reaches min_requests, both do", async () => {
    const guard = "guard:\n  enabled: true\n  interval: 200ms\n  window: 1m\n  min_requests: 50\n  consecutive: 2\n  cooldown: 5m\n";
    const run = await startWorkers(pair.legacy.url, pair.failing.url, guard);
    try {
      const put = await send(run.admin, { method: "PUT", path: "/features/root", headers: { "content-type": "application/json" }, body: JSON.stringify({ percent: 100 }) });
      expect(put.status).toBe(200);
      // 60 requests, dealt over both workers: about 30 each, under min_requests 50 for either alone.
      const answers = await Promise.all(Array.from({ length: 60 }, () => send(run.url, { path: "/x" })));
      expect(answers.map((a) => a.status)).toEqual(Array(60).fill(500));
      await waitFor(() => run.lines.some((l) => String(l.msg).startsWith("guard: rollback root 100% -> 0%")), "the guard's rollback", 15_000);
      const served = accessLines(run).filter((l) => l.backend === "new");
      const perWorker = [1, 2].map((w) => served.filter((l) => l.worker === w).length);
      expect(perWorker.every((n) => n > 0 && n < 50)).toBe(true);
      // After the rollback (an override every worker runs), everyone is on legacy again.
      expect(await burst(run.url, 16)).toEqual(Array(16).fill("legacy"));
    } finally {
      run.child.kill("SIGTERM");
      await run.exit;
    }
  });
});

describe("workers: 2 with active health checks", () => {
  it("the primary probes once for both workers; a failing check takes the backend out of rotation in both", async () => {
    const legacy = await startBackend((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "legacy" }));
    });
    const probePorts = new Set<number>();
    let probes = 0;
    const neu = await startBackend((req, res) => {
      req.resume();
      if (req.url === "/healthz") {
        probes++;
        probePorts.add(req.socket.remotePort!);
        res.writeHead(503).end("down");
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "new" }));
    });
    const dir = mkdtempSync(join(tmpdir(), "switchyard-workers-health-"));
    const file = join(dir, "switchyard.yaml");
    writeFileSync(
      file,
      `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${legacy.url}\n  new:\n    url: ${neu.url}\n    health:\n      active: { path: /healthz, interval: 200ms, timeout: 150ms, unhealthy_threshold: 2 }\nadmin:\n  port: 0\nfeatures:\n  root:\n    routes: [/**]\n    target: new\n`,
    );
    const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
    const child = spawn(process.execPath, [cli, "start", "-c", file, "--workers", "2", "--state-file", join(dir, "state.json")], { stdio: ["ignore", "pipe", "inherit"] });
    const lines = jsonLines(child);
    try {
      await waitFor(() => lines.some((l) => l.msg === "switchyard started" && l.workers === 2), "the workers", 15_000);
      const url = (lines.find((l) => l.msg === "switchyard started" && l.workers === 2)!.listeners as string[])[0]!;
      await waitFor(() => probes >= 2, "two failed checks", 10_000);
      const admin = lines.find((l) => l.msg === "admin API listening")!.admin as string;
      type Health = { backends: { new: { health: { workers?: { worker: number; state: string }[] } } } };
      let states: string[] = [];
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
        states = ((json(await send(admin, { path: "/status" })) as Health).backends.new.health.workers ?? []).map((w) => w.state);
        if (states.length === 2 && states.every((x) => x === "unhealthy")) break;
      }
      expect(states).toEqual(["unhealthy", "unhealthy"]);
      // Out of rotation in both workers: every request, whichever worker serves it, fails over to legacy.
      expect(await burst(url, 24)).toEqual(Array(24).fill("legacy"));
      await waitFor(() => lines.filter((l) => l.msg === "request").length >= 24, "24 access lines");
      const served = lines.filter((l) => l.msg === "request");
      expect(new Set(served.map((l) => l.worker))).toEqual(new Set([1, 2]));
      expect(served.every((l) => l.backend === "legacy" && l.failover === "new->legacy (ejected)")).toBe(true);
      // One prober, on one connection of its own: the backend is not probed once per worker.
      expect(probePorts.size).toBe(1);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      await legacy.close();
      await neu.close();
    }
  });
});

describe("workers: 2 with WebSocket tunnels", () => {
  it("tunnels open on both workers, echo through them, show in /status, and close with 1001 when the primary is stopped", async () => {
    const http = await import("node:http");
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server });
    wss.on("connection", (ws) => ws.on("message", (m, binary) => ws.send(m, { binary })));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const backend = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const run = await startWorkers(backend, backend, "websocket:\n  max_tunnels: 100\n");
    try {
      const sockets = await Promise.all(
        Array.from({ length: 6 }, () => new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${run.url.replace("http", "ws")}/ws`);
          ws.once("open", () => resolve(ws));
          ws.once("error", reject);
        })),
      );
      const echoes = await Promise.all(sockets.map((ws, i) => new Promise<string>((resolve) => {
        ws.once("message", (m) => resolve(String(m)));
        ws.send(`hello ${i}`);
      })));
      expect(echoes).toEqual(sockets.map((_, i) => `hello ${i}`));
      let open = { legacy: 0, new: 0 };
      for (const deadline = Date.now() + 5000; Date.now() < deadline && open.legacy + open.new < 6; await new Promise((r) => setTimeout(r, 100))) {
        open = (json(await send(run.admin, { path: "/status" })) as { tunnels: { open: typeof open } }).tunnels.open;
      }
      expect(open.legacy + open.new).toBe(6); // summed over the workers' reports
      const closes = sockets.map((ws) => new Promise<number>((resolve) => ws.once("close", (code) => resolve(code))));
      run.child.kill("SIGTERM");
      expect(await Promise.all(closes)).toEqual(Array(6).fill(1001));
      expect(await run.exit).toBe(0);
      const tunnels = run.lines.filter((l) => l.msg === "request" && l.status === 101);
      expect(tunnels).toHaveLength(6);
      expect(new Set(tunnels.map((l) => l.worker))).toEqual(new Set([1, 2])); // dealt over both workers, drained by each
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      wss.close();
      server.close();
    }
  });
});
