// The guard on a real proxy: a new backend that starts failing 20 % of requests mid-run is rolled
// back within the window, once; users land on legacy afterwards; the audit log and a webhook say why.
// And a progressive schedule that advances, pauses, waits for approval and survives a restart.
import { describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, closeAfterEach, configDir, type Controlled, loadLoop, openControlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startBackend, waitFor, type TestBackend } from "../helpers/servers.ts";

let running: Controlled | undefined;
const servers: TestBackend[] = [];
closeAfterEach(() => running, () => (running = undefined), servers);

/** A backend stamping its name that fails `failRate` of requests with 500 (changeable at run time). */
async function flaky(name: string) {
  const control = { failRate: 0, n: 0 };
  const b = await startBackend((req, res) => {
    req.resume();
    const fail = control.failRate > 0 && control.n++ % Math.round(1 / control.failRate) === 0;
    res.writeHead(fail ? 500 : 200, { "content-type": "application/json" }).end(JSON.stringify({ backend: name }));
  });
  servers.push(b);
  return { backend: b, control };
}

describe("guard", () => {
  it("rolls a feature back to legacy when the new backend's error rate jumps to 20 %, once, and says why", async () => {
    const legacy = await flaky("legacy");
    const neu = await flaky("new");
    const hooks: unknown[] = [];
    const receiver = await startBackend((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        hooks.push(JSON.parse(Buffer.concat(chunks).toString()));
        res.writeHead(204).end();
      });
    });
    servers.push(receiver);
    const yaml = `${baseYaml(legacy.backend.url, neu.backend.url)}guard:
  enabled: true
  interval: 200ms
  window: 1m
  min_requests: 50
  consecutive: 2
  cooldown: 5m
  webhooks: ["${receiver.url}/hook"]
  webhook_retries: 1
features:
  reports:
    routes: [/api/reports/**]
    target: { percent: 100 }
`;
    running = await openControlled(configDir("in-place", yaml).file);
    const { cp } = running;
    const load = loadLoop(running.url, { concurrency: 8, users: 300, path: "/api/reports/daily", maxMs: 30_000, maxRequests: 1_000_000 });
    await waitFor(() => load.samples.length > 2000, "healthy traffic");
    await new Promise((r) => setTimeout(r, 600)); // a few healthy evaluations
    expect(cp.overrides.size).toBe(0);
    expect((json(await send(running.admin.url, { path: "/guard" })).reports as { last_evaluation: { judged: boolean; breaches: string[] } }).last_evaluation).toMatchObject({ judged: true, breaches: [] });

    const broke = Date.now();
    neu.control.failRate = 0.2;
    await waitFor(() => cp.overrides.get("features.reports.percent")?.value === 0, "the rollback", 20_000);
    const rolledBack = Date.parse(cp.overrides.get("features.reports.percent")!.at);
    const reaction = rolledBack - broke;
    const after = performance.now();
    await new Promise((r) => setTimeout(r, 1000)); // more evaluations: no second action
    const samples = await load.stop();

    // Every request that started after the rollback went to legacy, and succeeded.
    const later = samples.filter((s) => s.start > after);
    expect(later.length).toBeGreaterThan(100);
    expect(later.filter((s) => s.backend !== "legacy")).toEqual([]);
    expect(later.filter((s) => s.status !== 200)).toEqual([]);

    // Why: the audit line with the numbers, the status, the metrics, the webhook.
    const audit = running.logs.find((l) => String(l.msg).startsWith("guard: rollback reports 100% -> 0%"))!;
    expect(audit).toBeDefined();
    const a = audit.audit as { who: string; reason: string; numbers: { window: string; new: { requests: number; errors: number } } };
    expect(a.who).toBe("guard");
    expect(a.reason).toMatch(/^new error rate \d+\.\d\d % > 1\.00 % and > legacy 0\.00 % \+ 0\.50 % \(\d+\/\d+\)$/);
    expect(a.numbers.window).toBe("1m");
    expect(a.numbers.new.errors).toBeGreaterThan(0);
    expect(running.logs.filter((l) => String(l.msg).startsWith("guard: "))).toHaveLength(1);
    const m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get('switchyard_guard_actions_total{feature="reports",kind="rollback"}')).toBe(1);
    expect(m.get('switchyard_feature_new_percent{feature="reports"}')).toBe(0);
    const status = json(await send(running.admin.url, { path: "/status" })) as { features: { reports: { target: { value: unknown; source: string; set_by: string } } } };
    expect(status.features.reports.target).toMatchObject({ value: { percent: 0 }, source: "override", set_by: "guard" });
    await waitFor(() => hooks.length === 1, "the webhook");
    expect(hooks[0]).toMatchObject({ event: "switchyard.rollback", feature: "reports", from_percent: 100, to_percent: 0, by: "guard", numbers: { window: "1m" } });
    expect((hooks[0] as { reason: string }).reason).toMatch(/new error rate/);
    console.log(`[guard] error rate 0 % -> 20 % at t0; rollback applied ${reaction} ms later (interval 200 ms, consecutive 2, window 1m); ${later.length} later requests all on legacy`);
    expect(reaction).toBeLessThan(10_000);
  });

  it("a webhook receiver that fails never delays or blocks the action", async () => {
    const legacy = await flaky("legacy");
    const neu = await flaky("new");
    const hung = await startBackend(() => {}); // never answers
    servers.push(hung);
    neu.control.failRate = 0.5;
    const yaml = `${baseYaml(legacy.backend.url, neu.backend.url)}guard:
  enabled: true
  interval: 100ms
  min_requests: 20
  consecutive: 1
  webhooks: ["${hung.url}/hook", "http://127.0.0.1:1/refused"]
  webhook_timeout: 200ms
  webhook_retries: 1
features:
  reports:
    routes: [/api/reports/**]
    target: { percent: 100 }
`;
    running = await openControlled(configDir("in-place", yaml).file);
    running.cp.guard.webhookBackoffMs = 50;
    for (let i = 0; i < 40; i++) await send(running.url, { path: "/api/reports/x", headers: { "x-user-id": `u${i}` } });
    await waitFor(() => running!.cp.overrides.get("features.reports.percent")?.value === 0, "the rollback");
    await waitFor(() => running!.logs.filter((l) => String(l.msg).startsWith("guard webhook")).length === 2, "both webhooks to give up");
    expect(running.logs.filter((l) => String(l.msg).startsWith("guard webhook")).map((l) => l.attempts)).toEqual([2, 2]);
  });
});

