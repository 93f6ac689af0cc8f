// The admin page in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core): it
// loads behind the token, shows per-backend numbers that move while traffic flows, and changing a
// percent or rolling back through it (confirm step accepted) changes routing.
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, loadLoop, openControlled, type Controlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { stampingBackends, waitFor } from "../helpers/servers.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[admin-page] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

const TOKEN = "page-token";
let browser: Browser | undefined;
let backends: Awaited<ReturnType<typeof stampingBackends>> | undefined;
let running: Controlled | undefined;

beforeAll(async () => {
  if (haveChromium) browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await running?.close();
  running = undefined;
  await backends?.close();
  backends = undefined;
});

const yaml = (legacy: string, neu: string) => `${baseYaml(legacy, neu, { token: TOKEN })}features:
  reports:
    routes: [/api/1/reports/**]
    target: { percent: 0 }
  ping:
    routes: [GET /api/1/ping]
    target: new
`;

describe.skipIf(!haveChromium)("admin page in Chromium", () => {
  it("asks for the token, shows live numbers, and its controls change routing", async () => {
    backends = await stampingBackends();
    running = await openControlled(configDir("atomic-rename", yaml(backends.legacy.url, backends.new.url)).file);
    const { url: proxy, admin, cp } = running;

    // Without credentials: 401 with a Basic challenge, so a browser prompts (headless Chromium fails
    // the navigation instead of prompting).
    const denied = await send(admin.url, { path: "/" });
    expect(denied.status).toBe(401);
    expect(denied.headers["www-authenticate"]).toBe('Basic realm="switchyard-admin"');
    const anonymous = await browser!.newContext();
    await expect((await anonymous.newPage()).goto(admin.url)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    await anonymous.close();
    const wrong = await browser!.newContext({ httpCredentials: { username: "x", password: "nope" } });
    expect((await (await wrong.newPage()).goto(admin.url))!.status()).toBe(401); // wrong password: the 401 itself
    await wrong.close();

    const context = await browser!.newContext({ httpCredentials: { username: "ops-alice", password: TOKEN } });
    const page = await context.newPage();
    const missing: string[] = [];
    page.on("response", (r) => void (r.status() === 404 && missing.push(r.url()))); // no favicon 404 in the console
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    const res = await page.goto(admin.url);
    expect(res!.status()).toBe(200);
    await page.getByTestId("hash").filter({ hasText: cp.app.snapshot.hash }).waitFor();

    // Live numbers: traffic on both backends, and the page's rates move.
    const load = loadLoop(proxy, { concurrency: 4, users: 200, path: "/api/1/reports/daily", maxMs: 20_000, maxRequests: 100_000 });
    const rate = page.getByTestId("rate-reports-legacy");
    await waitFor(() => load.samples.length > 100, "traffic");
    const text = (id: string) => `document.querySelector('[data-testid="${id}"]')?.textContent`; // evaluated in the page
    await page.waitForFunction(`Number(${text("rate-reports-legacy")}) > 0`);
    const first = await rate.textContent();
    await page.waitForFunction(`${text("rate-reports-legacy")} !== ${JSON.stringify(first)}`, undefined, { timeout: 10_000 });
    expect(Number(await rate.textContent())).toBeGreaterThan(0);
    // The health panel counts each backend's last minute: requests, and no errors here.
    expect(await page.getByTestId("last-minute-legacy").textContent()).toMatch(/^[1-9]\d* requests, no errors$/);
    expect(await page.getByTestId("last-minute-new").textContent()).toBe("no requests");

    // Change the percent through the page: 100 % of reports' users to new.
    expect(missing).toEqual([]);
    expect(await page.locator("#shadow-section").isHidden()).toBe(true); // no shadow here: no panel
    // The toggle says the action, the state beside it says what is.
    expect(await page.getByTestId("state-reports").textContent()).toBe("enabled");
    expect(await page.getByTestId("toggle-reports").textContent()).toBe("Disable");
    await page.getByTestId("percent-reports").fill("100");
    await page.getByTestId("set-reports").click();
    await page.getByTestId("target-reports").filter({ hasText: "100 % new" }).waitFor();
    expect(json(await send(proxy, { path: "/api/1/reports/x", headers: { "x-user-id": "someone" } })).backend).toBe("new");
    await page.waitForFunction(`Number(${text("rate-reports-new")}) > 0`, undefined, { timeout: 10_000 });
    expect(cp.overrides.get("features.reports.percent")).toMatchObject({ value: 100, by: "ops-alice@127.0.0.1" });

    // Roll back through the page, then undo.
    await page.getByTestId("rollback").click();
    await page.getByTestId("kill").filter({ hasText: "ON" }).waitFor();
    expect(json(await send(proxy, { path: "/api/1/ping" })).backend).toBe("legacy");
    await page.getByTestId("rollback-undo").click();
    await page.getByTestId("kill").filter({ hasText: "off" }).waitFor();
    expect(json(await send(proxy, { path: "/api/1/ping" })).backend).toBe("new");

    // The guard section says it is off here.
    expect(await page.getByTestId("guard").textContent()).toMatch(/The guard is off/);

    // The audit list shows who did what.
    await page.locator("#audit").filter({ hasText: "ops-alice@127.0.0.1" }).waitFor();
    expect(await page.locator("#audit").textContent()).toMatch(/feature reports 0% -> 100%/);
    const samples = await load.stop();
    expect(samples.filter((s) => s.status !== 200)).toEqual([]);
    expect(pageErrors).toEqual([]);
    await context.close();
  });

  it("shows a schedule waiting for approval and approves it through the page", async () => {
    backends = await stampingBackends();
    const yaml = `${baseYaml(backends.legacy.url, backends.new.url, { token: TOKEN })}guard:
  enabled: true
  interval: 100ms
  min_requests: 20
  # The approval is under test, not the latency rules: on a machine busy with the whole suite and a
  # browser, a p99 rule can breach and hold the schedule still.
  p99_above: 0
  p99_ratio_over_legacy: 0
features:
  reports:
    routes: [/api/1/reports/**]
    target: { percent: 10 }
    schedule:
      steps: [10, 50]
      hold: 300ms
      approval: manual
`;
    running = await openControlled(configDir("atomic-rename", yaml).file);
    // The guard advances only on traffic in its window: the load lasts as long as the test may on a
    // busy machine (it once ended before the approval was judged in a full CI run).
    const load = loadLoop(running.url, { concurrency: 4, users: 300, path: "/api/1/reports/x", maxMs: 60_000, maxRequests: 400_000 });
    const context = await browser!.newContext({ httpCredentials: { username: "ops-bob", password: TOKEN } });
    const page = await context.newPage();
    page.on("dialog", (d) => void d.accept());
    await page.goto(running.admin.url);
    await page.getByTestId("guard").filter({ hasText: "waiting for approval" }).waitFor({ timeout: 15_000 });
    await page.getByTestId("approve-reports").click();
    await waitFor(() => running!.cp.overrides.get("features.reports.percent")?.value === 50, "the approved step", 15_000).catch((err: Error) => {
      // What the guard saw instead (its state, last evaluation and breaches), to tell why.
      throw new Error(`${err.message}; guard: ${JSON.stringify(running!.cp.guard.status())}`);
    });
    await page.getByTestId("guard").filter({ hasText: "50 %" }).waitFor();
    expect(running.cp.overrides.get("features.reports.percent")?.by).toBe("schedule");
    await page.locator("#audit").filter({ hasText: "schedule approve reports" }).waitFor();
    expect((await load.stop()).filter((s) => s.status !== 200)).toEqual([]);
    await context.close();
  });

  it("shows the last hour's shadow comparisons per feature with the fields that differ, and the report command; hides the panel without shadow", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    backends = await stampingBackends();
    const store = join(mkdtempSync(join(tmpdir(), "sy-page-shadow-")), "shadow.db");
    const yaml = `${baseYaml(backends.legacy.url, backends.new.url, { token: TOKEN })}shadow:\n  enabled: true\n  percent: 100\n  noise:\n    percent: 0\n  store:\n    path: ${store}\n    flush_interval: 100ms\n  report:\n    min_pairs: 10\nfeatures:\n  reports:\n    routes: [/api/1/reports/**]\n    target: legacy\n`;
    running = await openControlled(configDir("in-place", yaml).file);
    // The two backends stamp their name: every mirrored pair differs in $.backend.
    for (let i = 0; i < 30; i++) expect((await send(running.url, { path: `/api/1/reports/${i}` })).status).toBe(200);
    const compared = async () => parseProm(await running!.cp.app.metrics.registry.metrics()).get('switchyard_shadow_requests_total{feature="reports",outcome="compared"}') ?? 0;
    for (let t0 = Date.now(); (await compared()) < 30 && Date.now() - t0 < 5000; ) await new Promise((r) => setTimeout(r, 50));
    const context = await browser!.newContext({ httpCredentials: { username: "ops", password: TOKEN } });
    const page = await context.newPage();
    await page.goto(running.admin.url);
    const row = page.getByTestId("shadow").locator('tr[data-feature="reports"]');
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toMatch(/^reports30\s*0\.00 %FAIL\$\.backend 100\.00 %/);
    expect(await page.locator("#shadow-note").textContent()).toContain(`npx switchyard report --db ${store} --out report.html`);
    await context.close();
  });

  it("lists the fleet's replicas (with a shared control store) and which one leads; hides the panel otherwise", async () => {
    const { startRedis } = await import("../helpers/redis.ts");
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const redis = await startRedis();
    backends = await stampingBackends();
    const file = configDir("in-place", `${yaml(backends.legacy.url, backends.new.url)}control:\n  store: ${redis.url}\n`).file;
    const other = await openControlled(file, { stateFile: join(mkdtempSync(join(tmpdir(), "sy-page-fleet-")), "state.json") });
    try {
      running = await openControlled(file, { stateFile: join(mkdtempSync(join(tmpdir(), "sy-page-fleet-")), "state.json") });
      await waitFor(() => [other, running!].filter((r) => r.cp.leader).length === 1, "a leader");
      const context = await browser!.newContext({ httpCredentials: { username: "ops", password: TOKEN } });
      const page = await context.newPage();
      await page.goto(running.admin.url);
      const fleet = page.getByTestId("fleet");
      await page.waitForFunction(`document.querySelectorAll('#fleet tbody tr[data-replica]').length === 2`);
      const leaderId = [other, running].find((r) => r.cp.leader)!.cp.replicaId;
      await fleet.locator(`tr[data-replica="${leaderId}"]`).filter({ hasText: "leader: runs the guard" }).waitFor({ timeout: 5000 });
      expect(await fleet.locator(`tr[data-replica="${running.cp.replicaId}"]`).textContent()).toContain("(this one)");
      expect(await page.locator("#fleet-note").textContent()).toMatch(/^\(control store redis:\/\/127\.0\.0\.1:\d+\/?, version \d+\)$/);
      await context.close();
      // A lone proxy with the file store: no fleet panel.
      const lone = await openControlled(configDir("in-place", yaml(backends.legacy.url, backends.new.url)).file);
      try {
        const c2 = await browser!.newContext({ httpCredentials: { username: "ops", password: TOKEN } });
        const p2 = await c2.newPage();
        await p2.goto(lone.admin.url);
        await p2.getByTestId("hash").filter({ hasText: lone.cp.app.snapshot.hash }).waitFor();
        expect(await p2.locator("#fleet-section").isHidden()).toBe(true);
        await c2.close();
      } finally {
        await lone.close();
      }
    } finally {
      await other.close();
      await redis.stop();
    }
  });

  it("refuses a cross-origin request from another site", async () => {
    backends = await stampingBackends();
    running = await openControlled(configDir("atomic-rename", yaml(backends.legacy.url, backends.new.url)).file);
    const res = await send(running.admin.url, { method: "POST", path: "/rollback", headers: { authorization: `Bearer ${TOKEN}`, origin: "https://evil.example" } });
    expect(res.status).toBe(403);
    expect(json(res).error).toMatch(/cross-origin admin request refused/);
    expect(running.cp.overrides.size).toBe(0);
  });
});
