// memory.idle_trim_after: a real `switchyard start` hands back what startup left once idle, once per
// start or reload, never while serving; the trims are counted in /metrics.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { send } from "../helpers/client.ts";
import { echoBackend, type TestBackend } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;

let child: ChildProcess | undefined;
let backend: TestBackend | undefined;
afterEach(async () => {
  child?.kill("SIGKILL");
  child = undefined;
  await backend?.close();
  backend = undefined;
});

interface Trim { rss_before_mib: number; rss_after_mib: number; gc_ms: number }

/** The process's log lines as they come, parsed. */
function lines(proc: ChildProcess): Record<string, unknown>[] {
  const seen: Record<string, unknown>[] = [];
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith("{")) seen.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  return seen;
}

async function until<T>(what: string, get: () => T | undefined, ms = 20_000): Promise<T> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 50))) {
    const v = get();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

const trimsTotal = async (admin: string) => Number(/^switchyard_memory_trims_total (\d+)$/m.exec((await send(admin, { path: "/metrics" })).body.toString())?.[1]);

describe("memory.idle_trim_after", () => {
  it("trims once after startup and once after a reload, while idle, and not because of traffic", async () => {
    backend = await echoBackend("legacy");
    const dir = mkdtempSync(join(tmpdir(), "switchyard-memory-"));
    const file = join(dir, "sy.yaml");
    const config = (percent: number) =>
      `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend!.url}\n  new:\n    url: ${backend!.url}\nadmin:\n  port: 0\nlog:\n  level: debug\n` +
      `features:\n  root:\n    routes: [/**]\n    target: { percent: ${percent} }\nmemory:\n  idle_trim_after: 300ms\n`;
    writeFileSync(file, config(10));
    child = spawn(process.execPath, [CLI, "start", "-c", file, "--state-file", join(dir, "state.json")], { stdio: ["ignore", "pipe", "pipe"] });
    const log = lines(child);
    const trims = () => log.filter((l) => l.msg === "memory trimmed while idle") as unknown as Trim[];
    const proxy = await until("the listener", () => (log.find((l) => Array.isArray(l.listeners))?.listeners as string[] | undefined)?.[0]);
    const admin = await until("the admin API", () => log.find((l) => l.msg === "admin API listening")?.admin as string | undefined);

    // Startup: one trim, which hands memory back (what loading the config and modules left).
    const first = await until("the startup trim", () => trims()[0]);
    expect(first.rss_after_mib).toBeLessThan(first.rss_before_mib);
    expect(first.gc_ms).toBeGreaterThan(0);
    expect(await trimsTotal(admin)).toBe(1);

    // Traffic, then quiet for several periods: no trim for it.
    for (let i = 0; i < 20; i++) expect((await send(proxy, { path: `/t/${i}` })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    expect(trims()).toHaveLength(1);

    // A reload: trimmed again once quiet.
    writeFileSync(file, config(20));
    await until("the reload", () => log.find((l) => typeof l.msg === "string" && l.msg.startsWith("config applied")));
    await until("the trim after the reload", () => trims()[1]);
    expect(await trimsTotal(admin)).toBe(2);
  }, 60_000);
});
