// Several replicas sharing one rollout through a real Redis (control.store): a change on any replica
// reaches all within a second; concurrent changes settle on one state everywhere; losing Redis keeps
// traffic flowing and refuses changes; when it is back the fleet converges.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, openControlled, type Controlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startRedis, type RedisServer } from "../helpers/redis.ts";
import { closedPort, failingPair, stampingBackends, waitFor } from "../helpers/servers.ts";

let redis: RedisServer;
let backends: Awaited<ReturnType<typeof stampingBackends>>;
let fleet: Controlled[] = [];

beforeAll(async () => {
  redis = await startRedis();
  backends = await stampingBackends();
});
afterAll(async () => {
  await redis.stop();
  await backends.close();
});
afterEach(async () => {
  for (const r of fleet) await r.close();
  fleet = [];
});

/** Three replicas of one config file, each with its own state file, sharing `prefix` in Redis. */
async function startFleet(prefix: string): Promise<Controlled[]> {
  const yaml = `${baseYaml(backends.legacy.url, backends.new.url)}control:\n  store: ${redis.url}\n  prefix: ${prefix}\nfeatures:\n  root:\n    routes: [/**]\n    target: legacy\n`;
  const file = configDir("in-place", yaml).file;
  for (let i = 0; i < 3; i++) fleet.push(await openControlled(file, { stateFile: join(mkdtempSync(join(tmpdir(), "sy-fleet-")), "state.json") }));
  return fleet;
}

