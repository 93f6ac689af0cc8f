// guard.source: prometheus against a real Prometheus scraping two Switchyards: the guard judges the
// fleet's numbers as Prometheus sums them (more than the judging process saw itself), and holds
// still, saying so, when Prometheus does not answer.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PrometheusSource } from "../../src/guard/prometheus.ts";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, openControlled, type Controlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startPrometheus, type PrometheusServer } from "../helpers/prometheus.ts";
import { closedPort, failingPair, waitFor } from "../helpers/servers.ts";

let pair: Awaited<ReturnType<typeof failingPair>>;
let running: Controlled[] = [];
let prometheus: PrometheusServer | null = null;

beforeAll(async () => {
  pair = await failingPair();
});
afterAll(() => pair.close());
afterEach(async () => {
  for (const r of running) await r.close();
  running = [];
  await prometheus?.stop();
  prometheus = null;
});

/** A Switchyard sending every request to the failing new backend, its admin (and /metrics) on `adminPort`. */
async function proxy(adminPort: number, guard: string): Promise<Controlled> {
  const yaml = `${baseYaml(pair.legacy.url, pair.failing.url).replace("admin:\n  port: 0\n", `admin:\n  port: ${adminPort}\n`)}${guard}features:\n  root:\n    routes: [/**]\n    target: { percent: 100 }\n`;
  const r = await openControlled(configDir("in-place", yaml).file);
  running.push(r);
  return r;
}

const prometheusGuard = (url: string) => `guard:\n  enabled: true\n  interval: 300ms\n  window: 1m\n  min_requests: 50\n  consecutive: 1\n  cooldown: 5m\n  source: prometheus\n  prometheus:\n    url: ${url}\n    selector: job="switchyard"\n`;

async function fail(r: Controlled, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect((await send(r.url, { path: `/x/${i}` })).status).toBe(500);
}

