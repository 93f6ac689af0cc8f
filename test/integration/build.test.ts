// The build (npm run build -> dist/) is what npm start, `npx switchyard` and the image run: built
// fresh here, it serves with two cluster workers, writes shadow pairs through its store worker
// thread and answers the admin's shadow report from its forked report process - every module that
// starts another module of its own finds the built one.
//
// Then every command in README.md, run as printed (a shell, `npx switchyard ...` from the checkout)
// or excused with the reason and the test that covers it instead; a README command that is neither
// fails here. They live in this file because they run dist/, which this file rebuilds: vitest runs
// files in parallel, the tests of one file in order.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
      // The counters reach the primary apart from the pairs (each worker sends its pairs every 250 ms,
      // the store writes them every 100 ms): the report sees all 20 a moment after the metrics do.
      // Each poll asks a window of its own: a report is cached 10 s per window.
      let reported = 0;
      for (let minutes = 60, t0 = Date.now(); reported < 20 && Date.now() - t0 < 10_000; minutes++, await new Promise((r) => setTimeout(r, 200))) {
        reported = (json(await send(sy.admin, { path: `/shadow?since=${minutes}m` })) as { overall: { compared: number } }).overall.compared;
      }
      expect(reported).toBe(20);
      const status = json(await send(sy.admin, { path: "/status" })) as { workers: { up: boolean }[] };
      expect(status.workers.map((w) => w.up)).toEqual([true, true]);
    } finally {
      expect(await sy.stop()).toBe(0);
    }
  });
});

/** Every command line of README.md's sh blocks, trailing comments removed. */
function readmeCommands(): string[] {
  const text = readFileSync(join(root, "README.md"), "utf8");
  const out: string[] = [];
  for (const block of text.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    for (const line of block[1]!.split("\n")) {
      const cmd = line.replace(/\s+#\s.*$/, "").trim();
      if (cmd !== "" && !cmd.startsWith("#")) out.push(cmd);
    }
  }
  return out;
}

// Commands not run here, each with why and what covers it instead.
const EXCUSED: Record<string, string> = {
  "npm ci && npm test": "CI runs exactly this on a clean clone (.ci/run)",
  "npx switchyard start -c /etc/switchyard/switchyard.yaml": "a path on the user's machine; start is run below on the example configs",
  "npx switchyard start -c switchyard.yaml --workers auto": "the user's file; --workers is run in test/integration/workers.test.ts and above",
  "sudo nginx -T | npx switchyard import - -o switchyard.yaml": "the machine's own nginx; test/integration/import-nginx.test.ts pipes nginx -T of a real nginx into switchyard import -",
  "npx switchyard import /etc/nginx/nginx.conf > switchyard.yaml": "the machine's own nginx config; import of files is run in test/integration/import-nginx.test.ts",
  "npx switchyard check -c switchyard.yaml": "the file the import wrote; test/integration/import-nginx.test.ts runs check on it",
  "npm run bench": "benchmarks are run by hand (timing lives in bench/, never in tests)",
  "npm run bench:decide": "benchmarks are run by hand",
  "npm run bench:ws": "benchmarks are run by hand",
  "npm run bench:instructions": "benchmarks are run by hand (minutes under valgrind)",
  "npm run bench:memory": "benchmarks are run by hand (minutes of load and idle)",
  "npm run bench:idle": "benchmarks are run by hand (10,000 connections)",
  "apt-get install nginx-light wrk": "installs system packages",
  "docker compose -f deploy/docker-compose.yml up --build": "no Docker engine here; test/unit/deploy.test.ts checks every file and reference of the compose file, test/integration/deploy-lab.test.ts runs its pieces",
  "docker build -t switchyard .": "no Docker engine here; the build stage's npm ci and the runtime's dist/ are what this file runs",
  "docker run -p 8080:8080 -v $PWD/config:/etc/switchyard switchyard": "no Docker engine here",
  'kubectl create secret generic switchyard-admin --from-literal=token="$(openssl rand -hex 24)"': "no cluster here; test/unit/deploy.test.ts validates the manifests",
  "kubectl apply -k deploy/kubernetes": "no cluster here; test/unit/deploy.test.ts validates every manifest it applies",
};

const ADMIN_BLOCK = [
  "npx switchyard status",
  "npx switchyard set reports --percent 25",
  "npx switchyard set all_endpoints --disabled",
  "npx switchyard mode pilot",
  "npx switchyard rollback",
  "npx switchyard unset reports",
  "npx switchyard reload",
];
const RUN_AS_PRINTED = [
  "npm ci && npm start",
  "npx switchyard check -c config/switchyard.example.yaml",
  "npx switchyard --help",
  "npx switchyard explain -c config/examples/reports.yaml --user alice GET /api/1/reports/daily",
  "npx switchyard rollout-diff old.yaml new.yaml",
  "ASYNC_MODE=pilot ASYNC_FEATURE_PING=true npx switchyard start -c config/examples/rotki.yaml",
  ...ADMIN_BLOCK,
];

const sh = (cmd: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync("sh", ["-c", cmd], { cwd: opts.cwd ?? root, encoding: "utf8", env: { ...process.env, SWITCHYARD_CONFIG: "", SWITCHYARD_ADMIN_URL: "", ...opts.env }, timeout: 60_000 });

/** A serving command in its own process group, its stdout collected (and JSON log lines parsed). */
function serve(cmd: string, env: NodeJS.ProcessEnv): { out: () => string; logs: () => Record<string, unknown>[]; stop(): Promise<void> } {
  const child: ChildProcess = spawn("sh", ["-c", cmd], { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SWITCHYARD_CONFIG: "", ...env } });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.resume();
  const ended = new Promise<void>((r) => child.once("exit", () => r()));
  const logs = () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    out: () => out,
    logs,
    // Ctrl+C as a terminal sends it, to the whole group (sh, npx, the proxy): the proxy drains and
    // says so; the wrappers may die of the signal itself.
    stop: async () => {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGINT");
      await ended;
      await until(() => (logs().some((l) => l.msg === "signal received: shutting down") ? true : undefined), "the proxy's shutdown line", 10_000);
    },
  };
}