const servedBy = async (r: Controlled) => (json(await send(r.url, { path: "/x" })) as { backend: string }).backend;
const put = (r: Controlled, body: unknown) => send(r.admin.url, { method: "PUT", path: "/features/root", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** Resolves with ms taken once every replica serves from `backend`, or rejects after 5 s. */
async function allServe(replicas: Controlled[], backend: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const seen = await Promise.all(replicas.map(servedBy));
    if (seen.every((b) => b === backend)) return Math.round(performance.now() - t0);
    if (performance.now() - t0 > 5000) throw new Error(`replicas serve ${seen.join(", ")}, not all ${backend}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("control.store: redis", () => {
  it("a change on one replica reaches all three within a second; a rollback on another brings all back", async () => {
    const [a, b, c] = await startFleet("t1");
    expect(await Promise.all([a!, b!, c!].map(servedBy))).toEqual(["legacy", "legacy", "legacy"]);
    expect((await put(a!, { target: "new" })).status).toBe(200);
    const forward = await allServe(fleet, "new");
    const rollback = await send(b!.admin.url, { method: "POST", path: "/rollback" });
    expect(rollback.status).toBe(200);
    const back = await allServe(fleet, "legacy");
    console.log(`[fleet] target new via replica 1: all three within ${forward} ms; rollback via replica 2: all three within ${back} ms`);
    expect(forward).toBeLessThan(1000);
    expect(back).toBeLessThan(1000);
    const statuses = await Promise.all(fleet.map(async (r) => json(await send(r.admin.url, { path: "/status" })) as { kill_switch: { value: boolean }; control_store: { kind: string; connected: boolean; version: number } }));
    expect(statuses.map((s) => [s.kill_switch.value, s.control_store.kind, s.control_store.connected])).toEqual(Array(3).fill([true, "redis", true]));
    expect(new Set(statuses.map((s) => s.control_store.version)).size).toBe(1);
    // The fleet view: every replica heard from, one config, one leader.
    await new Promise((r) => setTimeout(r, 1200));
    const view = json(await send(c!.admin.url, { path: "/status" })) as { control_store: { replicas: { id: string; config_hash: string }[]; config_hashes_differ: boolean } };
    expect(view.control_store.replicas.map((r) => r.id).sort()).toEqual(fleet.map((r) => r.cp.replicaId).sort());
    expect(view.control_store.config_hashes_differ).toBe(false);
    expect(fleet.filter((r) => r.cp.leader)).toHaveLength(1);
    // One audit trail for the fleet: replica 3 lists the changes made on 1 and 2, each once, newest first.
    const audit = (json(await send(c!.admin.url, { path: "/audit" })) as { entries: { action: string; replica: string }[] }).entries;
    expect(audit.map((e) => e.replica)).toEqual([b!.cp.replicaId, a!.cp.replicaId]);
    expect(audit[0]!.action).toMatch(/rollback/);
  });

  it("concurrent changes spread over the replicas settle on one state on all of them; losers get 409 with the state that won", async () => {
    await startFleet("t2");
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => put(fleet[i % 3]!, { percent: i + 1 })));
    const codes = answers.map((r) => r.status);
    expect(codes.every((s) => s === 200 || s === 409)).toBe(true);
    expect(codes.filter((s) => s === 200).length).toBeGreaterThan(0);
    const lost = answers.find((r) => r.status === 409);
    if (lost) expect(String((json(lost) as { error: string }).error)).toMatch(/another change reached the control store first \(now version \d+\); nothing of yours was applied/);
    let states: string[] = [];
    for (const deadline = Date.now() + 3000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      states = await Promise.all(fleet.map(async (r) => {
        const s = json(await send(r.admin.url, { path: "/status" })) as { control_store: { version: number }; features: { root: { target: { value: unknown } } } };
        return JSON.stringify([s.control_store.version, s.features.root.target.value]);
      }));
      if (new Set(states).size === 1) break;
    }
    expect(new Set(states).size).toBe(1);
    // The version counts exactly the successful changes, after the one seed of the new store.
    const [version] = JSON.parse(states[0]!) as [number, unknown];
    expect(version).toBe(1 + codes.filter((s) => s === 200).length);
  });

  it("without Redis every replica keeps serving and refuses changes (503); when it is back the fleet converges", async () => {
    const [a, b] = await startFleet("t3");
    expect((await put(a!, { target: "new" })).status).toBe(200);
    await allServe(fleet, "new");
    await redis.kill();
    // Traffic is untouched; every change is refused, on every replica, with the reason.
    expect(await Promise.all(fleet.map(servedBy))).toEqual(["new", "new", "new"]);
    let refused = await put(b!, { target: "legacy" });
    for (let i = 0; i < 50 && refused.status !== 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      refused = await put(b!, { target: "legacy" });
    }
    expect(refused.status).toBe(503);
    expect(String((json(refused) as { error: string }).error)).toMatch(/the control store redis:\/\/127\.0\.0\.1:\d+\/? is unreachable.*nothing changed on any replica/);
    expect(await Promise.all(fleet.map(servedBy))).toEqual(["new", "new", "new"]);
    const m = parseProm((await send(a!.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get("switchyard_control_store_up")).toBe(0);
    // Back (empty: no persistence): the replicas reseed it and accept changes again, fleet-wide.
    await redis.restart();
    let ok = await put(b!, { target: "legacy" });
    for (let i = 0; i < 100 && ok.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ok = await put(b!, { target: "legacy" });
    }
    expect(ok.status).toBe(200);
    expect(await allServe(fleet, "legacy")).toBeLessThan(2000);
  });
});

describe("control.store: redis, unreachable at start", () => {
  it("starts on the overrides persisted locally, says so, serves, and refuses changes with 503", async () => {
    const port = await closedPort();
    const yaml = `${baseYaml(backends.legacy.url, backends.new.url)}control:\n  store: redis://127.0.0.1:${port}/0\nfeatures:\n  root:\n    routes: [/**]\n    target: legacy\n`;
    const file = configDir("in-place", yaml).file;
    const stateFile = join(mkdtempSync(join(tmpdir(), "sy-fleet-")), "state.json");
    // What the replica persisted the last time it ran: the fleet had moved root to new.
    const { writeState } = await import("../../src/control/state-file.ts");
    writeState(stateFile, new Map([["features.root.target", { value: "new", by: "admin (test)", at: new Date().toISOString() }]]));
    const r = await openControlled(file, { stateFile });
    fleet.push(r);
    expect(r.logs.some((l) => l.level === "warn" && /^control store redis:\/\/127\.0\.0\.1:\d+\/0 unreachable at start: serving the overrides persisted locally/.test(String(l.msg)))).toBe(true);
    expect(await servedBy(r)).toBe("new");
    const status = json(await send(r.admin.url, { path: "/status" })) as { control_store: { kind: string; connected: boolean } };
    expect(status.control_store).toMatchObject({ kind: "redis", connected: false });
    expect((await put(r, { target: "legacy" })).status).toBe(503);
    expect(await servedBy(r)).toBe("new");
    // The admin API is served by this process: the CLI runs beside it, not blocking it.
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const cli = await promisify(execFile)(process.execPath, [new URL("../../src/cli/main.ts", import.meta.url).pathname, "status", "--admin", r.admin.url], { encoding: "utf8" });
    expect(cli.stdout).toMatch(/control store: redis:\/\/127\.0\.0\.1:\d+\/0 version 0, UNREACHABLE.*: serving the last state, changes refused\n/);
  });
});

