// A real redis-server (Debian's package) on a free loopback port, in a temp directory, for the fleet
// tests. Missing server: the suite fails loudly (CI installs it; `apt-get install redis-server`).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closedPort } from "./servers.ts";

export interface RedisServer {
  url: string;
  port: number;
  /** Kill it (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Start it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function requireRedis(): void {
  if (spawnSync("sh", ["-c", "command -v redis-server"]).status !== 0) {
    throw new Error("redis-server is not installed: the fleet tests need a real one (apt-get install redis-server; .ci/run installs it)");
  }
}

export async function startRedis(): Promise<RedisServer> {
  requireRedis();
  const port = await closedPort();
  const dir = mkdtempSync(join(tmpdir(), "switchyard-redis-"));
  let child: ChildProcess | null = null;
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const c = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: ["ignore", "pipe", "inherit"] });
      child = c;
      let out = "";
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      c.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("Ready to accept connections")) {
          clearTimeout(timer);
          c.stdout!.removeAllListeners("data");
          c.stdout!.resume();
          resolve();
        }
      });
      c.once("exit", (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
    });
  const stopWith = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      const c = child;
      if (c === null || c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once("exit", () => resolve());
      c.kill(signal);
    });
  await launch();
  return { url: `redis://127.0.0.1:${port}`, port, kill: () => stopWith("SIGKILL"), restart: launch, stop: () => stopWith("SIGTERM") };
}
