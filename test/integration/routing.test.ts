// The routing decision through the real proxy, with two real backends that stamp which one answered,
// and the example deployments in config/examples/ behaving as their guides describe.
import { afterEach, describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { spawnProxyFile, stampingBackends, startProxy, startProxyFromFile, type TestProxy } from "../helpers/servers.ts";

const example = (name: string) => new URL(`../../config/examples/${name}.yaml`, import.meta.url).pathname;

let backends: Awaited<ReturnType<typeof stampingBackends>>;
let proxy: TestProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await backends?.close();
});

async function withExample(name: string, env: Record<string, string>): Promise<TestProxy> {
  backends ??= await stampingBackends();
  await proxy?.close();
  proxy = await startProxyFromFile(example(name), { LEGACY_URL: backends.legacy.url, NEW_URL: backends.new.url, ...env });
  return proxy;
}

async function whoAnswers(p: TestProxy, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<string> {
  const res = await send(p.url, { path, headers, method });
  expect(res.status).toBe(200);
  return json(res).backend as string;
}

describe("rotki example: per-endpoint flags under ASYNC_MODE", () => {
  it("disabled (the default) keeps everything on legacy", async () => {
    backends = await stampingBackends();
    const p = await withExample("rotki", { ASYNC_FEATURE_PING: "true" });
    expect(await whoAnswers(p, "/api/1/ping")).toBe("legacy");
  });

  it("pilot moves only enabled pilot endpoints", async () => {
    backends = await stampingBackends();
    const p = await withExample("rotki", { ASYNC_MODE: "pilot", ASYNC_FEATURE_PING: "true", ASYNC_FEATURE_INFO: "true", ASYNC_FEATURE_HISTORY_ENDPOINTS: "true" });
    expect(await whoAnswers(p, "/api/1/ping")).toBe("new");
    expect(await whoAnswers(p, "/api/1/info")).toBe("new");
    expect(await whoAnswers(p, "/api/1/settings")).toBe("legacy"); // pilot endpoint, flag off
    expect(await whoAnswers(p, "/api/1/history/events")).toBe("legacy"); // flag on, not a pilot endpoint
    expect(await whoAnswers(p, "/api/1/assets")).toBe("legacy"); // no feature
  });

  it("mixed moves every enabled endpoint; full moves everything; the kill switch brings all back", async () => {
    backends = await stampingBackends();
    let p = await withExample("rotki", { ASYNC_MODE: "mixed", ASYNC_FEATURE_PING: "true", ASYNC_FEATURE_HISTORY_ENDPOINTS: "true", ASYNC_FEATURE_TRANSACTIONS: "true" });
    expect(await whoAnswers(p, "/api/1/history/events")).toBe("new");
    expect(await whoAnswers(p, "/api/1/blockchains/eth/transactions/0xabc")).toBe("new");
    expect(await whoAnswers(p, "/api/1/settings")).toBe("legacy");
    expect(await whoAnswers(p, "/api/1/./ping")).toBe("new"); // normalised before matching
    p = await withExample("rotki", { ASYNC_MODE: "full" });
    expect(await whoAnswers(p, "/api/1/assets")).toBe("new");
    p = await withExample("rotki", { ASYNC_MODE: "full", SWITCHYARD_KILL_SWITCH: "true" });
    expect(await whoAnswers(p, "/api/1/assets")).toBe("legacy");
  });
});

describe("reports example: master toggle + percentage by user hash", () => {
  const users = Array.from({ length: 300 }, (_, i) => `user-${i}`);

  async function split(p: TestProxy): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const u of users) out.set(u, await whoAnswers(p, "/api/1/reports/daily", { "x-user-id": u }));
    return out;
  }

  it("puts about the given share of users on new, each user sticky across requests and a restart", async () => {
    backends = await stampingBackends();
    let p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "25" });
    const first = await split(p);
    const share = [...first.values()].filter((b) => b === "new").length / users.length;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.32);
    for (const u of users.slice(0, 30)) expect(await whoAnswers(p, `/api/1/reports/x?n=${u}`, { "x-user-id": u })).toBe(first.get(u));

    p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "25" }); // a new process-equivalent: fresh snapshot, pools, everything
    expect(await split(p)).toEqual(first);
  });

  it("keeps every user on the same backend across a real process restart", async () => {
    backends = await stampingBackends();
    const env = { LEGACY_URL: backends.legacy.url, NEW_URL: backends.new.url, ASYNC_ROLLOUT_PERCENTAGE: "40", SWITCHYARD_PORT: "0", SWITCHYARD_ADMIN_PORT: "0" };
    const once = async () => {
      const proc = await spawnProxyFile(example("reports"), env);
      const seen = new Map<string, string>();
      for (const u of users.slice(0, 100)) seen.set(u, json(await send(proc.url, { path: "/api/1/reports/r", headers: { "x-user-id": u } })).backend as string);
      expect(await proc.stop()).toBe(0);
      return seen;
    };
    const before = await once();
    const after = await once();
    expect(after).toEqual(before);
    expect(new Set(before.values())).toEqual(new Set(["legacy", "new"]));
  });

  it("raising the percentage only moves users to new; the master toggle sends all back", async () => {
    backends = await stampingBackends();
    let p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "10" });
    const at10 = await split(p);
    p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "50" });
    const at50 = await split(p);
    for (const u of users) if (at10.get(u) === "new") expect(at50.get(u), u).toBe("new");
    expect([...at50.values()].filter((b) => b === "new").length).toBeGreaterThan([...at10.values()].filter((b) => b === "new").length);
    p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "50", ENABLE_ASYNC_REPORTS: "false" });
    expect([...(await split(p)).values()].every((b) => b === "legacy")).toBe(true);
  });

  it("identifies users by query parameter too", async () => {
    backends = await stampingBackends();
    const p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "50" });
    const byHeader = await whoAnswers(p, "/api/1/reports/a", { "x-user-id": "user-7" });
    expect(await whoAnswers(p, "/api/1/reports/a?user_id=user-7")).toBe(byHeader);
  });

  it("gives an anonymous browser a sticky id cookie (never a backend) and keeps it on one backend", async () => {
    backends = await stampingBackends();
    const p = await withExample("reports", { ASYNC_ROLLOUT_PERCENTAGE: "50" });
    const first = await send(p.url, { path: "/api/1/reports/a" });
    const cookie = (first.headers["set-cookie"] ?? [])[0]!;
    expect(cookie).toMatch(/^sy_uid=[0-9a-f-]{36}; Path=\/; Max-Age=31536000; SameSite=Lax; HttpOnly$/);
    expect(cookie).not.toMatch(/legacy|new/);
    const jar = cookie.split(";")[0]!;
    const backend = json(first).backend;
    for (let i = 0; i < 10; i++) {
      const res = await send(p.url, { path: `/api/1/reports/${i}`, headers: { cookie: jar } });
      expect(json(res).backend).toBe(backend);
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
  });
});

