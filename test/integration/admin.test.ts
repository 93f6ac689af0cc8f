// The admin API on a real listener: auth, feature toggles with the deployment guide's semantics, mode, rollback and
// undo, overrides that persist across a restart and shadow later file edits until cleared, bad input.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { json, send, type ClientResponse } from "../helpers/client.ts";
import { baseYaml, configDir, openControlled, type Controlled } from "../helpers/control.ts";
import { stampingBackends, waitFor } from "../helpers/servers.ts";

let backends: Awaited<ReturnType<typeof stampingBackends>> | undefined;
let running: Controlled | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
  await backends?.close();
  backends = undefined;
});

const TOKEN = "s3cret-token";

const yaml = (legacy: string, neu: string, percent = 0, mode = "mixed") => `${baseYaml(legacy, neu, { token: TOKEN })}proxy:
  config_hash_header: true
routing:
  mode: ${mode}
features:
  reports:
    routes: [/api/1/reports/**]
    target: { percent: ${percent} }
  ping:
    routes: [GET /api/1/ping]
    target: new
`;

async function setup(percent = 0, mode = "mixed") {
  backends = await stampingBackends();
  const dir = configDir("atomic-rename", yaml(backends.legacy.url, backends.new.url, percent, mode));
  running = await openControlled(dir.file);
  return dir;
}

const auth = { authorization: `Bearer ${TOKEN}`, "x-switchyard-actor": "alice" };
const admin = (method: string, path: string, body?: unknown, headers: Record<string, string> = auth): Promise<ClientResponse> =>
  send(running!.admin.url, { method, path, headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
const who = async (path: string, user = "u1") => {
  const res = await send(running!.url, { path, headers: { "x-user-id": user } });
  expect(res.status).toBe(200);
  return json(res).backend as string;
};
type Status = {
  config: { hash: string; state_file: string };
  mode: { value: string; source: string };
  kill_switch: { value: boolean; source: string };
  features: Record<string, { enabled: { value: boolean; source: string; set_by?: string }; target: { value: unknown; source: string; file_value?: unknown; set_by?: string } }>;
  overrides: Record<string, { value: unknown; by: string }>;
  backends: Record<string, { url: string }>;
};
const status = async () => json(await admin("GET", "/status")) as unknown as Status;

describe("admin API auth", () => {
  it("answers 401 without or with a wrong token, and changes nothing", async () => {
    await setup();
    const { cp } = running!;
    const hash = cp.app.snapshot.hash;
    for (const headers of [{} as Record<string, string>, { authorization: "Bearer nope" }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }]) {
      for (const [method, path] of [["GET", "/status"], ["PUT", "/features/reports?percent=100"], ["POST", "/rollback"], ["PUT", "/mode?mode=full"], ["DELETE", "/overrides/routing.mode"]] as const) {
        const res = await admin(method, path, undefined, headers);
        expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers["www-authenticate"]).toBe('Bearer realm="switchyard-admin"');
        expect(json(res).error).toMatch(/bearer token/);
      }
    }
    expect(cp.app.snapshot.hash).toBe(hash);
    expect(cp.overrides.size).toBe(0);
    expect(existsSync(cp.stateFile)).toBe(false);
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect((await admin("GET", "/status")).status).toBe(200);
  });

  it("answers probes on /healthz without the token, saying no more than that it serves", async () => {
    await setup();
    const anonymous = await admin("GET", "/healthz", undefined, {});
    expect(anonymous.status).toBe(200);
    expect(json(anonymous)).toEqual({ ok: true });
    expect(json(await admin("GET", "/healthz"))).toMatchObject({ ok: true, config_hash: running!.cp.app.snapshot.hash });
    expect((await admin("POST", "/healthz", undefined, {})).status).toBe(401);
    expect((await admin("GET", "/healthz/x", undefined, {})).status).toBe(401);
  });
});

