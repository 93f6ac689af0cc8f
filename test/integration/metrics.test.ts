// /metrics and /stats after known traffic through a real proxy: counts, histogram counts, error kinds,
// config gauges, exactly.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { json, send } from "../helpers/client.ts";
import { baseYaml, closeAfterEach, configDir, type Controlled, openControlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { closedPort, startBackend, waitFor, type TestBackend } from "../helpers/servers.ts";

let running: Controlled | undefined;
const servers: TestBackend[] = [];
closeAfterEach(() => running, () => (running = undefined), servers);

const stamping = (name: string) =>
  startBackend((req, res) => {
    req.resume();
    const fail = req.url!.includes("fail");
    res.writeHead(fail ? 500 : 200, { "content-type": "application/json" }).end(JSON.stringify({ backend: name }));
  });

const yaml = (legacy: string, neu: string) => `${baseYaml(legacy, neu)}features:
  reports:
    routes: [/api/reports/**]
    target: legacy
  search:
    routes: [/api/search/**]
    target: new
`;

describe("/metrics", () => {
  it("counts 100 legacy requests with 5 errors and 50 new ones exactly", async () => {
    const legacy = await stamping("legacy");
    const neu = await stamping("new");
    servers.push(legacy, neu);
    running = await openControlled(configDir("in-place", yaml(legacy.url, neu.url)).file);
    for (let i = 0; i < 100; i++) expect((await send(running.url, { path: `/api/reports/${i % 20 === 0 ? "fail" : "ok"}` })).status).toBe(i % 20 === 0 ? 500 : 200);
    for (let i = 0; i < 50; i++) expect((await send(running.url, { path: "/api/search/q", method: i < 10 ? "POST" : "GET", body: i < 10 ? "x" : undefined })).status).toBe(200);
    expect((await send(running.url, { path: "/unclaimed" })).status).toBe(200);

    const res = await send(running.admin.url, { path: "/metrics" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    const m = parseProm(res.body.toString());
    const req = (backend: string, feature: string, method: string, cls: string) => m.get(`switchyard_requests_total{backend="${backend}",feature="${feature}",method="${method}",status_class="${cls}"}`);
    expect(req("legacy", "reports", "GET", "2xx")).toBe(95);
    expect(req("legacy", "reports", "GET", "5xx")).toBe(5);
    expect(req("new", "search", "GET", "2xx")).toBe(40);
    expect(req("new", "search", "POST", "2xx")).toBe(10);
    expect(req("legacy", "none", "GET", "2xx")).toBe(1);
    // Every class of a method with traffic is there from its first request, zeros included, so
    // Prometheus's increase() counts the first errors when they come.
    expect(req("new", "search", "GET", "5xx")).toBe(0);
    expect(req("new", "search", "POST", "4xx")).toBe(0);
    expect(req("new", "search", "DELETE", "2xx")).toBeUndefined(); // a method never seen is not
    expect(m.get('switchyard_upstream_errors_total{backend="legacy",kind="5xx"}')).toBe(5);
    expect(m.get('switchyard_upstream_errors_total{backend="legacy",kind="connect"}')).toBe(0);
    expect(m.get('switchyard_upstream_errors_total{backend="new",kind="5xx"}')).toBe(0); // no error on new at all
    for (const name of ["switchyard_upstream_duration_seconds", "switchyard_request_duration_seconds"]) {
      expect(m.get(`${name}_count{backend="legacy",feature="reports"}`)).toBe(100);
      expect(m.get(`${name}_bucket{backend="legacy",feature="reports",le="+Inf"}`)).toBe(100);
      expect(m.get(`${name}_count{backend="new",feature="search"}`)).toBe(50);
      // Buckets are cumulative and end at the count.
      const buckets = [...m].filter(([k]) => k.startsWith(`${name}_bucket{backend="new",feature="search"`)).map(([, v]) => v);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
      expect(buckets.at(-1)).toBe(50);
      expect(m.get(`${name}_sum{backend="new",feature="search"}`)).toBeGreaterThan(0);
    }
    expect(m.get("switchyard_requests_in_flight")).toBe(0);
    expect(m.get(`switchyard_config_info{hash="${running.cp.app.snapshot.hash}"}`)).toBe(1);
    expect(m.get('switchyard_config_reloads_total{result="ok"}')).toBe(0);
    expect(m.get("switchyard_config_last_reload_successful")).toBe(1);
    expect(m.get('switchyard_routing_mode{mode="mixed"}')).toBe(1);
    expect(m.get('switchyard_routing_mode{mode="full"}')).toBe(0);
    expect(m.get('switchyard_feature_new_percent{feature="search"}')).toBe(100);
    expect(m.get('switchyard_feature_new_percent{feature="reports"}')).toBe(0);
    expect(m.get("switchyard_kill_switch")).toBe(0);
    expect(m.get('switchyard_websocket_tunnels_open{backend="new"}')).toBe(0);
    expect(m.has("process_cpu_user_seconds_total")).toBe(true);
    expect(m.has("nodejs_eventloop_lag_p99_seconds")).toBe(true);

    // The same traffic in the side-by-side summary.
    const stats = json(await send(running.admin.url, { path: "/stats" })) as { features: Record<string, Record<string, Record<string, { requests: number; errors: number; error_rate: number; p99_ms: number }>>> };
    expect(stats.features.reports!.legacy!["1m"]).toMatchObject({ requests: 100, errors: 5, error_rate: 0.05 });
    expect(stats.features.reports!.legacy!["1h"]).toMatchObject({ requests: 100, errors: 5 });
    expect(stats.features.search!.new!["5m"]).toMatchObject({ requests: 50, errors: 0, error_rate: 0 });
    expect(stats.features.search!.new!["1m"]!.p99_ms).toBeGreaterThan(0);
    // And as backend health in /status.
    const status = json(await send(running.admin.url, { path: "/status" })) as { backends: Record<string, { state: string; last_minute: { requests: number; errors: number } }> };
    expect(status.backends.legacy).toMatchObject({ state: "degraded", last_minute: { requests: 101, errors: 5 } });
    expect(status.backends.new).toMatchObject({ state: "ok", last_minute: { requests: 50, errors: 0 } });
  });

  it("counts connect failures (each failed over to legacy) and reload results, and shows a failed reload", async () => {
    const legacy = await stamping("legacy");
    servers.push(legacy);
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const dir = configDir("atomic-rename", yaml(legacy.url, dead));
    running = await openControlled(dir.file);
    for (let i = 0; i < 3; i++) expect((await send(running.url, { path: "/api/search/x" })).status).toBe(200);
    dir.save(yaml(legacy.url, dead).replace("target: new", "target: newish"));
    await waitFor(() => running!.cp.reloads.failed === 1, "the failed reload");
    const m = parseProm((await send(running.admin.url, { path: "/metrics" })).body.toString());
    expect(m.get('switchyard_upstream_errors_total{backend="new",kind="connect"}')).toBe(3);
    expect(m.get('switchyard_requests_total{backend="new",feature="search",method="GET",status_class="5xx"}')).toBe(3);
    expect(m.get('switchyard_requests_total{backend="legacy",feature="search",method="GET",status_class="2xx"}')).toBe(3);
    expect(m.get('switchyard_failovers_total{feature="search",from="new",to="legacy",reason="connect"}')).toBe(3);
    expect(m.get('switchyard_config_reloads_total{result="failed"}')).toBe(1);
    expect(m.get("switchyard_config_last_reload_successful")).toBe(0);
  });
});

describe("config/monitoring", () => {
  const dir = new URL("../../config/monitoring/", import.meta.url);
  const dashboard = JSON.parse(readFileSync(new URL("grafana-dashboard.json", dir), "utf8")) as { uid: string; panels: { title: string; targets: { expr: string }[] }[]; templating: { list: { query: unknown }[] } };
  const rules = parseYaml(readFileSync(new URL("prometheus-alerts.yaml", dir), "utf8")) as { groups: { name: string; rules: Record<string, unknown>[] }[] };

  /** Metric names and the label names each carries, from a live scrape. */
  async function exported(): Promise<Map<string, Set<string>>> {
    const legacy = await stamping("legacy");
    servers.push(legacy);
    running = await openControlled(configDir("in-place", yaml(legacy.url, legacy.url)).file);
    await send(running.url, { path: "/api/reports/x" });
    const text = (await send(running.admin.url, { path: "/metrics" })).body.toString();
    const names = new Map<string, Set<string>>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      for (const n of type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]) names.set(n, new Set(type === "histogram" && n.endsWith("_bucket") ? ["le"] : []));
    }
    for (const [, name, labels] of text.matchAll(/^([a-zA-Z_:][\w:]*)\{([^}]*)\}/gm)) for (const [, l] of labels!.matchAll(/(\w+)="/g)) names.get(name!)?.add(l!);
    return names;
  }

  /** Every metric a PromQL expression selects, with the label names its matchers and groupings use. */
  function references(expr: string): { metric: string; labels: string[] }[] {
    const out: { metric: string; labels: string[] }[] = [];
    for (const m of expr.matchAll(/\b((?:switchyard|process|nodejs)_\w+)(\{([^}]*)\})?/g)) out.push({ metric: m[1]!, labels: [...(m[3] ?? "").matchAll(/(\w+)\s*(?:=~|!=|!~|=)/g)].map((x) => x[1]!) });
    return out;
  }

  it("the Grafana dashboard queries only metrics and labels Switchyard exports", async () => {
    const names = await exported();
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const groupings = new Set(["backend", "feature", "le", "kind", "mode", "result", "status_class", "method", "hash", "instance"]);
    for (const { panel, expr } of exprs) {
      const refs = references(expr);
      expect(refs.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const r of refs) {
        expect(names.has(r.metric), `${panel}: ${r.metric} is not exported`).toBe(true);
        for (const l of r.labels) expect(names.get(r.metric)!.has(l), `${panel}: ${r.metric} has no label ${l}`).toBe(true);
      }
      for (const [, by] of expr.matchAll(/by \(([^)]*)\)/g)) for (const l of by!.split(",")) expect(groupings.has(l.trim()), `${panel}: grouping by ${l}`).toBe(true);
    }
    expect(JSON.stringify(dashboard.templating)).toContain("label_values(switchyard_requests_total, feature)");
  });

  it("the alert rules parse, carry the expected fields, and query exported metrics", async () => {
    const names = await exported();
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert)).toEqual(expect.arrayContaining(["HighNewBackendErrorRate", "NewBackendLatencyRegression", "SwitchyardConfigReloadFailed"]));
    for (const r of alerts) {
      expect(typeof r.alert).toBe("string");
      expect(r.expr, String(r.alert)).toEqual(expect.any(String));
      expect(r.for).toMatch(/^\d+[smh]$/);
      expect((r.labels as { severity?: string }).severity).toMatch(/^(page|warn|info)$/);
      expect((r.annotations as { summary?: string }).summary).toEqual(expect.any(String));
      for (const ref of references(r.expr as string)) {
        expect(names.has(ref.metric), `${String(r.alert)}: ${ref.metric}`).toBe(true);
        for (const l of ref.labels) expect(names.get(ref.metric)!.has(l), `${String(r.alert)}: ${ref.metric} has no label ${l}`).toBe(true);
      }
    }
    // The deployment guide's two alert rules, at the edge: new backend 5xx ratio > 1 % for 5m, p99 > 2 s for 10m.
    const errorRule = alerts.find((r) => r.alert === "HighNewBackendErrorRate")!;
    expect(errorRule.expr).toMatch(/backend="new",status_class="5xx"[\s\S]*> 0\.01/);
    expect(errorRule.for).toBe("5m");
    const latencyRule = alerts.find((r) => r.alert === "NewBackendLatencyRegression")!;
    expect(latencyRule.expr).toMatch(/histogram_quantile\(0\.99,[\s\S]*backend="new"[\s\S]*> 2/);
    expect(latencyRule.for).toBe("10m");
  });
});
