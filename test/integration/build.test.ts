// The build (npm run build -> dist/) is what npm start, `npx switchyard` and the image run: built
// fresh here, it serves with two cluster workers, writes shadow pairs through its store worker
// thread and answers the admin's shadow report from its forked report process - every module that
// starts another module of its own finds the built one.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { spawnSwitchyard } from "../helpers/replica.ts";
import { stampingBackends } from "../helpers/servers.ts";

const root = new URL("../..", import.meta.url).pathname;
const main = join(root, "dist/cli/main.js");
let backends: Awaited<ReturnType<typeof stampingBackends>>;

beforeAll(async () => {
  backends = await stampingBackends();
  await promisify(execFile)(process.execPath, [join(root, "scripts/build.ts")], { cwd: root });
}, 60_000);
afterAll(() => backends.close());

describe("npm run build", () => {
  it("writes an executable CLI with the admin page beside the code", async () => {
    expect(statSync(main).mode & 0o111).not.toBe(0);
    expect(existsSync(join(root, "dist/admin/page.html"))).toBe(true);
    const v = await promisify(execFile)(main, ["--version"], { encoding: "utf8" });
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it("serves from dist/ with 2 workers, stores shadow pairs and reports them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-build-"));
    const file = join(dir, "switchyard.yaml");
    writeFileSync(file, `${baseYaml(backends.legacy.url, backends.new.url)}shadow:\n  enabled: true\n  percent: 100\n  store:\n    path: ${join(dir, "shadow.db")}\n    flush_interval: 100ms\nfeatures:\n  root:\n    routes: [/**]\n    target: legacy\n`);
    const sy = await spawnSwitchyard(["start", "-c", file, "--workers", "2", "--state-file", join(dir, "state.json")], { entry: process.env.SY_ENTRY ?? main });
    try {
      for (let i = 0; i < 20; i++) expect((json(await send(sy.url, { path: `/b/${i}` })) as { backend: string }).backend).toBe("legacy");
      // Compared in both workers (their counters reach the primary each second, their pairs every
      // 250 ms); then the admin's report, built by its forked process, reads them from the store.
      let compared = 0;
      for (let t0 = Date.now(); compared < 20 && Date.now() - t0 < 10_000; await new Promise((r) => setTimeout(r, 200))) {
        compared = parseProm((await send(sy.admin, { path: "/metrics" })).body.toString()).get('switchyard_shadow_requests_total{feature="root",outcome="compared"}') ?? 0;
      }
      expect(compared).toBe(20);
      const report = json(await send(sy.admin, { path: "/shadow?since=1h" })) as { overall: { compared: number } };
      expect(report.overall.compared).toBe(20);
      const status = json(await send(sy.admin, { path: "/status" })) as { workers: { up: boolean }[] };
      expect(status.workers.map((w) => w.up)).toEqual([true, true]);
    } finally {
      expect(await sy.stop()).toBe(0);
    }
  });
});