/** Prometheus's current sum of a PromQL expression (0 when it has no series yet). */
async function promSum(url: string, query: string): Promise<number> {
  const r = (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`)).json()) as { data: { result: { value: [number, string] }[] } };
  return r.data.result.reduce((s, x) => s + Number(x.value[1]), 0);
}

describe("guard.source: prometheus", () => {
  it("judges on what Prometheus sums over both processes: the judge saw 40 failures itself, below min_requests 50, and rolls back on the fleet's", async () => {
    // The proxies listen first (free ports of their own) and Prometheus is told where; ports chosen
    // ahead and held through Prometheus's start could be taken meanwhile (seen once in a full run).
    const promPort = await closedPort();
    const a = await proxy(0, prometheusGuard(`http://127.0.0.1:${promPort}`));
    const b = await proxy(0, "guard:\n  enabled: false\n");
    prometheus = await startPrometheus([a, b].map((r) => new URL(r.admin.url).host), { port: promPort });
    await prometheus.scraped(1);
    // A counter's first scrape is its baseline for increase(): these are not in the numbers.
    await fail(a, 10);
    await fail(b, 10);
    const seen = async () => promSum(prometheus!.url, 'sum(switchyard_requests_total{job="switchyard", backend="new", status_class="5xx"})');
    for (let t0 = Date.now(); (await seen()) < 20; ) {
      if (Date.now() - t0 > 15_000) throw new Error(`Prometheus never saw the first 20 failures (${await seen()})`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(a.logs.some((l) => String(l.msg).startsWith("guard: rollback"))).toBe(false);
    await fail(a, 30);
    await fail(b, 30);
    await waitFor(() => a.logs.some((l) => String(l.msg).startsWith("guard: rollback root 100% -> 0%")), "the rollback on A", 20_000);
    const line = a.logs.find((l) => String(l.msg).startsWith("guard: rollback root"))!;
    const audit = line.audit as { reason: string; numbers: { source: string; new: { requests: number; errors: number } } };
    expect(audit.numbers.source).toBe(`prometheus ${prometheus.url}`);
    // A's own windows hold its 40; Prometheus's sum holds both processes' 60 after the baseline (increase() extrapolates a little).
    expect(a.cp.app.metrics.series("root", "new").window.summary("1m", Date.now()).requests).toBe(40);
    expect(audit.numbers.new.requests).toBeGreaterThanOrEqual(50);
    expect(audit.numbers.new.errors).toBe(audit.numbers.new.requests);
    expect(audit.reason).toMatch(/^new error rate 100\.00 % > 1\.00 %/);
    const status = json(await send(a.admin.url, { path: "/status" })) as { guard_source: { kind: string; up: boolean; error: string | null; from: string } };
    expect(status.guard_source).toMatchObject({ kind: "prometheus", up: true, error: null, from: `prometheus ${prometheus.url}` });
    expect((await send(a.url, { path: "/after" })).status).toBe(200); // legacy serves again
  });

  it("holds still while Prometheus does not answer, says so in the log, /status, `switchyard status` and a metric, and judges again once it does", async () => {
    const deadPort = await closedPort();
    const dead = `http://127.0.0.1:${deadPort}`;
    const a = await proxy(0, prometheusGuard(dead));
    await fail(a, 60); // A's own windows breach every rule: the guard must not act on them either
    await waitFor(() => a.cp.guard.sourceStatus.up === false, "the guard to notice", 5000);
    await new Promise((r) => setTimeout(r, 1000)); // three more evaluations
    expect(a.logs.some((l) => String(l.msg).startsWith("guard: rollback"))).toBe(false);
    const warnings = a.logs.filter((l) => l.level === "warn" && String(l.msg).startsWith("guard holds still: cannot query Prometheus at"));
    expect(warnings).toHaveLength(1); // once per outage, not per evaluation
    const status = json(await send(a.admin.url, { path: "/status" })) as { guard_source: { up: boolean; error: string } };
    expect(status.guard_source.up).toBe(false);
    expect(status.guard_source.error).toMatch(new RegExp(`^cannot query Prometheus at ${dead.replace(/[.]/g, "\\.")}: `));
    const metrics = parseProm((await send(a.admin.url, { path: "/metrics" })).body.toString());
    expect(metrics.get('switchyard_guard_source_up{source="prometheus"}')).toBe(0);
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const cli = await promisify(execFile)(process.execPath, [new URL("../../src/cli/main.ts", import.meta.url).pathname, "status", "--admin", a.admin.url], { encoding: "utf8" });
    expect(cli.stdout).toMatch(/guard \(numbers from prometheus http:\/\/127\.0\.0\.1:\d+\):\n {2}HOLDING STILL: cannot query Prometheus at /);
    // Prometheus comes up where the config says: the guard judges again, and says so once.
    prometheus = await startPrometheus([new URL(a.admin.url).host], { port: deadPort });
    await waitFor(() => a.cp.guard.sourceStatus.up, "the guard to reach Prometheus", 10_000);
    expect(a.logs.filter((l) => l.level === "info" && String(l.msg) === "guard: Prometheus answers again; judging on its numbers")).toHaveLength(1);
    expect((json(await send(a.admin.url, { path: "/status" })) as { guard_source: { up: boolean; error: string | null } }).guard_source).toMatchObject({ up: true, error: null });
  });

  it("asks its four queries for one instant, so a scrape between them cannot make the numbers disagree", async () => {
    const { createServer } = await import("node:http");
    const seen: URLSearchParams[] = [];
    const fake = createServer((req, res) => {
      seen.push(new URL(req.url!, "http://x").searchParams);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ status: "success", data: { resultType: "vector", result: [] } }));
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    try {
      const source = new PrometheusSource({ url: `http://127.0.0.1:${(fake.address() as { port: number }).port}`, selector: 'job="switchyard"', timeoutMs: 2000 });
      const before = Date.now() / 1000;
      await source.numbers("1m");
      expect(seen).toHaveLength(4);
      const times = new Set(seen.map((p) => p.get("time")));
      expect(times.size).toBe(1);
      const at = Number([...times][0]);
      expect(at).toBeGreaterThanOrEqual(Math.floor(before * 1000) / 1000);
      expect(at).toBeLessThanOrEqual(Date.now() / 1000);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it("a URL that is not Prometheus is named as such", async () => {
    const source = new PrometheusSource({ url: pair.legacy.url, selector: "", timeoutMs: 2000 });
    await expect(source.query("up")).rejects.toThrow(/answered 200 (with no JSON|but not as Prometheus's query API does).*is guard\.prometheus\.url the Prometheus server\?/);
  });
});
