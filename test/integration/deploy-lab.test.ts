// The compose lab's pieces, run here without Docker: the two sample backends as `switchyard
// sample-backend` processes, the proxy as `switchyard start` on the lab's own config file, a real
// Prometheus on the lab's prometheus.yml (only service names and mount paths replaced by local ones)
// with the shipped alert rules - so the token, the scrape path and the rules file are the lab's.
// Then `switchyard healthcheck`, as the image's HEALTHCHECK runs it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { json, send } from "../helpers/client.ts";
import { startPrometheus } from "../helpers/prometheus.ts";
import { spawnSwitchyard } from "../helpers/replica.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "src/cli/main.ts");
const TOKEN = "lab-only-token";

let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** `switchyard sample-backend NAME` on a free port; resolves with its URL once it says so. */
function sampleBackend(name: string): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, [CLI, "sample-backend", name, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => new Promise((r) => (child.exitCode !== null ? r(null) : (child.once("exit", r), child.kill("SIGTERM")))));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /sample \w+ backend on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`sample-backend ${name} exited ${code}: ${out}`)));
  });
}

describe("the deploy/ lab without Docker", () => {
  it("Prometheus scrapes the proxy with the lab token and loads the alert rules; healthcheck follows the proxy", async () => {
    const [legacy, neu] = await Promise.all([sampleBackend("legacy"), sampleBackend("new")]);
    const dir = mkdtempSync(join(tmpdir(), "switchyard-lab-"));
    // The lab config as shipped, on free ports (the compose file publishes 8080 and 9901).
    const doc = parseDocument(readFileSync(join(ROOT, "deploy/lab/config/switchyard.yaml"), "utf8"));
    doc.setIn(["listeners", 0, "port"], 0);
    doc.setIn(["admin", "port"], 0);
    const file = join(dir, "switchyard.yaml");
    writeFileSync(file, doc.toString());
    const env = { ...process.env, LEGACY_URL: legacy, NEW_URL: neu, SWITCHYARD_ADMIN_TOKEN: TOKEN, SWITCHYARD_STATE_DIR: dir, SWITCHYARD_CONFIG: "" };
    const proxy = await spawnSwitchyard(["start", "-c", file], { env });
    cleanup.push(() => proxy.stop());
    const adminPort = new URL(proxy.admin).port;

    const ping = await send(proxy.url, { path: "/api/1/ping" });
    expect(ping.status).toBe(200);
    expect(json(ping)).toMatchObject({ backend: "new", result: "pong" });
    expect(String(ping.headers["x-switchyard-decision"])).toMatch(/^backend=new; reason=feature_target/);

    const prom = parseDocument(readFileSync(join(ROOT, "deploy/lab/prometheus.yml"), "utf8"));
    prom.setIn(["global", "scrape_interval"], "1s");
    prom.setIn(["global", "evaluation_interval"], "1s");
    prom.setIn(["rule_files", 0], join(ROOT, "config/monitoring/prometheus-alerts.yaml"));
    prom.setIn(["scrape_configs", 0, "static_configs", 0, "targets", 0], `127.0.0.1:${adminPort}`);
    const prometheus = await startPrometheus([`127.0.0.1:${adminPort}`], { configText: prom.toString() });
    cleanup.push(() => prometheus.stop());
    await prometheus.scraped(2);
    const query = async (q: string) =>
      ((await (await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as { data: { result: { value: [number, string] }[] } }).data.result;
    // up == 1: the scrape got past the admin API's token check (a wrong token is a 401, up 0).
    expect((await query('up{job="switchyard"}'))[0]!.value[1]).toBe("1");
    expect(Number((await query('sum(switchyard_requests_total{backend="new",feature="ping"})'))[0]!.value[1])).toBeGreaterThanOrEqual(1);
    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: { name: string; rules: { name: string; health: string }[] }[] } };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.length).toBeGreaterThanOrEqual(5);
    expect(loaded.every((r) => r.health === "ok" || r.health === "unknown")).toBe(true);
    expect(loaded.map((r) => r.name)).toContain("HighNewBackendErrorRate");

    // The image's HEALTHCHECK: the config tells the admin address; /healthz needs no token.
    const health = (extra: NodeJS.ProcessEnv) => spawnSync(process.execPath, [CLI, "healthcheck"], { encoding: "utf8", env: { ...process.env, SWITCHYARD_ADMIN_TOKEN: "", SWITCHYARD_ADMIN_URL: "", ...extra } });
    const ok = health({ SWITCHYARD_ADMIN_URL: proxy.admin });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("ok: ");
    expect(await proxy.stop()).toBe(0);
    // A sample backend on a port that is taken says so, and how to fix it.
    const taken = spawnSync(process.execPath, [CLI, "sample-backend", "legacy", "--port", new URL(legacy).port], { encoding: "utf8" });
    expect(taken.status).toBe(1);
    expect(taken.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\): the port is taken; pass another --port/);
    const down = health({ SWITCHYARD_ADMIN_URL: proxy.admin });
    expect(down.status).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the admin API at .*is the proxy running/);
  });
});