async function until<T>(get: () => T | undefined, what: string, ms = 60_000): Promise<T> {
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 50))) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
  }
}

describe("README commands, as printed", () => {
  it("every command in README.md is run below or excused with a reason", () => {
    const commands = readmeCommands();
    expect(commands.length).toBeGreaterThan(20);
    const unknown = commands.filter((c) => !(c in EXCUSED) && !RUN_AS_PRINTED.includes(c));
    expect(unknown, "a README command that no test runs: run it below, or excuse it in EXCUSED with the test that covers it").toEqual([]);
    // And nothing here is stale: every listed command is still in the README.
    expect([...Object.keys(EXCUSED), ...RUN_AS_PRINTED].filter((c) => !commands.includes(c))).toEqual([]);
  });

  it("check, --help, explain and rollout-diff", () => {
    const check = sh("npx switchyard check -c config/switchyard.example.yaml");
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/config\/switchyard.example.yaml is valid: listeners/);
    const help = sh("npx switchyard --help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^switchyard \d+\.\d+\.\d+ - edge proxy/);
    const explain = sh("npx switchyard explain -c config/examples/reports.yaml --user alice GET /api/1/reports/daily");
    expect(explain.status, explain.stderr).toBe(0);
    expect(explain.stdout).toMatch(/decision +(new|legacy) \(reason: user_bucket, feature reports\)/);
    // old.yaml and new.yaml: the reports example before and after a step of its rollout.
    const dir = mkdtempSync(join(tmpdir(), "sy-readme-"));
    const example = readFileSync(join(root, "config/examples/reports.yaml"), "utf8").replace("# yaml-language-server: $schema=../switchyard.schema.json\n", "");
    writeFileSync(join(dir, "old.yaml"), example.replace("${ASYNC_ROLLOUT_PERCENTAGE:-100}", "10"));
    writeFileSync(join(dir, "new.yaml"), example.replace("${ASYNC_ROLLOUT_PERCENTAGE:-100}", "25"));
    // npx finds the command from the checkout: the two placeholders become the files' paths.
    const diff = sh(`npx switchyard rollout-diff ${join(dir, "old.yaml")} ${join(dir, "new.yaml")}`);
    expect(diff.status, diff.stderr).toBe(0);
    // 10 % -> 25 %: about 15 % of users move legacy -> new, none back.
    expect(diff.stdout).toMatch(/^reports +mode mixed, 10% .* 25% .* 1[45]\.\d\d% +0\.00%$/m);
  });

  it("the admin commands, against a proxy started as the README starts the rotki example", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-readme-"));
    const proxy = serve("ASYNC_MODE=pilot ASYNC_FEATURE_PING=true npx switchyard start -c config/examples/rotki.yaml", { SWITCHYARD_PORT: "0", SWITCHYARD_ADMIN_PORT: "0", SWITCHYARD_STATE_DIR: dir });
    try {
      const admin = await until(() => proxy.logs().find((l) => l.msg === "admin API listening")?.admin as string | undefined, "the admin API");
      const status = async () => json(await send(admin, { path: "/status" })) as { mode: { value: string }; features: Record<string, { enabled: { value: boolean } }>; kill_switch: { value: boolean } };
      const before = await status();
      expect(before.mode.value).toBe("pilot");
      expect(before.features.ping!.enabled.value).toBe(true);
      // The rotki example has no reports feature: those two lines run against the reports example.
      const reports = serve("npx switchyard start -c config/examples/reports.yaml", { SWITCHYARD_PORT: "0", SWITCHYARD_ADMIN_PORT: "0", SWITCHYARD_STATE_DIR: dir });
      try {
        const reportsAdmin = await until(() => reports.logs().find((l) => l.msg === "admin API listening")?.admin as string | undefined, "the reports example's admin API");
        for (const cmd of ADMIN_BLOCK) {
          const r = sh(cmd, { env: { SWITCHYARD_ADMIN_URL: reportsAdmin } });
          expect(r.status, `${cmd}: ${r.stderr}`).toBe(0);
          expect(r.stdout, cmd).toMatch(cmd === "npx switchyard status" ? /^switchyard \d/ : /^ok/);
        }
        const after = json(await send(reportsAdmin, { path: "/status" })) as { overrides: Record<string, unknown> };
        // What is left: the kill of every endpoint, the mode and the rollback (unset reports cleared the percent).
        expect(Object.keys(after.overrides).sort()).toEqual(["features.*.enabled", "routing.kill_switch", "routing.mode"]);
      } finally {
        await reports.stop();
      }
    } finally {
      await proxy.stop();
    }
  }, 120_000);

  it("npm start: the demo's banner, and every hint it prints works as printed", async () => {
    const demo = serve("npm start", {});
    try {
      const banner = await until(() => (/Ctrl\+C stops/.test(demo.out()) ? demo.out() : undefined), "the demo banner");
      const curl = /try: (curl -i \S+)/.exec(banner)![1]!;
      const ping = sh(curl);
      expect(ping.status).toBe(0);
      expect(ping.stdout).toMatch(/^HTTP\/1.1 200 OK/);
      const page = /admin +(http:\/\/\S+\/) +the admin page/.exec(banner)![1]!;
      expect((await send(page, { path: "/" })).status).toBe(200);
      const put = /try: (curl -X PUT '[^']+')/.exec(banner)![1]!;
      expect(sh(`${put} -s -o /dev/null -w '%{http_code}'`).stdout).toBe("200");
      const report = /or (npx switchyard report --db \S+)/.exec(banner)![1]!;
      await new Promise((r) => setTimeout(r, 700)); // the store's flush interval, for the pair of the curl above
      const r = sh(report);
      expect([0, 3], r.stderr).toContain(r.status);
      expect(r.stdout).toMatch(/Shadow comparison report/i);
    } finally {
      await demo.stop();
    }
  }, 120_000);
});
