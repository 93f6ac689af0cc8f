// Several replicas sharing one rollout through a real Redis (control.store), each replica its own
// `switchyard start` process: a change on any replica reaches all within a second; concurrent changes
// settle on one state everywhere; losing Redis keeps traffic flowing and refuses changes, and when it
// is back the fleet converges; one leader judges the fleet's windows, and a crashed leader is
// replaced within the lease.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { writeState } from "../../src/control/state-file.ts";
import { json, send } from "../helpers/client.ts";
import { baseYaml } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startRedis, type RedisServer } from "../helpers/redis.ts";
import { spawnReplica, type Replica } from "../helpers/replica.ts";
import { closedPort, failingPair, stampingBackends } from "../helpers/servers.ts";

const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
let redis: RedisServer;
let backends: Awaited<ReturnType<typeof stampingBackends>>;
let pair: Awaited<ReturnType<typeof failingPair>>;
let fleet: Replica[] = [];

beforeAll(async () => {
  redis = await startRedis();
  backends = await stampingBackends();
  pair = await failingPair();
});
afterAll(async () => {
  await redis.stop();
  await backends.close();
  await pair.close();
});
afterEach(async () => {
  await Promise.all(fleet.map((r) => r.stop()));
  fleet = [];
});

/** Three processes of one config file, each with its own state file, sharing `prefix` in Redis. */
async function startFleet(yaml: string): Promise<Replica[]> {
  const dir = mkdtempSync(join(tmpdir(), "sy-fleet-"));
  const file = join(dir, "switchyard.yaml");
  writeFileSync(file, yaml);
  const started = await Promise.allSettled([1, 2, 3].map((i) => spawnReplica(file, join(dir, `state-${i}.json`))));
  for (const s of started) if (s.status === "fulfilled") fleet.push(s.value);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;
  return fleet;
}

const storeYaml = (prefix: string, legacy = backends.legacy.url, neu = backends.new.url) => `${baseYaml(legacy, neu)}control:\n  store: ${redis.url}\n  prefix: ${prefix}\n`;
const rootYaml = (prefix: string, target = "legacy") => `${storeYaml(prefix)}features:\n  root:\n    routes: [/**]\n    target: ${target}\n`;

type Status = { control_store: { version: number; connected: boolean; leader: boolean; replicas: { id: string; leader: boolean; listeners: string[]; admin: string | null; config_hash: string; version: number }[] }; features: { root: { target: { value: unknown } } }; guard: { root?: { state: { paused: boolean } | null } } };
const status = async (r: Replica) => json(await send(r.admin, { path: "/status" })) as Status;
const servedBy = async (r: Replica) => (json(await send(r.url, { path: "/x" })) as { backend: string }).backend;
const put = (r: Replica, body: unknown) => send(r.admin, { method: "PUT", path: "/features/root", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with ms taken once every replica serves from `backend`, or rejects after 5 s. */
async function allServe(replicas: Replica[], backend: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const seen = await Promise.all(replicas.map(servedBy));
    if (seen.every((b) => b === backend)) return Math.round(performance.now() - t0);
    if (performance.now() - t0 > 5000) throw new Error(`replicas serve ${seen.join(", ")}, not all ${backend}`);
    await sleep(20);
  }
}

/** Poll until `cond` holds (async), or fail after `ms` saying what was awaited. */
async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - t0;
}

const leaders = async (replicas: Replica[]) => (await Promise.all(replicas.map(status))).flatMap((s, i) => (s.control_store.leader ? [replicas[i]!] : []));