describe("admin changes", () => {
  it("take effect on the next request, show their source, and survive a restart", async () => {
    const { file } = await setup(0);
    const { cp } = running!;
    expect(await who("/api/1/reports/x")).toBe("legacy");
    const before = cp.app.snapshot.hash;

    const res = await admin("PUT", "/features/reports", { percent: 100 });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ applied: { "features.reports.percent": 100 }, before: { "features.reports.percent": 0 }, changes: ["feature reports 0% -> 100%"] });
    expect(await who("/api/1/reports/x")).toBe("new");
    const hash = cp.app.snapshot.hash;
    expect(hash).not.toBe(before);
    expect((await send(running!.url, { path: "/api/1/reports/x" })).headers["x-switchyard-config"]).toBe(hash);

    const s = await status();
    expect(s.config.hash).toBe(hash);
    expect(s.features.reports!.target).toMatchObject({ value: { percent: 100 }, source: "override", file_value: { percent: 0 }, set_by: "alice@127.0.0.1" });
    expect(s.features.ping!.target).toMatchObject({ value: "new", source: "file" });
    const audit = running!.logs.find((l) => (l.audit as { action?: string } | undefined)?.action === "feature reports");
    expect(audit?.audit).toEqual({ who: "alice@127.0.0.1", action: "feature reports", before: { "features.reports.percent": 0 }, after: { "features.reports.percent": 100 } });
    expect(JSON.parse(readFileSync(cp.stateFile, "utf8")).overrides["features.reports.percent"]).toMatchObject({ value: 100, by: "alice@127.0.0.1" });

    // Restart: a new process state from the same files.
    await running!.close();
    running = await openControlled(file);
    expect(await who("/api/1/reports/x")).toBe("new");
    expect((await status()).features.reports!.target).toMatchObject({ value: { percent: 100 }, source: "override", set_by: "alice@127.0.0.1" });
    expect(running.logs.some((l) => l.msg === "runtime overrides loaded")).toBe(true);
    expect(running.cp.app.snapshot.hash).toBe(hash);
  });

  it("shadow a later file edit of the same key until cleared", async () => {
    const { save } = await setup(0);
    const { cp } = running!;
    expect((await admin("PUT", "/features/reports?percent=100")).status).toBe(200);
    const hash = cp.app.snapshot.hash;
    save(yaml(backends!.legacy.url, backends!.new.url, 0).replace("target: { percent: 0 }", "target: legacy"));
    await waitFor(() => cp.lastLoad.trigger === "watch", "the reload");
    expect(cp.app.snapshot.hash).toBe(hash); // the effective config did not move
    expect(await who("/api/1/reports/x")).toBe("new");
    expect(running!.logs.some((l) => String(l.msg).startsWith("file changes shadowed by runtime overrides") && JSON.stringify(l.keys) === '["features.reports.percent"]')).toBe(true);
    expect((await status()).features.reports!.target).toMatchObject({ source: "override", file_value: "legacy" });

    const cleared = await admin("DELETE", "/features/reports");
    expect(cleared.status).toBe(200);
    expect(json(cleared)).toMatchObject({ cleared: ["features.reports.percent"], changes: ["feature reports 100% -> legacy"] });
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect((await status()).features.reports!.target).toMatchObject({ value: "legacy", source: "file" });
    expect((await admin("DELETE", "/features/reports")).status).toBe(404);
    expect(JSON.parse(readFileSync(cp.stateFile, "utf8"))).toEqual({ version: 1, overrides: {} });
  });

  it("the deployment guide's all_endpoints switch, the mode, rollback and its undo", async () => {
    await setup(100);
    const { cp } = running!;
    expect(await who("/api/1/reports/x")).toBe("new");
    expect(await who("/api/1/ping")).toBe("new");

    // The deployment guide: PUT /api/1/async/features/all_endpoints?enabled=false
    expect((await admin("PUT", "/api/1/async/features/all_endpoints?enabled=false")).status).toBe(200);
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect(await who("/api/1/ping")).toBe("legacy");
    let s = await status();
    expect(s.features.ping!.enabled).toMatchObject({ value: false, source: "override" });
    expect(s.overrides["features.*.enabled"]).toMatchObject({ value: false });
    expect((await admin("PUT", "/features/ping", { enabled: true })).status).toBe(200); // a feature's own key beats all_endpoints
    expect(await who("/api/1/ping")).toBe("new");
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect((await admin("DELETE", "/features/all_endpoints")).status).toBe(200);
    expect(await who("/api/1/reports/x")).toBe("new");

    // The global percent (the report rollout guide: set the percentage to 0).
    expect((await admin("PUT", "/features/all_endpoints", { percent: 0 })).status).toBe(200);
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect(await who("/api/1/ping")).toBe("legacy");
    expect((await admin("DELETE", "/overrides/features.*.percent")).status).toBe(200);

    expect((await admin("PUT", "/mode", { mode: "disabled" })).status).toBe(200);
    expect(await who("/api/1/reports/x")).toBe("legacy");
    expect((await status()).mode).toMatchObject({ value: "disabled", source: "override" });
    expect((await admin("PUT", "/mode?mode=full")).status).toBe(200);
    expect(await who("/elsewhere")).toBe("new");

    const rollback = await admin("POST", "/rollback");
    expect(rollback.status).toBe(200);
    expect(json(rollback).changes).toEqual(["kill switch off -> ON (everything to legacy)"]);
    expect(await who("/elsewhere")).toBe("legacy");
    expect(await who("/api/1/ping")).toBe("legacy");
    s = await status();
    expect(s.kill_switch).toMatchObject({ value: true, source: "override" });
    expect((await admin("POST", "/rollback/undo")).status).toBe(200);
    expect(await who("/elsewhere")).toBe("new");
    const again = await admin("POST", "/rollback/undo");
    expect(again.status).toBe(409);
    expect(json(again).error).toMatch(/no rollback override to undo/);
    expect([...cp.overrides.keys()].sort()).toEqual(["features.ping.enabled", "routing.mode"]);
  });
});

