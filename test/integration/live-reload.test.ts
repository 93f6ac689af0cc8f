// Config-file changes applied under load without restart: in-place writes, editors' atomic renames and
// Kubernetes' symlink swap; a bad file never takes effect; backend changes drain the old pool.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { json, send } from "../helpers/client.ts";
import { baseYaml, configDir, loadLoop, openControlled, type Controlled, type Sample, type SaveStyle } from "../helpers/control.ts";
import { startBackend, stampingBackends, waitFor, type TestBackend } from "../helpers/servers.ts";

let backends: Awaited<ReturnType<typeof stampingBackends>> | undefined;
let running: Controlled | undefined;
const extra: TestBackend[] = [];

afterEach(async () => {
  await running?.close();
  running = undefined;
  await backends?.close();
  backends = undefined;
  for (const b of extra.splice(0)) await b.close();
});

const yaml = (legacy: string, neu: string, mode: string, percent: number, more = "") => `${baseYaml(legacy, neu)}routing:
  mode: ${mode}
features:
  reports:
    routes: [/api/1/reports/**]
    target: { percent: ${percent} }
${more}`;

/** The 20 rewrites: percents and modes alternate, and each one flips which backend answers. */
const STEPS: { mode: string; percent: number; expect: "legacy" | "new" }[] = Array.from({ length: 20 }, (_, i) =>
  [
    { mode: "mixed", percent: 100, expect: "new" as const },
    { mode: "mixed", percent: 0, expect: "legacy" as const },
    { mode: "full", percent: 0, expect: "new" as const },
    { mode: "disabled", percent: 100, expect: "legacy" as const },
  ][i % 4]!,
);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe.each<SaveStyle>(["in-place", "atomic-rename", "symlink-swap"])("reload under load, %s saves", (style) => {
  it("20 rewrites: no request fails, the split follows each change within 1 s", async () => {
    backends = await stampingBackends();
    const { legacy, new: neu } = backends;
    const { file, save } = configDir(style, yaml(legacy.url, neu.url, "mixed", 0));
    running = await openControlled(file);
    const { cp } = running;
    const load = loadLoop(running.url, { concurrency: 16, users: 500, path: "/api/1/reports/daily", maxMs: 30_000, maxRequests: 500_000 });
    await waitFor(() => load.samples.length > 200, "load to start");

    const marks: { written: number; applied: number; expect: string }[] = [];
    for (const step of STEPS) {
      const before = cp.app.snapshot.hash;
      const written = performance.now();
      save(yaml(legacy.url, neu.url, step.mode, step.percent));
      await waitFor(() => cp.app.snapshot.hash !== before, `reload after a ${style} save`, 5000);
      const applied = performance.now();
      marks.push({ written, applied, expect: step.expect });
      // Hold each config until the load has seen it well.
      const seen = load.samples.length;
      await waitFor(() => load.samples.length > seen + 150, "traffic on the new config");
    }
    const t1 = performance.now();
    const samples = await load.stop();

    const failed = samples.filter((s) => s.status !== 200);
    expect(failed.slice(0, 3)).toEqual([]);
    // Each change: every request that started after the swap was answered by the new choice, and the
    // first such answer came within 1 s of the save.
    const follow: number[] = [];
    marks.forEach((m, i) => {
      const until = marks[i + 1]?.written ?? t1;
      const window = samples.filter((s) => s.start >= m.applied && s.end <= until);
      expect(window.length).toBeGreaterThan(50);
      expect(window.filter((s) => s.backend !== m.expect)).toEqual([]);
      const first = samples.filter((s: Sample) => s.start >= m.written && s.backend === m.expect).reduce((a, s) => Math.min(a, s.end), Infinity);
      follow.push(first - m.written);
    });
    expect(Math.max(...follow)).toBeLessThan(1000);
    expect(cp.reloads.ok).toBeGreaterThanOrEqual(20);
    const seconds = (samples.at(-1)!.end - samples[0]!.start) / 1000;
    const reload = marks.map((m) => m.applied - m.written);
    console.log(
      `[live-reload ${style}] ${samples.length} requests in ${seconds.toFixed(1)} s (${Math.round(samples.length / seconds)} req/s), ${failed.length} failed; ` +
        `save -> applied median ${median(reload).toFixed(0)} ms, max ${Math.max(...reload).toFixed(0)} ms; save -> first answer from the new choice median ${median(follow).toFixed(0)} ms, max ${Math.max(...follow).toFixed(0)} ms`,
    );
    // Every applied change is logged in words.
    const applied = running.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("config applied: "));
    expect(applied.length).toBeGreaterThanOrEqual(20);
    expect(applied.map((l) => l.msg)).toContain("config applied: mode full -> disabled; feature reports 0% -> 100%");
  });
});

