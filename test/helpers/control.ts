// A Switchyard run the way `switchyard start` runs it: a config file on a real disk, watched, with its
// runtime overrides next to it and the admin API on loopback. Logs are captured as parsed lines.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Pool } from "undici";
import { afterEach } from "vitest";
import { startAdmin, type AdminServer } from "../../src/admin/server.ts";
import { ControlPlane, type OpenOptions } from "../../src/control/control-plane.ts";
import { createLogger } from "../../src/observe/logger.ts";
import { stampingBackends } from "./servers.ts";

export interface Controlled {
  cp: ControlPlane;
  admin: AdminServer;
  url: string;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export function captureLogger(logs: Record<string, unknown>[]) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return createLogger({ level: "info", destination: sink });
}

export async function openControlled(file: string, opts: OpenOptions = {}): Promise<Controlled> {
  const logs: Record<string, unknown>[] = [];
  const cp = await ControlPlane.open(file, { logger: captureLogger(logs), debounceMs: 50, env: {}, ...opts });
  const admin = await startAdmin(cp, cp.app.snapshot.config.admin);
  return {
    cp,
    admin,
    url: cp.app.urls[0]!,
    logs,
    close: async () => {
      cp.close();
      await admin.close();
      await cp.app.shutdown(1000);
    },
  };
}

/** How an operator's tooling replaces the config file. */
export type SaveStyle = "in-place" | "atomic-rename" | "symlink-swap";

/**
 * A config directory laid out for one save style. "symlink-swap" is a Kubernetes ConfigMap volume:
 * `switchyard.yaml -> ..data/switchyard.yaml`, `..data -> ..<version>`, and an update writes a new
 * version directory and renames a fresh `..data_tmp` symlink over `..data`.
 */
export function configDir(style: SaveStyle, first: string): { file: string; dir: string; save(text: string): void } {
  const dir = mkdtempSync(join(tmpdir(), `sy-${style}-`));
  const file = join(dir, "switchyard.yaml");
  let version = 0;
  const save = (text: string) => {
    if (style === "in-place") writeFileSync(file, text);
    else if (style === "atomic-rename") {
      const tmp = join(dir, `.switchyard.yaml.${version++}.swp`);
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    } else {
      const old = `..v${version}`;
      const next = `..v${++version}`;
      mkdirSync(join(dir, next));
      writeFileSync(join(dir, next, "switchyard.yaml"), text);
      symlinkSync(next, join(dir, "..data_tmp"));
      renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
      rmSync(join(dir, old), { recursive: true, force: true });
    }
  };
  if (style === "symlink-swap") {
    mkdirSync(join(dir, "..v0"));
    writeFileSync(join(dir, "..v0", "switchyard.yaml"), first);
    symlinkSync("..v0", join(dir, "..data"));
    symlinkSync("..data/switchyard.yaml", file);
  } else writeFileSync(file, first);
  return { file, dir, save };
}

export interface Sample {
  start: number;
  end: number;
  backend: string | null;
  status: number;
  error?: string;
}

/**
 * Keep `concurrency` keep-alive requests in flight until stop() (bounded by `maxMs` and `maxRequests`),
 * each with a user id from a fixed set, recording when each started and ended and who answered.
 */
export function loadLoop(url: string, opts: { concurrency: number; users: number; path: string; maxMs: number; maxRequests: number }) {
  const pool = new Pool(url, { connections: opts.concurrency, pipelining: 1 });
  const samples: Sample[] = [];
  let running = true;
  const deadline = performance.now() + opts.maxMs;
  let n = 0;
  const worker = async () => {
    while (running && performance.now() < deadline && n < opts.maxRequests) {
      const user = `user-${n++ % opts.users}`;
      const start = performance.now();
      try {
        const res = await pool.request({ path: opts.path, method: "GET", headers: { "x-user-id": user } });
        const body = (await res.body.json()) as { backend?: string };
        samples.push({ start, end: performance.now(), backend: body.backend ?? null, status: res.statusCode });
      } catch (err) {
        samples.push({ start, end: performance.now(), backend: null, status: 0, error: (err as Error).message });
      }
    }
  };
  const done = Promise.all(Array.from({ length: opts.concurrency }, worker));
  return {
    samples,
    async stop(): Promise<Sample[]> {
      running = false;
      await done;
      await pool.close();
      return samples;
    },
  };
}

/** The head every control-plane test config shares: one loopback listener, two backends, admin on a free port, no access log. */
export function baseYaml(legacy: string, neu: string, opts: { token?: string } = {}): string {
  return `listeners:
  - host: 127.0.0.1
    port: 0
backends:
  legacy: { url: "${legacy}" }
  new: { url: "${neu}" }
admin:
  port: 0
${opts.token ? `  token: ${opts.token}\n` : ""}log:
  access_log: false
`;
}

/** After each test: close the proxy the test left running (if any), then the servers it started. */
export function closeAfterEach(current: () => Controlled | undefined, forget: () => void, servers: { close(): Promise<void> }[]): void {
  afterEach(async () => {
    await current()?.close();
    forget();
    for (const s of servers.splice(0)) await s.close();
  });
}

/**
 * The usual control-plane test setup: `t.running` (set it to the proxy a test opens) and the stamping
 * backends from `t.backends()` are closed after each test.
 */
export function controlledTests(): { running: Controlled | undefined; backends(): ReturnType<typeof stampingBackends> } {
  const started: { close(): Promise<void> }[] = [];
  const t = {
    running: undefined as Controlled | undefined,
    async backends() {
      const b = await stampingBackends();
      started.push(b);
      return b;
    },
  };
  closeAfterEach(() => t.running, () => (t.running = undefined), started);
  return t;
}
