// The async agent guide's concurrency probe against real backends that serve in parallel, one at a time, or three
// at a time; through the admin API and the CLI.
import { execFile } from "node:child_process";
import type http from "node:http";
import { describe, expect, it } from "vitest";
import { judge } from "../../src/admin/probe.ts";
import { json, send } from "../helpers/client.ts";
import { baseYaml, closeAfterEach, configDir, type Controlled, openControlled } from "../helpers/control.ts";
import { startBackend, type TestBackend } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
let running: Controlled | undefined;
const servers: TestBackend[] = [];
closeAfterEach(() => running, () => (running = undefined), servers);

/** A backend that serves at most `slots` requests at a time, each taking `ms`. */
async function backend(slots: number, ms: number): Promise<TestBackend> {
  let busy = 0;
  const waiting: (() => void)[] = [];
  const serve = (res: http.ServerResponse) => {
    busy++;
    setTimeout(() => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      busy--;
      waiting.shift()?.();
    }, ms);
  };
  const b = await startBackend((req, res) => {
    req.resume();
    if (busy < slots) serve(res);
    else waiting.push(() => serve(res));
  });
  servers.push(b);
  return b;
}

async function proxyFor(legacy: TestBackend, neu: TestBackend): Promise<Controlled> {
  running = await openControlled(configDir("in-place", baseYaml(legacy.url, neu.url)).file);
  return running;
}

/** The CLI as a child process; async, since the proxy it talks to runs in this process. */
const cli = (adminUrl: string, ...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, "probe-concurrency", "--admin", adminUrl, ...args], { encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
    );
  });

describe("probe-concurrency", () => {
  it("tells a concurrent backend from a sequential one (CLI, exit codes)", async () => {
    const asyncBackend = await backend(1000, 150); // FastAPI-like
    const syncBackend = await backend(1, 40); // one worker, one thread
    const p = await proxyFor(syncBackend, asyncBackend);
    let r = await cli(p.admin.url, "--backend", "new", "--path", "/agent/chat", "-n", "20");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/verdict +TRUE CONCURRENCY: 20 requests processed in parallel/);
    expect(r.stdout).toMatch(/20 ok, 0 failed \{"200":20\}/);
    r = await cli(p.admin.url, "--backend", "legacy", "--path", "/agent/chat", "-n", "10");
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/verdict +SEQUENTIAL PROCESSING: requests queued or blocked/);
    // 20 + 10 batch requests plus 3 warm-up/solo each reached the backends.
    expect(asyncBackend.seen.length).toBe(23);
    expect(syncBackend.seen.length).toBe(13);
    expect(asyncBackend.seen[0]!.headers["x-switchyard-probe"]).toBe("1");
  });

  it("reports limited concurrency with the estimated parallelism, and a dead backend as failed", async () => {
    const limited = await backend(3, 80);
    const p = await proxyFor(limited, limited);
    const res = await send(p.admin.url, { method: "POST", path: "/probe", headers: { "content-type": "application/json" }, body: JSON.stringify({ backend: "legacy", path: "/x", n: 12 }) });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ verdict: "limited", parallelism: 3, ok: 12, failed: 0 });

    await running!.close();
    const dead = await startBackend(() => {});
    await dead.close();
    running = await proxyFor(dead, dead);
    const r = await cli(running.admin.url, "--backend", "legacy", "--path", "/x", "-n", "3");
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/verdict +the backend did not answer: .*ECONNREFUSED|connect/);
  });

  it("refuses bad input with the reason", async () => {
    const b = await backend(10, 1);
    const p = await proxyFor(b, b);
    for (const [body, why] of [
      [{ backend: "both", path: "/x", n: 5 }, /backend must be legacy or new/],
      [{ backend: "new", path: "x", n: 5 }, /path must start with "\/"/],
      [{ backend: "new", path: "/x", n: 1 }, /n must be a whole number from 2 to 500/],
      [{ backend: "new", path: "/x", n: 5, method: "DELETE" }, /method must be GET, HEAD or POST/],
    ] as const) {
      const res = await send(p.admin.url, { method: "POST", path: "/probe", body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(json(res).error).toMatch(why);
    }
    expect((await cli(p.admin.url, "--backend", "new")).status).toBe(2);
    expect((await cli(p.admin.url, "--backend", "new", "--path", "/x", "-n", "many")).status).toBe(2);
    expect(b.seen.length).toBe(0);
  });
});

describe("judge", () => {
  it.each([
    [1, 1.05, 20, "concurrent", 19],
    [1, 1.9, 20, "concurrent", 11],
    [1, 20, 20, "sequential", 1],
    [1, 15, 20, "sequential", 1],
    [1, 5, 20, "limited", 4],
    [0.04, 0.4, 10, "sequential", 1],
  ])("single %s s, total %s s for %i -> %s (~%i at once)", (single, total, n, verdict, parallelism) => {
    expect(judge(single, total, n)).toMatchObject({ verdict, parallelism });
  });
});
