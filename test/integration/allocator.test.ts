// `switchyard start` re-executes itself on jemalloc (same process id: execve, not a child), its
// workers inherit it, SWITCHYARD_ALLOCATOR=system keeps the system allocator, and a bad value is a
// usage error. Needs libjemalloc2 (.ci/run installs it); without it this file fails loudly.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { JEMALLOC_CANDIDATES } from "../../src/cli/allocator.ts";
import { echoBackend, waitFor, type TestBackend } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const mapsJemalloc = (pid: number) => /\/libjemalloc[^/\n]*\.so/.test(readFileSync(`/proc/${pid}/maps`, "utf8"));

interface Started {
  child: ChildProcess;
  proxy: string;
  admin: string;
  lines: () => Record<string, unknown>[];
}

describe("the allocator a serving process runs on", () => {
  let backend: TestBackend;
  let dir: string;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    if (JEMALLOC_CANDIDATES.find(existsSync) === undefined) {
      throw new Error(`libjemalloc2 is not installed (looked in ${JEMALLOC_CANDIDATES.join(", ")}): apt-get install libjemalloc2; .ci/run installs it`);
    }
    backend = await echoBackend();
    dir = mkdtempSync(join(tmpdir(), "switchyard-allocator-"));
  });
  afterAll(() => backend?.close());
  afterEach(async () => {
    if (child !== null && child.exitCode === null) {
      const exited = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    child = null;
  });

  async function start(env: Record<string, string>, extra = ""): Promise<Started> {
    const file = join(dir, `sy-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n${extra}`);
    const c = spawn(process.execPath, [CLI, "start", "-c", file, "--state-file", join(dir, "state.json")], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    child = c;
    let out = "";
    let err = "";
    c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    await waitFor(() => /"admin":"(http:[^"]+)"/.test(out) || c.exitCode !== null, "the admin API's start-up line", 15_000);
    if (c.exitCode !== null) throw new Error(`switchyard exited ${c.exitCode}: ${err}${out}`);
    const lines = () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { child: c, proxy: /"listeners":\["([^"]+)"\]/.exec(out)![1]!, admin: /"admin":"(http:[^"]+)"/.exec(out)![1]!, lines };
  }

  const status = async (admin: string) => (await (await fetch(`${admin}/status`)).json()) as { allocator: string; workers?: { pid: number | null; up: boolean }[] | null };

  it("by default: jemalloc, in the very process that was started (execve keeps the pid), which serves and drains as before", async () => {
    const s = await start({ SWITCHYARD_ALLOCATOR: "" });
    expect(mapsJemalloc(s.child.pid!)).toBe(true);
    const line = s.lines().find((l) => l.msg === "memory allocator: jemalloc");
    expect(line).toMatchObject({ allocator: "jemalloc", malloc_conf: "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0" });
    expect((await status(s.admin)).allocator).toBe("jemalloc");
    const res = await fetch(`${s.proxy}/hello`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { url: string }).url).toBe("/hello");
    const code = new Promise((r) => s.child.once("exit", r));
    s.child.kill("SIGTERM");
    expect(await code).toBe(0);
  });

  it("workers inherit it: every process serving traffic runs on jemalloc", async () => {
    const s = await start({}, "workers: 2\n");
    let workers: { pid: number | null; up: boolean }[] = [];
    for (let i = 0; i < 100 && !(workers.length === 2 && workers.every((w) => w.up && w.pid !== null)); i++) {
      workers = (await status(s.admin)).workers ?? [];
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(workers).toHaveLength(2);
    for (const w of workers) expect(mapsJemalloc(w.pid!)).toBe(true);
    expect(mapsJemalloc(s.child.pid!)).toBe(true);
  });

  it("SWITCHYARD_ALLOCATOR=system: the system allocator, and the log says why", async () => {
    const s = await start({ SWITCHYARD_ALLOCATOR: "system" });
    expect(mapsJemalloc(s.child.pid!)).toBe(false);
    expect(s.lines().find((l) => l.allocator !== undefined)).toMatchObject({ allocator: "system", why: "SWITCHYARD_ALLOCATOR=system" });
    expect((await status(s.admin)).allocator).toBe("system");
    expect((await fetch(`${s.proxy}/x`)).status).toBe(200);
  });

  it("a value it does not know, or a library that is not there: exit 2, the fix on stderr, nothing started", () => {
    const file = join(dir, "never.yaml");
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`);
    const run = (value: string) => spawnSync(process.execPath, [CLI, "start", "-c", file], { encoding: "utf8", timeout: 15_000, env: { ...process.env, SWITCHYARD_ALLOCATOR: value } });
    let r = run("tcmalloc");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SWITCHYARD_ALLOCATOR must be auto, jemalloc, system or the absolute path of libjemalloc.so.2, got "tcmalloc"');
    expect(r.stdout).toBe("");
    r = run("/nonexistent/libjemalloc.so.2");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("/nonexistent/libjemalloc.so.2 does not exist; set SWITCHYARD_ALLOCATOR=system");
  });
});