describe("GET /status pools", () => {
  it("shows each backend its own pool when both are at one address with different pool settings", async () => {
    backends = await stampingBackends();
    const url = backends.legacy.url;
    const dir = configDir("in-place", `${baseYaml(url, url, { token: TOKEN }).replace(`new: { url: "${url}" }`, `new: { url: "${url}", pool: { connections: 3 } }`)}features:
  ping:
    routes: [GET /api/1/ping]
    target: new
`);
    running = await openControlled(dir.file);
    // legacy's pool opens first; new's (3 connections) is another pool at the same origin.
    expect((await send(running.url, { path: "/api/1/other" })).status).toBe(200);
    expect((await send(running.url, { path: "/api/1/ping" })).status).toBe(200);
    const pools = (json(await admin("GET", "/status")) as { backends: Record<string, { pool: { backend?: string; connected: number } }> }).backends;
    expect(pools.legacy!.pool).toMatchObject({ backend: "legacy", connected: 1 });
    expect(pools.new!.pool).toMatchObject({ backend: "new", connected: 1 });
  });
});

describe("admin API refuses bad input with a reason and changes nothing", () => {
  it.each([
    ["PUT", "/features/reports?percent=150", undefined, 422, /features\.reports\.percent must be a number from 0 to 100 \(got 150\)/],
    ["PUT", "/features/reports", { percent: "10" }, 422, /must be a number from 0 to 100 \(got "10"\)/],
    ["PUT", "/features/reports", { percent: 12.345 }, 422, /at most two decimals/],
    ["PUT", "/features/nope?enabled=false", undefined, 422, /no feature named "nope" \(known: reports, ping\)/],
    ["PUT", "/features/reports?enabled=maybe", undefined, 400, /enabled must be true or false/],
    ["PUT", "/features/reports", { percnt: 10 }, 400, /unknown field percnt; expected enabled, percent, target/],
    ["PUT", "/features/reports", "[1]", 400, /body must be a JSON object/],
    ["PUT", "/features/reports", undefined, 400, /nothing to change/],
    ["PUT", "/features/reports", { target: "both" }, 422, /legacy or new/],
    ["PUT", "/mode", { mode: "half" }, 422, /routing\.mode must be one of disabled, pilot, mixed, full \(got "half"\)/],
    ["PUT", "/mode", {}, 400, /give the mode/],
    ["DELETE", "/overrides/routing.mode", undefined, 404, /no runtime override routing\.mode to clear/],
    ["GET", "/nope", undefined, 404, /no such admin endpoint: GET \/nope/],
  ])("%s %s %j -> %i", async (method, path, body, code, why) => {
    await setup();
    const { cp } = running!;
    const hash = cp.app.snapshot.hash;
    const res = await send(running!.admin.url, { method, path, headers: { ...auth, "content-type": "application/json" }, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
    expect(res.status).toBe(code);
    expect(json(res).error).toMatch(why);
    expect(cp.app.snapshot.hash).toBe(hash);
    expect(cp.overrides.size).toBe(0);
  });

  it("a change that cannot be persisted is refused whole (503), nothing applied", async () => {
    backends = await stampingBackends();
    const { file } = configDir("atomic-rename", yaml(backends.legacy.url, backends.new.url));
    // After the start, a regular file appears where the state file's directory should be: no one,
    // root included, can write there.
    const blocker = join(mkdtempSync(join(tmpdir(), "sy-ro-")), "not-a-dir");
    const nowhere = join(blocker, "state.json");
    running = await openControlled(file, { stateFile: nowhere });
    writeFileSync(blocker, "");
    const res = await admin("POST", "/rollback");
    expect(res.status).toBe(503);
    expect(json(res).error).toMatch(/cannot persist the change to .*not-a-dir\/state\.json .*nothing changed/);
    expect(running.cp.overrides.size).toBe(0);
    expect(await who("/api/1/ping")).toBe("new");
  });

  it("drops persisted overrides that no longer fit the file, with a warning", async () => {
    const { file, save } = await setup();
    expect((await admin("PUT", "/features/ping?enabled=false")).status).toBe(200);
    expect((await admin("PUT", "/mode?mode=pilot")).status).toBe(200);
    await running!.close();
    save(yaml(backends!.legacy.url, backends!.new.url).replace(/  ping:\n.*\n.*\n/, ""));
    running = await openControlled(file);
    expect([...running.cp.overrides.keys()]).toEqual(["routing.mode"]);
    expect(running.logs.find((l) => String(l.msg).startsWith("runtime overrides dropped"))?.dropped).toEqual(["features.ping.enabled"]);
  });
});