describe("control.store: redis, three processes", () => {
  it("a change on one replica reaches all three within a second; `switchyard rollback` against another brings all back; each lists the fleet", async () => {
    const [a, b, c] = await startFleet(rootYaml("t1"));
    expect(await Promise.all(fleet.map(servedBy))).toEqual(["legacy", "legacy", "legacy"]);
    expect((await put(a!, { target: "new" })).status).toBe(200);
    const forward = await allServe(fleet, "new");
    const r = await promisify(execFile)(process.execPath, [cli, "rollback", "--admin", b!.admin], { encoding: "utf8" });
    expect(r.stdout).toMatch(/kill switch/i);
    const back = await allServe(fleet, "legacy");
    console.log(`[fleet] change via process 1 on all three after ${forward} ms; switchyard rollback via process 2 on all three after ${back} ms`);
    expect(forward).toBeLessThan(1000);
    expect(back).toBeLessThan(1000);
    // Every replica lists the three, with where they serve, what they run and the state version.
    await until(async () => (await status(c!)).control_store.replicas.length === 3, "three replicas heard from");
    const s = await status(c!);
    expect(s.control_store.replicas.map((x) => x.admin).sort()).toEqual(fleet.map((x) => x.admin).sort());
    expect(s.control_store.replicas.map((x) => x.listeners[0]).sort()).toEqual(fleet.map((x) => x.url).sort());
    expect(new Set(s.control_store.replicas.map((x) => x.config_hash)).size).toBe(1);
    await until(async () => (await status(c!)).control_store.replicas.every((x) => x.version === s.control_store.version), "every replica on the store's version");
    const text = (await promisify(execFile)(process.execPath, [cli, "status", "--admin", c!.admin], { encoding: "utf8" })).stdout;
    expect(text).toMatch(/fleet: 3 replicas heard from; this one /);
    for (const x of fleet) expect(text).toContain(`${x.url} admin ${x.admin}  config file `);
    expect(text).not.toMatch(/WARNING/);
    // A fourth replica on another config file joins: every replica warns.
    const dir = mkdtempSync(join(tmpdir(), "sy-fleet-"));
    writeFileSync(join(dir, "other.yaml"), `${rootYaml("t1")}# edited on one machine only\n`);
    fleet.push(await spawnReplica(join(dir, "other.yaml"), join(dir, "state.json")));
    await until(async () => (json(await send(c!.admin, { path: "/status" })) as { control_store: { config_hashes_differ: boolean } }).control_store.config_hashes_differ, "the warning on replica 3");
    const warned = (await promisify(execFile)(process.execPath, [cli, "status", "--admin", c!.admin], { encoding: "utf8" })).stdout;
    expect(warned, warned).toMatch(/fleet: 4 replicas heard from; this one \S+( \(leader: runs the guard\))?; WARNING: replicas run different configs/);
  });

  it("50 concurrent changes spread over the replicas settle on one state on all of them; losers get 409 with the state that won", async () => {
    await startFleet(rootYaml("t2"));
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => put(fleet[i % 3]!, { percent: i + 1 })));
    const codes = answers.map((r) => r.status);
    expect(codes.every((s) => s === 200 || s === 409)).toBe(true);
    expect(codes.filter((s) => s === 200).length).toBeGreaterThan(0);
    const lost = answers.find((r) => r.status === 409);
    if (lost) expect(String((json(lost) as { error: string }).error)).toMatch(/another change reached the control store first \(now version \d+\); nothing of yours was applied/);
    let states: string[] = [];
    await until(async () => {
      states = (await Promise.all(fleet.map(status))).map((s) => JSON.stringify([s.control_store.version, s.features.root.target.value]));
      return new Set(states).size === 1;
    }, "one state on all three", 3000);
    // The version counts exactly the successful changes, after the one seed of the new store, and
    // the state is the one of the last change that won.
    const [version, target] = JSON.parse(states[0]!) as [number, { percent: number }];
    expect(version).toBe(1 + codes.filter((s) => s === 200).length);
    const won = answers.flatMap((r, i) => (r.status === 200 ? [i + 1] : []));
    expect(won).toContain(target.percent);
  });

  it("Redis killed: every replica keeps serving and refuses changes (503, metric, log); Redis back: the fleet converges", async () => {
    const [a, b] = await startFleet(rootYaml("t3"));
    expect((await put(a!, { target: "new" })).status).toBe(200);
    await allServe(fleet, "new");
    await redis.kill();
    // Traffic is untouched; every change is refused, on every replica, with the reason.
    expect(await Promise.all(fleet.map(servedBy))).toEqual(["new", "new", "new"]);
    let refused = await put(b!, { target: "legacy" });
    await until(async () => (refused = await put(b!, { target: "legacy" })).status === 503, "a 503 for a change");
    expect(String((json(refused) as { error: string }).error)).toMatch(/the control store redis:\/\/127\.0\.0\.1:\d+\/? is unreachable.*nothing changed on any replica/);
    for (const r of fleet) expect((await put(r, { target: "legacy" })).status).toBe(503);
    expect(await Promise.all(fleet.map(servedBy))).toEqual(["new", "new", "new"]);
    const m = parseProm((await send(a!.admin, { path: "/metrics" })).body.toString());
    expect(m.get("switchyard_control_store_up")).toBe(0);
    expect((await status(a!)).control_store.connected).toBe(false);
    const lostLine = (l: Record<string, unknown>) => l.level === "warn" && /^control store redis:\/\/127\.0\.0\.1:\d+\/? unreachable \(.+\): serving the last state \(version \d+\); admin changes are refused until it is back$/.test(String(l.msg));
    await until(() => fleet.every((r) => r.logs.filter(lostLine).length === 1), "one warning from each replica");
    // Back (empty: no persistence): the replicas reseed it and accept changes again, fleet-wide.
    await redis.restart();
    let ok = await put(b!, { target: "legacy" });
    await until(async () => (ok = await put(b!, { target: "legacy" })).status === 200, "a change accepted again", 10_000);
    const converged = await allServe(fleet, "legacy");
    console.log(`[fleet] Redis back: change via process 2 on all three after ${converged} ms`);
    expect(converged).toBeLessThan(2000);
    await until(async () => new Set((await Promise.all(fleet.map(status))).map((s) => s.control_store.version)).size === 1, "one version on all three");
    await until(() => fleet.every((r) => r.logs.some((l) => l.level === "info" && /^control store \S+ reachable again/.test(String(l.msg)))), "each replica saying the store is back");
  });

  it("unreachable at start: starts on the overrides persisted locally, says so, serves, and refuses changes with 503", async () => {
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), "sy-fleet-"));
    const file = join(dir, "switchyard.yaml");
    writeFileSync(file, `${baseYaml(backends.legacy.url, backends.new.url)}control:\n  store: redis://127.0.0.1:${port}/0\nfeatures:\n  root:\n    routes: [/**]\n    target: legacy\n`);
    // What the replica persisted the last time it ran: the fleet had moved root to new.
    const stateFile = join(dir, "state.json");
    writeState(stateFile, new Map([["features.root.target", { value: "new", by: "admin (test)", at: new Date().toISOString() }]]));
    const r = await spawnReplica(file, stateFile);
    fleet.push(r);
    expect(r.logs.some((l) => l.level === "warn" && /^control store redis:\/\/127\.0\.0\.1:\d+\/0 unreachable at start: serving the overrides persisted locally/.test(String(l.msg)))).toBe(true);
    expect(await servedBy(r)).toBe("new");
    expect((await status(r)).control_store).toMatchObject({ connected: false });
    expect((await put(r, { target: "legacy" })).status).toBe(503);
    expect(await servedBy(r)).toBe("new");
    const text = (await promisify(execFile)(process.execPath, [cli, "status", "--admin", r.admin], { encoding: "utf8" })).stdout;
    expect(text).toMatch(/control store: redis:\/\/127\.0\.0\.1:\d+\/0 version 0, UNREACHABLE.*: serving the last state, changes refused\n/);
  });
});