describe("progressive schedule", () => {
  const yaml = (legacy: string, neu: string, approval: string) => `${baseYaml(legacy, neu)}guard:
  enabled: true
  interval: 100ms
  min_requests: 20
features:
  reports:
    routes: [/api/reports/**]
    target: { percent: 10 }
    schedule:
      steps: [10, 50, 100]
      hold: 300ms
      approval: ${approval}
`;

  it("advances step by step while the gates pass; pause stops it; the state survives a restart", async () => {
    const legacy = await flaky("legacy");
    const neu = await flaky("new");
    const { file } = configDir("in-place", yaml(legacy.backend.url, neu.backend.url, "auto"));
    running = await openControlled(file);
    const load = loadLoop(running.url, { concurrency: 4, users: 500, path: "/api/reports/x", maxMs: 20_000, maxRequests: 1_000_000 });
    await waitFor(() => running!.cp.overrides.get("features.reports.percent")?.value === 50, "the step to 50 %", 10_000);
    const res = await send(running.admin.url, { method: "POST", path: "/features/reports/schedule/pause" });
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 800)); // longer than the hold: still 50 while paused
    expect(running.cp.overrides.get("features.reports.percent")?.value).toBe(50);
    expect(running.logs.filter((l) => String(l.msg).startsWith("schedule: advance reports")).map((l) => l.msg)).toEqual([expect.stringMatching(/^schedule: advance reports 10% -> 50%: held \d+ s at 10 % with \d+ new requests/)]);

    // Restart: still at 50 %, still paused.
    const before = await load.stop();
    expect(before.filter((s) => s.status !== 200)).toEqual([]);
    await running.close();
    running = await openControlled(file);
    await new Promise((r) => setTimeout(r, 600));
    expect(running.cp.overrides.get("features.reports.percent")?.value).toBe(50);
    expect((json(await send(running.admin.url, { path: "/guard" })).reports as { schedule: { paused: boolean; next: number } }).schedule).toMatchObject({ paused: true, next: 100 });
    expect((await send(running.admin.url, { method: "POST", path: "/features/reports/schedule/resume" })).status).toBe(200);
    const load2 = loadLoop(running.url, { concurrency: 4, users: 500, path: "/api/reports/x", maxMs: 20_000, maxRequests: 1_000_000 });
    await waitFor(() => running!.cp.overrides.get("features.reports.percent")?.value === 100, "the step to 100 %", 10_000);
    expect((await load2.stop()).filter((s) => s.status !== 200)).toEqual([]);
  });

  it("manual approval: waits, then advances once approved (API), refuses to approve a paused schedule", async () => {
    const legacy = await flaky("legacy");
    const neu = await flaky("new");
    running = await openControlled(configDir("in-place", yaml(legacy.backend.url, neu.backend.url, "manual")).file);
    const load = loadLoop(running.url, { concurrency: 4, users: 500, path: "/api/reports/x", maxMs: 20_000, maxRequests: 1_000_000 });
    await waitFor(() => running!.cp.guard.states.get("reports")?.awaiting === true, "the approval wait", 10_000);
    expect(running.cp.overrides.size).toBe(0);
    const m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get('switchyard_schedule_awaiting_approval{feature="reports"}')).toBe(1);
    expect((await send(running.admin.url, { method: "POST", path: "/features/reports/schedule/approve" })).status).toBe(200);
    await waitFor(() => running!.cp.overrides.get("features.reports.percent")?.value === 50, "the approved step", 10_000);
    expect(running.cp.overrides.get("features.reports.percent")?.by).toBe("schedule");
    expect((await send(running.admin.url, { method: "POST", path: "/features/reports/schedule/pause" })).status).toBe(200);
    const refused = await send(running.admin.url, { method: "POST", path: "/features/reports/schedule/approve" });
    expect(refused.status).toBe(409);
    expect(json(refused).error).toMatch(/paused; resume it first/);
    expect((await send(running.admin.url, { method: "POST", path: "/features/nope/schedule/pause" })).status).toBe(404);
    await load.stop();
  });
});