describe("agent example: USE_ASYNC_AGENT on/off", () => {
  it("routes everything by the switch", async () => {
    backends = await stampingBackends();
    let p = await withExample("agent", {});
    expect(await whoAnswers(p, "/chat/123", {}, "POST")).toBe("legacy");
    p = await withExample("agent", { USE_ASYNC_AGENT: "true" });
    expect(await whoAnswers(p, "/chat/123", {}, "POST")).toBe("new");
    expect(await whoAnswers(p, "/")).toBe("new");
  });
});

describe("nginx-weights example: 70/30 per request", () => {
  it("splits anonymous requests about 70/30", async () => {
    backends = await stampingBackends();
    const p = await withExample("nginx-weights", {});
    let onNew = 0;
    const n = 600;
    for (let i = 0; i < n; i++) if ((await whoAnswers(p, `/api/1/x${i}`)) === "new") onNew++;
    expect(onNew / n).toBeGreaterThan(0.24);
    expect(onNew / n).toBeLessThan(0.36);
    expect(p.accessLogs().filter((l) => l.reason === "weighted")).toHaveLength(n);
  });
});

describe("decision header and access log", () => {
  it("shows the decision when asked, logs feature and reason, and never forwards the force header", async () => {
    backends = await stampingBackends();
    proxy = await startProxy(
      "routing:\n  decision_header: true\n  force:\n    enabled: true\n    trusted_cidrs: [127.0.0.1]\nfeatures:\n  ping:\n    routes: ['GET /ping']\n    target: new\n",
      backends.legacy.url,
      backends.new.url,
    );
    const res = await send(proxy.url, { path: "/ping" });
    expect(res.headers["x-switchyard-decision"]).toBe("backend=new; reason=feature_target; feature=ping");
    expect(proxy.accessLogs()[0]).toMatchObject({ backend: "new", feature: "ping", reason: "feature_target" });
    const forced = await send(proxy.url, { path: "/ping", headers: { "x-switchyard-backend": "legacy" } });
    expect(json(forced).backend).toBe("legacy");
    expect(forced.headers["x-switchyard-decision"]).toBe("backend=legacy; reason=forced");
    expect(backends.legacy.seen.at(-1)!.headers["x-switchyard-backend"]).toBeUndefined();
  });
});