describe("control.store: redis, the guard over three processes", () => {
  const guardedYaml = (prefix: string, schedule = "") =>
    `${storeYaml(prefix, pair.legacy.url, pair.failing.url)}guard:\n  enabled: true\n  interval: 200ms\n  window: 1m\n  min_requests: 50\n  consecutive: 2\n  cooldown: 5m\nfeatures:\n  root:\n    routes: [/**]\n    target: { percent: ${schedule ? 10 : 0} }\n${schedule}`;

  it("one leader judges the fleet's windows: a breach spread thinly over 3 replicas (20 each, min_requests 50) gives exactly one rollback, on all", async () => {
    const [a] = await startFleet(guardedYaml("g1"));
    await until(async () => (await leaders(fleet)).length === 1, "one leader");
    expect((await put(a!, { percent: 100 })).status).toBe(200);
    await until(async () => (await Promise.all(fleet.map(status))).every((s) => JSON.stringify(s.features.root.target.value) === JSON.stringify({ percent: 100 })), "percent 100 on every replica");
    for (const r of fleet) for (let i = 0; i < 20; i++) expect((await send(r.url, { path: `/x/${i}` })).status).toBe(500);
    const isRollback = (l: Record<string, unknown>) => String(l.msg).startsWith("guard: rollback");
    await until(() => fleet.some((r) => r.logs.some(isRollback)), "the rollback", 10_000);
    await sleep(1500); // time for a second, wrong one
    const rollbacks = fleet.flatMap((r) => r.logs.filter(isRollback));
    expect(rollbacks).toHaveLength(1);
    const [leader] = await leaders(fleet);
    expect(leader!.logs).toContain(rollbacks[0]);
    // Each replica alone saw 20 of the 60 requests; the leader judged all 60.
    expect(String(rollbacks[0]!.msg)).toMatch(/\(60\/60\)/);
    await allServe(fleet, "legacy");
    // One entry in the fleet's audit trail, the same on every replica.
    const audits = await Promise.all(fleet.map(async (r) => (json(await send(r.admin, { path: "/audit" })) as { entries: { who: string }[] }).entries.filter((e) => e.who === "guard")));
    expect(audits.map((x) => x.length)).toEqual([1, 1, 1]);
  });

  it("the shadow rule on the fleet's compared pairs: mismatches spread over 3 replicas (12 each, shadow_min_pairs 30) give exactly one rollback", async () => {
    const store = mkdtempSync(join(tmpdir(), "sy-fleet-shadow-"));
    const yaml = `${storeYaml("g3")}shadow:\n  enabled: true\n  percent: 100\n  noise:\n    percent: 0\n  store:\n    path: ${join(store, "shadow.db")}\nguard:\n  enabled: true\n  interval: 200ms\n  window: 1m\n  consecutive: 1\n  cooldown: 5m\n  shadow_mismatch_above: 10\n  shadow_min_pairs: 30\nfeatures:\n  root:\n    routes: [/**]\n    target: { percent: 50 }\n`;
    await startFleet(yaml);
    await until(async () => (await leaders(fleet)).length === 1, "one leader");
    // The two backends stamp their name in every answer: each mirrored pair differs.
    for (const r of fleet) for (let i = 0; i < 12; i++) expect((await send(r.url, { path: `/s/${i}` })).status).toBe(200);
    const isRollback = (l: Record<string, unknown>) => String(l.msg).startsWith("guard: rollback root 50% -> 0%");
    await until(() => fleet.some((r) => r.logs.some(isRollback)), "the rollback", 10_000);
    await sleep(1000);
    const rollbacks = fleet.flatMap((r) => r.logs.filter(isRollback));
    expect(rollbacks).toHaveLength(1);
    // Judged as soon as the fleet had 30 pairs; no replica alone ever had more than 12.
    const [, pairs, of] = /shadow mismatch rate 100\.00 % > 10\.00 % \((\d+)\/(\d+) pairs\)/.exec(String(rollbacks[0]!.msg)) ?? [];
    expect(Number(pairs)).toBe(Number(of));
    expect(Number(pairs)).toBeGreaterThanOrEqual(30);
  });

  it("a crashed leader (SIGKILL, lease not given back) is replaced within the lease, and the new one goes on from its guard state", async () => {
    await startFleet(guardedYaml("g2", "    schedule:\n      steps: [10, 50, 100]\n      hold: 1h\n"));
    await until(async () => (await leaders(fleet)).length === 1, "one leader");
    const [old] = await leaders(fleet);
    const follower = fleet.find((r) => r !== old)!;
    // Schedules are the leader's: a follower says where to go instead of changing nothing.
    const refused = await send(follower.admin, { method: "POST", path: "/features/root/schedule/pause" });
    expect(refused.status).toBe(409);
    expect((json(refused) as { error: string }).error).toMatch(/^this replica does not run the schedules: the fleet's leader does/);
    expect((await send(old!.admin, { method: "POST", path: "/features/root/schedule/pause" })).status).toBe(200);
    const t0 = Date.now();
    await old!.crash();
    const survivors = fleet.filter((r) => r !== old);
    fleet = survivors;
    await until(async () => (await leaders(survivors)).length === 1, "a new leader", 8000);
    const took = Date.now() - t0;
    console.log(`[fleet] leader process killed (SIGKILL, 3 s lease not released): another process leads after ${took} ms`);
    expect(took).toBeLessThan(3000 + 1500); // the lease, and one reconcile tick to take it
    const [next] = await leaders(survivors);
    expect((await status(next!)).guard.root?.state?.paused).toBe(true); // the pause survived the change of leader
    // The dead replica drops out of the fleet view once its heartbeats stop.
    await until(async () => (await status(next!)).control_store.replicas.length === 2, "the dead replica gone from the list", 8000);
  });
});
