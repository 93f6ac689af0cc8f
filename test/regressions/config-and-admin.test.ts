// Guards for problems a new user hit (issue: edge hardening, items 7-10):
// - a route path without a leading "/" crashed validation: no file:line, a silently ignored reload
//   (no failed count, last_load.ok true) and a 500 with a stack trace from POST /reload;
// - one bad save was logged and counted again every ~500 ms while a shadow store wrote beside it;
// - $SWITCHYARD_ADMIN_TOKEN was read by the CLI only: the server ran without a token;
// - a shadow store was created with shadow off, and runtime state landed next to the config.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, controlledTests, openControlled } from "../helpers/control.ts";
import { waitFor } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const t = controlledTests();

const ping = 'features:\n  ping:\n    routes: ["GET /api/1/ping"]\n    target: new\n';

describe("a route path without a leading /", () => {
  it("is reported by check with file:line:column and the field path", () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-route-"));
    const file = join(dir, "sy.yaml");
    writeFileSync(file, baseYaml("http://127.0.0.1:1", "http://127.0.0.1:2") + ping.replace("GET /api", "GET api"));
    const r = spawnSync(process.execPath, [CLI, "check", "-c", file], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${file}:13:14: features.ping.routes[0]: a route path must start with "/", got "api/1/ping"`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("fails a live reload (counted, located) and POST /reload answers the errors, not a 500", async () => {
    const servers = await t.backends();
    const good = baseYaml(servers.legacy.url, servers.new.url) + ping;
    const { file, save } = configDir("atomic-rename", good);
    t.running = await openControlled(file);
    save(good.replace("GET /api", "GET api"));
    await waitFor(() => t.running!.cp.lastLoad.ok === false, "the failed reload");
    expect(t.running.cp.reloads.failed).toBe(1);
    expect(t.running.cp.lastLoad.errors).toEqual([`${file}:13:14: features.ping.routes[0]: a route path must start with "/", got "api/1/ping"`]);
    const res = await send(t.running.admin.url, { method: "POST", path: "/reload" });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ ok: false, errors: t.running.cp.lastLoad.errors });
    expect(t.running.cp.reloads.failed).toBe(2); // an explicit reload is an attempt of its own
    expect(json(await send(t.running.url, { path: "/api/1/ping" })).backend).toBe("new");
  });
});

describe("one bad save is one failed reload", () => {
  it("while a shadow store next to the config keeps writing", async () => {
    const servers = await t.backends();
    const good = `${baseYaml(servers.legacy.url, servers.new.url)}${ping}shadow:\n  enabled: true\n  percent: 100\n  store:\n    path: ./beside.shadow.db\n    flush_interval: 50ms\n`;
    const { file, dir, save } = configDir("in-place", good);
    t.running = await openControlled(file, { env: {} });
    save(good.replace("percent: 100", "percent: 1000"));
    await waitFor(() => t.running!.cp.lastLoad.ok === false, "the failed reload");
    // Traffic makes the store write beside the config for a while.
    for (let i = 0; i < 40; i++) {
      await send(t.running.url, { path: "/api/1/ping" });
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(readdirSync(dir).some((n) => n.startsWith("beside.shadow.db"))).toBe(true);
    expect(t.running.cp.reloads.failed).toBe(1);
    expect(t.running.logs.filter((l) => String(l.msg).startsWith("config reload failed"))).toHaveLength(1);
    save(good.replace("percent: 100", "percent: 50"));
    await waitFor(() => t.running!.cp.lastLoad.ok, "the fixed file to apply");
  });
});

describe("$SWITCHYARD_ADMIN_TOKEN", () => {
  it("is required by the server when the file sets no token", async () => {
    const servers = await t.backends();
    const { file } = configDir("in-place", baseYaml(servers.legacy.url, servers.new.url) + ping);
    t.running = await openControlled(file, { env: { SWITCHYARD_ADMIN_TOKEN: "s3cret" } });
    const anonymous = await send(t.running.admin.url, { method: "PUT", path: "/features/ping?enabled=false" });
    expect(anonymous.status).toBe(401);
    expect((await send(t.running.admin.url, { path: "/status" })).status).toBe(401);
    expect(t.running.cp.overrides.size).toBe(0);
    const authed = await send(t.running.admin.url, { method: "PUT", path: "/features/ping?enabled=false", headers: { authorization: "Bearer s3cret" } });
    expect(authed.status).toBe(200);
  });

  it("lets an admin listener off loopback start without admin.token in the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-token-"));
    const file = join(dir, "sy.yaml");
    writeFileSync(file, baseYaml("http://127.0.0.1:1", "http://127.0.0.1:2").replace("admin:\n", "admin:\n  host: 0.0.0.0\n"));
    const without = spawnSync(process.execPath, [CLI, "check", "-c", file], { encoding: "utf8", env: { ...process.env, SWITCHYARD_ADMIN_TOKEN: "" } });
    expect(without.status).toBe(1);
    expect(without.stderr).toMatch(/admin\.token: admin\.host 0\.0\.0\.0 is not loopback, so an admin token is required/);
    const withEnv = spawnSync(process.execPath, [CLI, "check", "-c", file], { encoding: "utf8", env: { ...process.env, SWITCHYARD_ADMIN_TOKEN: "s3cret" } });
    expect(withEnv.status).toBe(0);
  });
});

describe("runtime files", () => {
  it("no shadow store with shadow off, and no state next to the config", async () => {
    const servers = await t.backends();
    const { file, dir } = configDir("in-place", baseYaml(servers.legacy.url, servers.new.url) + ping);
    t.running = await openControlled(file);
    expect((await send(t.running.admin.url, { method: "PUT", path: "/features/ping?enabled=false" })).status).toBe(200);
    expect((await send(t.running.admin.url, { path: "/shadow" })).status).toBe(404);
    await t.running.close();
    t.running = undefined;
    expect(readdirSync(dir)).toEqual(["switchyard.yaml"]);
    const stateDir = process.env.SWITCHYARD_STATE_DIR!;
    expect(readdirSync(stateDir).filter((n) => n.startsWith("switchyard-") && n.endsWith(".state.json")).length).toBeGreaterThan(0);
    expect(existsSync(join(stateDir, "switchyard.shadow.db"))).toBe(false);
    expect(readdirSync(stateDir).some((n) => n.includes(".shadow.db"))).toBe(false);
  });
});
