// Child processes for the benches that start their own targets: start one and wait for the line
// that says where it listens, read its RSS from /proc, stop them all at the end.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
/** The proxy as it ships: the build in dist/ (the bench npm scripts run `npm run build` first). */
export const SWITCHYARD = "dist/cli/main.js";
const children: ChildProcess[] = [];

/** `node args...` from the repository root; resolves with the URL `pattern` captures and the pid. */
export function startNode(args: string[], pattern: RegExp, env: Record<string, string> = {}): Promise<{ url: string; pid: number }> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`did not start: ${out}`)), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners("data");
        child.stdout!.resume();
        resolve({ url: m[1]!, pid: child.pid! });
      }
    });
  });
}

export function stopChildren(): void {
  for (const c of children) c.kill("SIGTERM");
}

/** Resident set size of a process, MiB (Linux /proc). */
export const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;

/** An nginx.conf for one foreground worker of nginx in `dir` (no master, no access log): `http` is the body of its http block. */
export function nginxConf(dir: string, http: string, opts: { connections?: number; errorLevel?: string } = {}): string {
  return `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log ${dir}/logs/error.log ${opts.errorLevel ?? "warn"};\npid ${dir}/nginx.pid;\nevents { worker_connections ${opts.connections ?? 4096}; }\nhttp {\n  access_log off;\n${http}}\n`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
