// RELIABILITY.md G2: bad configs saved over a t.running proxy. Each is refused with a place
// (file:line:column and field path), counted once as a failed load, and the old config serves on.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, controlledTests, openControlled } from "../helpers/control.ts";

const t = controlledTests();

const features = `features:
  ping:
    routes: ["GET /api/1/ping"]
    target: new
  reports:
    routes: ["/api/1/reports/**"]
    target: { percent: 25 }
limits:
  max_body_size: 1MiB
  body_timeout: 30s
proxy:
  path_normalization: normalize
`;

/** Each: a replacement applied to the good file, and the field path its error must name. */
const BAD: [string, (good: string) => string, string][] = [
  ["route path without a leading /", (g) => g.replace('"GET /api/1/ping"', '"GET api/1/ping"'), "features.ping.routes[0]"],
  ["unknown key", (g) => g.replace("max_body_size:", "max_bodysize:"), "limits.max_bodysize"],
  ["negative port", (g) => g.replace("port: 0\n", "port: -1\n"), "listeners[0].port"],
  ["duration with a space", (g) => g.replace("body_timeout: 30s", "body_timeout: 30 sec"), "limits.body_timeout"],
  ["percent over 100", (g) => g.replace("percent: 25", "percent: 101"), "features.reports.target.percent"],
  ["unknown target", (g) => g.replace("target: new", "target: newer"), "features.ping.target"],
  ["unknown path_normalization", (g) => g.replace("path_normalization: normalize", "path_normalization: maybe"), "proxy.path_normalization"],
  ["size without a number", (g) => g.replace("max_body_size: 1MiB", "max_body_size: lots"), "limits.max_body_size"],
  ["queue_timeout not a duration", (g) => g.replace('url: "http', 'pool: { queue_timeout: soon }, url: "http'), "backends.legacy.pool.queue_timeout"],
  ["backend URL with a path", (g) => g.replace(/legacy: \{ url: "([^"]+)" \}/, 'legacy: { url: "$1/api" }'), "backends.legacy.url"],
  ["header_timeout over request_timeout", (g) => g.replace("limits:\n", "limits:\n  header_timeout: 20s\n  request_timeout: 10s\n"), "limits.header_timeout"],
  ["two routes of equal rank", (g) => g.replace('routes: ["/api/1/reports/**"]', 'routes: ["/api/1/reports/**", "/api/1/reports/**"]'), "features.reports.routes[1]"],
  ["** not at the end", (g) => g.replace("/api/1/reports/**", "/api/**/reports"), "features.reports.routes[0]"],
  ["schedule on a fixed target", (g) => g.replace("    target: new\n", "    target: new\n    schedule: { steps: [10, 50], hold: 1m }\n"), "features.ping.target"],
  ["missing environment variable", (g) => g.replace("body_timeout: 30s", "body_timeout: ${SY_NOT_SET_ANYWHERE}"), "limits.body_timeout"],
  ["malformed environment reference", (g) => g.replace("body_timeout: 30s", "body_timeout: ${SY_BROKEN"), "limits.body_timeout"],
  ["admin off loopback without a token", (g) => g.replace("admin:\n  port: 0\n", "admin:\n  host: 0.0.0.0\n  port: 0\n"), "admin.token"],
  ["features as a list", (g) => g.replace(/features:[\s\S]*?limits:/, "features:\n  - ping\nlimits:"), "features"],
  ["negative consecutive_failures", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { passive: { consecutive_failures: -1 } } }'), "backends.new.health.passive.consecutive_failures"],
  ["ejection over max_ejection", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { passive: { ejection: 10m, max_ejection: 1m } } }'), "backends.new.health.passive.ejection"],
  ["unknown passive key", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { passive: { consecutive: 3 } } }'), "backends.new.health.passive.consecutive"],
  ["check timeout over its interval", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { active: { path: /healthz, interval: 1s, timeout: 5s } } }'), "backends.new.health.active.timeout"],
  ["check path without /", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { active: { path: healthz } } }'), "backends.new.health.active.path"],
  ["bad expected_status", (g) => g.replace(/new: \{ url: "([^"]+)" \}/, 'new: { url: "$1", health: { active: { path: /h, expected_status: ["20x"] } } }'), "backends.new.health.active.expected_status[0]"],
  ["lower-case failover method", (g) => `${g}failover:\n  methods: [get]\n`, "failover.methods[0]"],
  ["budget over 100 %", (g) => `${g}failover:\n  budget_percent: 150\n`, "failover.budget_percent"],
  ["feature failover not a boolean", (g) => g.replace("    target: new\n", "    target: new\n    failover: { enabled: sometimes }\n"), "features.ping.failover.enabled"],
  ["duplicate key", (g) => g.replace("limits:\n", "limits:\n  max_body_size: 2MiB\n"), ""],
  ["YAML syntax error", (g) => g.replace("target: new", "target: [new"), ""],
  ["tab indentation", (g) => g.replace("  ping:", "\tping:"), ""],
  ["empty file", () => "", ""],
];

describe("G2: bad configs are refused with their place; the old config serves on", () => {
  it(`refuses ${BAD.length} bad saves, each once, located, with the proxy serving throughout`, async () => {
    const servers = await t.backends();
    const good = baseYaml(servers.legacy.url, servers.new.url) + features;
    const { file, save } = configDir("atomic-rename", good);
    t.running = await openControlled(file, { env: {} });
    const hash = t.running.cp.app.snapshot.hash;
    for (const [name, mutate, path] of BAD) {
      const failedBefore = t.running.cp.reloads.failed;
      save(mutate(good));
      const record = await t.running.cp.reload("api");
      expect(record.ok, name).toBe(false);
      expect(t.running.cp.reloads.failed, name).toBe(failedBefore + 1);
      expect(record.errors.length, name).toBeGreaterThan(0);
      for (const e of record.errors) expect(e, name).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:\\d+(:\\d+)?: `));
      if (path) expect(record.errors.some((e) => e.includes(`: ${path}: `)), `${name}: ${record.errors.join(" | ")}`).toBe(true);
      expect(t.running.cp.app.snapshot.hash, name).toBe(hash);
      const res = await send(t.running.url, { path: "/api/1/ping" });
      expect(json(res).backend, name).toBe("new");
    }
  });

  it("survives 100 random truncations of a good file: each applies or fails located, never throws", async () => {
    const servers = await t.backends();
    const good = baseYaml(servers.legacy.url, servers.new.url) + features;
    const { file, save } = configDir("in-place", good);
    t.running = await openControlled(file, { env: {} });
    const cuts = fc.sample(fc.integer({ min: 0, max: good.length - 1 }), { numRuns: 100, seed: 12 });
    let failed = 0;
    for (const cut of cuts) {
      save(good.slice(0, cut));
      const record = await t.running.cp.reload("api");
      if (!record.ok) {
        failed++;
        for (const e of record.errors) expect(e).toMatch(/:\d+(:\d+)?: /);
      }
      expect((await send(t.running.url, { path: "/api/1/reports/x" })).status).toBe(200);
    }
    expect(failed).toBeGreaterThan(50);
    save(good);
    expect((await t.running.cp.reload("api")).ok).toBe(true);
  });
});
