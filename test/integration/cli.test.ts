// The switchyard command as a user runs it: real processes, real files, exit codes, stdout/stderr (and memory.idle_trim_after in a real process).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { send, json } from "../helpers/client.ts";
import { echoBackend, type TestBackend } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, SWITCHYARD_CONFIG: "" } });
const tmp = () => mkdtempSync(join(tmpdir(), "switchyard-cli-"));

let child: ChildProcess | undefined;
let backend: TestBackend | undefined;
afterEach(async () => {
  child?.kill("SIGKILL");
  child = undefined;
  await backend?.close();
  backend = undefined;
});

/** Collects a child's stdout until `pattern` appears. */
function waitForOutput(proc: ChildProcess, pattern: RegExp, ms = 15_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in output:\n${out}`)), ms);
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.on("exit", (code) => reject(new Error(`exited ${code} before ${pattern}:\n${out}`)));
  });
}

const exitCode = (proc: ChildProcess) => new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));

describe("switchyard CLI", () => {
  it("--help and --version exit 0 on stdout", () => {
    const help = run("--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/switchyard start -c FILE/);
    expect(help.stdout).toMatch(/Exit codes/);
    const version = run("--version");
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("usage errors exit 2 with a hint on stderr", () => {
    for (const args of [[], ["frobnicate"], ["check"], ["--nope"], ["check", "-c", "a.yaml", "extra"], ["start", "-c", "a.yaml", "--workers", "0"], ["start", "-c", "a.yaml", "--workers", "lots"], ["demo", "--workers", "2"]]) {
      const r = run(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/^switchyard: .+\nTry 'switchyard --help'\.\n$/);
      expect(r.stdout).toBe("");
    }
  });

  it("check on a valid file exits 0 with a one-line summary", () => {
    const r = run("check", "-c", new URL("../../config/switchyard.example.yaml", import.meta.url).pathname);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stdout).toMatch(/is valid: listeners http:\/\/0\.0\.0\.0:8080; legacy http:\/\/127\.0\.0\.1:5042; new http:\/\/127\.0\.0\.1:5043; mode mixed; 2 features \(1 enabled\)/);
  });

  it("check on a broken file exits 1 and prints file:line:col: field: message for every error", () => {
    const dir = tmp();
    const file = join(dir, "broken.yaml");
    writeFileSync(file, "listeners:\n  - port: 99999\nbackends:\n  legacy:\n    url: ftp://x\n  new:\n    url: http://127.0.0.1:1\n    timeouts:\n      conect: 1s\n");
    const r = run("check", "-c", file);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toEqual([
      `${file}:2:11: listeners[0].port: expected a TCP port number 0-65535 (0 picks a free one) (got 99999)`,
      `${file}:5:10: backends.legacy.url: expected an http:// or https:// URL, got scheme "ftp"`,
      `${file}:9:7: backends.new.timeouts.conect: unknown key "conect"; did you mean "connect"?`,
      `switchyard: ${file}: 3 errors; nothing started`,
    ]);
  });

  it("check on a missing file exits 1", () => {
    const r = run("check", "-c", "/nonexistent/switchyard.yaml");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^\/nonexistent\/switchyard.yaml: cannot read config: no such file/);
  });

  it("start serves traffic and exits 0 after SIGTERM", async () => {
    backend = await echoBackend();
    const dir = tmp();
    const file = join(dir, "sy.yaml");
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`);
    child = spawn(process.execPath, [CLI, "start", "-c", file], { stdio: ["ignore", "pipe", "pipe"] });
    const m = await waitForOutput(child, /"listeners":\["(http:\/\/127\.0\.0\.1:\d+)"\]/);
    const res = await send(m[1]!, { path: "/hello" });
    expect(json(res)).toMatchObject({ backend: "legacy", url: "/hello" });
    const exited = exitCode(child);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("status, set, mode, rollback, unset and reload talk to a running proxy; SIGHUP reloads", async () => {
    backend = await echoBackend();
    const dir = tmp();
    const file = join(dir, "sy.yaml");
    const text = (percent: number) =>
      `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend!.url}\n  new:\n    url: ${backend!.url}\nadmin:\n  port: 0\n  token: \${SWITCHYARD_ADMIN_TOKEN}\n` +
      `features:\n  reports:\n    routes: [/api/1/reports/**]\n    target: { percent: ${percent} }\n`;
    writeFileSync(file, text(10));
    const env = { ...process.env, SWITCHYARD_CONFIG: "", SWITCHYARD_ADMIN_TOKEN: "tok-1", SWITCHYARD_ADMIN_URL: "" };
    child = spawn(process.execPath, [CLI, "start", "-c", file, "--no-watch"], { stdio: ["ignore", "pipe", "pipe"], env });
    const m = await waitForOutput(child, /"admin":"(http:\/\/127\.0\.0\.1:\d+)"/);
    const adminUrl = m[1]!;
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, "--admin", adminUrl], { encoding: "utf8", env, timeout: 15_000 });

    let r = cli("status");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^switchyard \d+\.\d+\.\d+, up \d+ s, config [0-9a-f]{12}\n/);
    expect(r.stdout).toMatch(/\n {2}reports +enabled +-> 10%\n/);

    r = cli("set", "reports", "--percent", "25");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok, config [0-9a-f]{12}: feature reports 10% -> 25%\n$/);
    r = cli("status");
    expect(r.stdout).toMatch(/reports +enabled +-> 25% \(override by \S+@127\.0\.0\.1 at \S+; file: 10%\)/);
    r = cli("status", "--json");
    expect(JSON.parse(r.stdout).features.reports.target).toMatchObject({ value: { percent: 25 }, source: "override" });

    r = cli("mode", "pilot");
    expect(r.stdout).toMatch(/mode mixed -> pilot/);
    r = cli("rollback");
    expect(r.stdout).toMatch(/kill switch off -> ON/);
    expect(cli("status").stdout).toMatch(/kill switch +ON: everything goes to legacy \(override by/);
    r = cli("rollback", "--undo");
    expect(r.stdout).toMatch(/kill switch on -> off/);
    r = cli("unset", "routing.mode");
    expect(r.stdout).toMatch(/mode pilot -> mixed/);
    r = cli("unset", "reports");
    expect(r.stdout).toMatch(/feature reports 25% -> 10%/);

    // Errors: the server's reason on stderr, exit 1; usage errors exit 2.
    r = cli("set", "reports", "--percent", "101");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^switchyard: PUT \/features\/reports: HTTP 422: features\.reports\.percent must be a number from 0 to 100 \(got 101\)\n$/);
    r = spawnSync(process.execPath, [CLI, "status", "--admin", adminUrl], { encoding: "utf8", env: { ...env, SWITCHYARD_ADMIN_TOKEN: "wrong" } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/HTTP 401: missing or wrong bearer token .*\(set SWITCHYARD_ADMIN_TOKEN\)/);
    expect(cli("set", "reports").status).toBe(2);
    expect(cli("set", "reports", "--percent", "lots").status).toBe(2);
    r = spawnSync(process.execPath, [CLI, "status", "--admin", "http://127.0.0.1:1"], { encoding: "utf8", env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the admin API at http:\/\/127\.0\.0\.1:1: .*is the proxy running\?/);

    // Schedules: this feature has none; the subcommand is checked before any call.
    r = cli("schedule", "pause", "reports");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/HTTP 409: feature reports has no schedule \(features\.reports\.schedule\)/);
    expect(cli("schedule", "stop", "reports").status).toBe(2);

    // The file is not watched (--no-watch): a save waits for SIGHUP or `switchyard reload`.
    writeFileSync(file, text(30));
    const hup = waitForOutput(child, /config applied: feature reports 10% -> 30%/);
    child.kill("SIGHUP");
    await hup;
    writeFileSync(file, text(40).replace("percent: 40", "percent: 400"));
    r = cli("reload");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/reload failed, the proxy keeps its previous config:\n {2}.*sy\.yaml:\d+:\d+: features\.reports\.target\.percent/);
    writeFileSync(file, text(40));
    r = cli("reload");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/feature reports 30% -> 40%/);
    const exited = exitCode(child);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("start on a port already taken exits 1 with a hint", async () => {
    backend = await echoBackend();
    const dir = tmp();
    const file = join(dir, "sy.yaml");
    writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: ${backend.port}\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`);
    const r = spawnSync(process.execPath, [CLI, "start", "-c", file], { encoding: "utf8", timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/EADDRINUSE.*another process holds this port/);
  });

  it("demo prints its URLs, answers through the proxy from a sample backend, and stops on SIGINT", async () => {
    // Its port taken: the demo takes a free one and says so.
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "0.0.0.0", r));
    const taken = (blocker.address() as import("node:net").AddressInfo).port;
    // Its own temp directory: where it leaves the note that lets the CLI find it.
    const demoTmp = tmp();
    child = spawn(process.execPath, [CLI, "demo"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SWITCHYARD_PORT: String(taken), SWITCHYARD_ADMIN_PORT: "0", TMPDIR: demoTmp } });
    const m = await waitForOutput(child, /proxy +(http:\/\/127\.0\.0\.1:\d+)\/[\s\S]*legacy +(http:\S+)\/[\s\S]*new +(http:\S+)\/[\s\S]*Ctrl\+C/);
    blocker.close();
    expect(m.input).toContain(`note: port ${taken} is taken (another demo or server?): the proxy took a free port instead`);
    expect(m[1]).not.toContain(`:${taken}`);
    // The admin line points at the page; the report command is one that runs as printed (npx).
    const page = /admin +(http:\/\/127\.0\.0\.1:\d+\/) +the admin page/.exec(m.input)!;
    const html = await send(page[1]!, { path: "/" });
    expect(html.status).toBe(200);
    expect(String(html.headers["content-type"])).toMatch(/text\/html/);
    expect(m.input).toMatch(/or npx switchyard report --db \S+demo\.shadow\.db\n/);
    const res = await send(m[1]!, { path: "/api/1/ping" });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ backend: "legacy", result: "pong" });
    const direct = await send(m[3]!, { path: "/api/1/ping" });
    expect(json(direct)).toMatchObject({ backend: "new" });
    // The CLI finds the running demo by itself (its admin port is not the default one here).
    const found = spawnSync(process.execPath, [CLI, "status"], { encoding: "utf8", env: { ...process.env, SWITCHYARD_CONFIG: "", SWITCHYARD_ADMIN_URL: "", TMPDIR: demoTmp } });
    expect(found.status, found.stderr).toBe(0);
    expect(found.stdout).toMatch(/^switchyard \d+\.\d+\.\d+, up \d+ s/);
    expect(page[1]).not.toBe("http://127.0.0.1:9901/");
    // The printed admin hint works: ping moves to new.
    const hint = /curl -X PUT '(http:\/\/127\.0\.0\.1:\d+)(\/features\/ping\?enabled=true)'/.exec(m.input)!;
    expect((await send(hint[1]!, { method: "PUT", path: hint[2] })).status).toBe(200);
    expect(json(await send(m[1]!, { path: "/api/1/ping" }))).toMatchObject({ backend: "new", result: "pong" });
    const exited = exitCode(child);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    // Gone, and its note with it: the CLI goes back to the default address.
    expect(readdirSync(demoTmp).filter((f) => /^switchyard-demo-\d+-\d+\.json$/.test(f))).toEqual([]);
  });

  it("explain prints the reason chain for a user", () => {
    const r = spawnSync(process.execPath, [CLI, "explain", "-c", new URL("../../config/examples/rotki.yaml", import.meta.url).pathname, "GET", "/api/1/./ping"], {
      encoding: "utf8",
      env: { ...process.env, ASYNC_MODE: "pilot", ASYNC_FEATURE_PING: "true" },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("request    GET /api/1/./ping (matched as /api/1/ping)");
    expect(r.stdout).toContain("pilot      in the pilot");
    expect(r.stdout.trim().split("\n").at(-1)).toBe("decision   new (reason: feature_target, feature ping)");
    const withUser = run("explain", "-c", new URL("../../config/examples/reports.yaml", import.meta.url).pathname, "--user", "alice", "GET", "/api/1/reports/x");
    expect(withUser.stdout).toContain('identity   header x-user-id = "alice"');
    expect(run("explain", "-c", "x.yaml", "GET").status).toBe(2);
  });

  it("rollout-diff reports who moves, and exits 3 when a salt change would move users back", () => {
    const dir = tmp();
    const base = (pct: number, salt: string) =>
      `listeners:\n  - port: 8080\nbackends:\n  legacy:\n    url: http://127.0.0.1:1\n  new:\n    url: http://127.0.0.1:2\nrouting:\n  salt: ${salt}\nfeatures:\n  reports:\n    routes: ['/r/**']\n    target: { percent: ${pct} }\n`;
    writeFileSync(join(dir, "a.yaml"), base(10, "s"));
    writeFileSync(join(dir, "b.yaml"), base(25, "s"));
    writeFileSync(join(dir, "c.yaml"), base(25, "t"));
    const up = run("rollout-diff", join(dir, "a.yaml"), join(dir, "b.yaml"), "--users", "20000");
    expect(up.status).toBe(0);
    expect(up.stdout).toMatch(/reports +mode mixed, 10% \(salt s\) +mode mixed, 25% \(salt s\) +1[45]\.\d\d% +0\.00%/);
    const salted = run("rollout-diff", join(dir, "a.yaml"), join(dir, "c.yaml"), "--users", "20000");
    expect(salted.status).toBe(3);
    expect(salted.stdout).toMatch(/WARNING reports: \d+\.\d\d% of users move new -> legacy although no percent went down/);
  });
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

describe("memory.idle_trim_after (a real process)", () => {
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
