// A real nginx (Debian's package) on loopback, in a temp prefix, as the reference the import is
// checked against. Missing nginx: the test fails loudly (CI installs it; `apt-get install nginx`).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const NGINX = "/usr/sbin/nginx";

export function requireNginx(): void {
  if (spawnSync(NGINX, ["-v"]).status !== 0) {
    throw new Error("nginx is not installed: the import's differential test needs the real one (apt-get install nginx; .ci/run installs it)");
  }
}

export interface Nginx {
  /** The main config file written. */
  file: string;
  stop(): Promise<void>;
}

/** Write `conf` into a temp prefix and run nginx on it in the foreground until `port` accepts. */
export async function startNginx(conf: string, port: number): Promise<Nginx> {
  requireNginx();
  const dir = mkdtempSync(join(tmpdir(), "switchyard-nginx-"));
  mkdirSync(join(dir, "logs"));
  const file = join(dir, "nginx.conf");
  writeFileSync(file, conf);
  const child: ChildProcess = spawn(NGINX, ["-p", dir, "-c", file, "-e", "stderr", "-g", `daemon off; pid ${join(dir, "nginx.pid")};`], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${err}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    file,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGQUIT");
      }),
  };
}