describe("a bad file never takes effect", () => {
  it("keeps serving the old config, reports the error with file:line, applies the next good save", async () => {
    backends = await stampingBackends();
    const { legacy, new: neu } = backends;
    const { file, save } = configDir("atomic-rename", yaml(legacy.url, neu.url, "mixed", 100));
    running = await openControlled(file);
    const { cp, admin } = running;
    const hash = cp.app.snapshot.hash;
    const load = loadLoop(running.url, { concurrency: 8, users: 100, path: "/api/1/reports/x", maxMs: 20_000, maxRequests: 200_000 });

    save(yaml(legacy.url, neu.url, "mixed", 150)); // out of range
    await waitFor(() => cp.lastLoad.ok === false, "the failed reload");
    expect(cp.app.snapshot.hash).toBe(hash);
    const status = json(await send(admin.url, { path: "/status" })) as { config: { hash: string; last_load: { ok: boolean; errors: string[] }; reloads: { failed: number } } };
    expect(status.config.hash).toBe(hash);
    expect(status.config.last_load.ok).toBe(false);
    expect(status.config.last_load.errors.join("\n")).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:16:\\d+: features\\.reports\\.target\\.percent`));
    expect(status.config.reloads.failed).toBe(1);
    expect(running.logs.some((l) => l.level === "error" && String(l.msg).startsWith(`config reload failed, still serving ${hash}`))).toBe(true);
    expect(json(await send(running.url, { path: "/api/1/reports/x", headers: { "x-user-id": "a" } })).backend).toBe("new");

    save("listeners: [oops"); // not even YAML
    await waitFor(() => cp.reloads.failed === 2, "the second failed reload");
    expect(cp.lastLoad.errors[0]).toMatch(/YAML syntax/);
    expect(cp.app.snapshot.hash).toBe(hash);

    save(yaml(legacy.url, neu.url, "mixed", 0)); // fixed
    await waitFor(() => cp.lastLoad.ok, "the good reload");
    expect(cp.app.snapshot.hash).not.toBe(hash);
    expect(json(await send(running.url, { path: "/api/1/reports/x", headers: { "x-user-id": "a" } })).backend).toBe("legacy");
    const samples = await load.stop();
    expect(samples.filter((s) => s.status !== 200)).toEqual([]);
    expect(samples.length).toBeGreaterThan(100);
  });

  it("refuses a file whose listeners changed but applies the rest, saying a restart is needed", async () => {
    backends = await stampingBackends();
    const { legacy, new: neu } = backends;
    const { file, save } = configDir("atomic-rename", yaml(legacy.url, neu.url, "mixed", 0));
    running = await openControlled(file);
    const { cp } = running;
    const before = running.url;
    save(yaml(legacy.url, neu.url, "mixed", 100).replace("    port: 0\nbackends", "    port: 0\n  - host: 127.0.0.1\n    port: 0\nbackends"));
    await waitFor(() => cp.lastLoad.changes.length > 0, "the reload");
    expect(cp.lastLoad.restartNeeded).toEqual(["listeners (addresses, ports, TLS files)"]);
    expect(cp.app.urls).toEqual([before]);
    expect(json(await send(before, { path: "/api/1/reports/x", headers: { "x-user-id": "a" } })).backend).toBe("new");
    expect(running.logs.some((l) => String(l.msg).startsWith("config changes need a restart to take effect: listeners"))).toBe(true);
  });

  it("reads an unchanged file as no change (watch noise costs nothing)", async () => {
    backends = await stampingBackends();
    const text = yaml(backends.legacy.url, backends.new.url, "mixed", 0);
    const { file, save } = configDir("in-place", text);
    running = await openControlled(file);
    const { cp } = running;
    save(text);
    await new Promise((r) => setTimeout(r, 300));
    expect(cp.reloads).toEqual({ ok: 0, failed: 0 });
    const record = await cp.reload("sighup"); // an explicit reload re-applies and says nothing changed
    expect(record).toMatchObject({ ok: true, trigger: "sighup", changes: [] });
    expect(readFileSync(file, "utf8")).toBe(text);
  });
});

describe("requests in flight", () => {
  it("finish on the snapshot they started with", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const slow = await startBackend((req, res) => {
      req.resume();
      void held.then(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "legacy-slow" })));
    });
    extra.push(slow);
    backends = await stampingBackends();
    const { file, save } = configDir("atomic-rename", yaml(slow.url, backends.new.url, "mixed", 0));
    running = await openControlled(file);
    const { cp } = running;
    const pending = send(running.url, { path: "/api/1/reports/x", headers: { "x-user-id": "a" } });
    await waitFor(() => slow.seen.length === 1, "the slow request to reach legacy");
    const hash = cp.app.snapshot.hash;
    save(yaml(slow.url, backends.new.url, "mixed", 100));
    await waitFor(() => cp.app.snapshot.hash !== hash, "the reload");
    expect(json(await send(running.url, { path: "/api/1/reports/x", headers: { "x-user-id": "a" } })).backend).toBe("new");
    release();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(json(res).backend).toBe("legacy-slow");
  });
});

describe("backend change under load", () => {
  it("moves traffic to the new address with no failed request and drains the old pool", async () => {
    backends = await stampingBackends();
    const other = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ backend: "new2" })));
    });
    extra.push(other);
    const { legacy, new: neu } = backends;
    const { file, save } = configDir("atomic-rename", yaml(legacy.url, neu.url, "full", 0));
    running = await openControlled(file);
    const { cp } = running;
    const load = loadLoop(running.url, { concurrency: 16, users: 100, path: "/api/1/reports/x", maxMs: 20_000, maxRequests: 200_000 });
    for (let i = 0; i < 6; i++) {
      const target = i % 2 === 0 ? other : neu;
      const hash = cp.app.snapshot.hash;
      save(yaml(legacy.url, target.url, "full", 0));
      await waitFor(() => cp.app.snapshot.hash !== hash, "the reload");
      const seen = load.samples.length;
      await waitFor(() => load.samples.length > seen + 200, "traffic");
      expect(load.samples.at(-1)!.backend).toBe(i % 2 === 0 ? "new2" : "new");
    }
    const samples = await load.stop();
    expect(samples.filter((s) => s.status !== 200)).toEqual([]);
    expect(cp.lastLoad.changes).toEqual([`backend new ${other.url} -> ${neu.url} (pool settings changed; old pool drains)`]);
    // Only the pools of the current backends remain.
    await waitFor(() => cp.app.pools.stats().every((p) => p.origin === legacy.url || p.origin === neu.url), "the old pool to close");
  });
});