describe("control.store: redis, the guard", () => {
  let pair: Awaited<ReturnType<typeof failingPair>>;
  beforeAll(async () => {
    pair = await failingPair();
  });
  afterAll(() => pair.close());

  async function guardedFleet(prefix: string, schedule = ""): Promise<Controlled[]> {
    const yaml = `${baseYaml(pair.legacy.url, pair.failing.url)}control:\n  store: ${redis.url}\n  prefix: ${prefix}\nguard:\n  enabled: true\n  interval: 200ms\n  window: 1m\n  min_requests: 50\n  consecutive: 2\n  cooldown: 5m\nfeatures:\n  root:\n    routes: [/**]\n    target: { percent: ${schedule ? 10 : 0} }\n${schedule}`;
    const file = configDir("in-place", yaml).file;
    for (let i = 0; i < 3; i++) fleet.push(await openControlled(file, { stateFile: join(mkdtempSync(join(tmpdir(), "sy-fleet-")), "state.json") }));
    await waitFor(() => fleet.filter((r) => r.cp.leader).length === 1, "one leader", 5000);
    return fleet;
  }

  it("one leader judges the fleet's windows: a breach spread thinly over 3 replicas (20 each, min_requests 50) gives exactly one rollback, on all", async () => {
    const [a] = await guardedFleet("g1");
    expect((await put(a!, { percent: 100 })).status).toBe(200);
    const at100 = (r: Controlled) => JSON.stringify(r.cp.app.snapshot.config.features.root!.target) === JSON.stringify({ percent: 100 });
    await waitFor(() => fleet.every(at100), "percent 100 on every replica");
    for (const r of fleet) for (let i = 0; i < 20; i++) expect((await send(r.url, { path: `/x/${i}` })).status).toBe(500);
    await waitFor(() => fleet.some((r) => r.logs.some((l) => String(l.msg).startsWith("guard: rollback root 100% -> 0%"))), "the rollback", 10_000);
    await new Promise((r) => setTimeout(r, 1500)); // time for a second, wrong one
    const rollbacks = fleet.flatMap((r) => r.logs.filter((l) => String(l.msg).startsWith("guard: rollback")));
    expect(rollbacks).toHaveLength(1);
    const leader = fleet.find((r) => r.cp.leader)!;
    expect(leader.logs).toContain(rollbacks[0]);
    // Each replica alone saw 20 of the 60 requests; the leader judged all 60.
    expect(String(rollbacks[0]!.msg)).toMatch(/\(60\/60\)/);
    await allServe(fleet, "legacy");
  });

  it("a leader that dies (no release) is replaced within the lease, and the new one goes on from its guard state", async () => {
    await guardedFleet("g2", "    schedule:\n      steps: [10, 50, 100]\n      hold: 1h\n");
    const old = fleet.find((r) => r.cp.leader)!;
    const follower = fleet.find((r) => !r.cp.leader)!;
    // Schedules are the leader's: a follower says where to go instead of changing nothing.
    const refused = await send(follower.admin.url, { method: "POST", path: "/features/root/schedule/pause" });
    expect(refused.status).toBe(409);
    expect((json(refused) as { error: string }).error).toMatch(/^this replica does not run the schedules: the fleet's leader does/);
    expect((await send(old.admin.url, { method: "POST", path: "/features/root/schedule/pause" })).status).toBe(200);
    const t0 = Date.now();
    await old.cp.store!.close(); // as a crash: the lease is not given back, it runs out
    await waitFor(() => fleet.some((r) => r !== old && r.cp.leader), "a new leader", 8000);
    const took = Date.now() - t0;
    console.log(`[fleet] leader gone without releasing its 3 s lease: another replica leads after ${took} ms`);
    expect(fleet.filter((r) => r.cp.leader)).toHaveLength(1);
    expect(old.cp.leader).toBe(false);
    const next = fleet.find((r) => r.cp.leader)!;
    expect(next.cp.guard.states.get("root")?.paused).toBe(true); // the pause survived the change of leader
  });
});

describe("control.store: redis, three proxy processes", () => {
  it("`switchyard rollback` against one process: all three route legacy within a second", async () => {
    const { spawn, execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { writeFileSync } = await import("node:fs");
    const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), "sy-fleet-proc-"));
    const file = join(dir, "switchyard.yaml");
    writeFileSync(file, `${baseYaml(backends.legacy.url, backends.new.url)}control:\n  store: ${redis.url}\n  prefix: p1\nfeatures:\n  root:\n    routes: [/**]\n    target: new\n`);
    const procs = await Promise.all(
      [1, 2, 3].map(
        (i) =>
          new Promise<{ child: import("node:child_process").ChildProcess; url: string; admin: string }>((resolve, reject) => {
            const child = spawn(process.execPath, [cli, "start", "-c", file, "--state-file", join(dir, `state-${i}.json`)], { stdio: ["ignore", "pipe", "inherit"] });
            let out = "";
            child.stdout!.on("data", (d: Buffer) => {
              out += d.toString();
              const url = /"listeners":\["([^"]+)"\]/.exec(out)?.[1];
              const admin = /"admin":"([^"]+)"/.exec(out)?.[1];
              if (url && admin) {
                child.stdout!.removeAllListeners("data");
                child.stdout!.resume();
                resolve({ child, url, admin });
              }
            });
            child.once("exit", (code) => reject(new Error(`replica ${i} exited ${code}: ${out}`)));
          }),
      ),
    );
    try {
      const serve = async () => Promise.all(procs.map(async (p) => (json(await send(p.url, { path: "/x" })) as { backend: string }).backend));
      expect(await serve()).toEqual(["new", "new", "new"]);
      const r = await promisify(execFile)(process.execPath, [cli, "rollback", "--admin", procs[0]!.admin], { encoding: "utf8" });
      expect(r.stdout).toMatch(/kill switch/i);
      const t0 = performance.now();
      let seen = await serve();
      while (!seen.every((b) => b === "legacy") && performance.now() - t0 < 5000) seen = await serve();
      const ms = Math.round(performance.now() - t0);
      console.log(`[fleet] switchyard rollback via process 1: all three processes route legacy ${ms} ms later`);
      expect(seen).toEqual(["legacy", "legacy", "legacy"]);
      expect(ms).toBeLessThan(1000);
    } finally {
      await Promise.all(procs.map((p) => new Promise((res) => {
        p.child.once("exit", res);
        p.child.kill("SIGTERM");
      })));
    }
  });
});
