// Child processes for the benches that start their own targets: start one and wait for the line
// that says where it listens, read its RSS from /proc, stop them all at the end.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
/** The proxy as it ships: the build in dist/ (the bench npm scripts run `npm run build` first). */
export const SWITCHYARD = "dist/cli/main.js";
const children: ChildProcess[] = [];

/**
 * `node args...` from the repository root; resolves with the URL `pattern` captures and the pid.
 * opts.under: a command node runs under (valgrind and its options), which also waits longer for it.
 */
export function startNode(args: string[], pattern: RegExp, env: Record<string, string> = {}, opts: { under?: string[] } = {}): Promise<{ url: string; pid: number }> {
  const [cmd, ...pre] = opts.under !== undefined ? [...opts.under, process.execPath] : [process.execPath];
  const child = spawn(cmd!, [...pre, ...args], { cwd: root, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`did not start: ${out}`)), opts.under !== undefined ? 180_000 : 15_000);
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

/** Stop `child` with the others at the end (a peer started some other way, such as nginx). */
export function track(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}

export function stopChildren(): void {
  for (const c of children) c.kill("SIGTERM");
}

/** A process and its live descendants (a `workers: N` primary and its workers), Linux /proc. */
function processTree(pid: number): number[] {
  const out = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (kids !== "") for (const k of kids.split(" ")) out.push(...processTree(Number(k)));
    }
  } catch {
    // gone, or not Linux
  }
  return out;
}

/**
 * Memory of a process and its live descendants, MiB (Linux /proc): resident now (VmRSS), or its
 * peak (VmHWM). NaN when it cannot be read.
 */
export function rssMiB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    let kb = 0;
    for (const p of processTree(pid)) kb += Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? NaN);
    return kb / 1024;
  } catch {
    return NaN;
  }
}

/** An nginx.conf for one foreground worker of nginx in `dir` (no master, no access log): `http` is the body of its http block. */
export function nginxConf(dir: string, http: string, opts: { connections?: number; errorLevel?: string } = {}): string {
  return `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log ${dir}/logs/error.log ${opts.errorLevel ?? "warn"};\npid ${dir}/nginx.pid;\nevents { worker_connections ${opts.connections ?? 4096}; }\nhttp {\n  access_log off;\n${http}}\n`;
}

/**
 * The upstream and server blocks of nginx as a reverse proxy in the benches: keep-alive upstream
 * `backend`, and the request headers Switchyard sets too (Host, X-Forwarded-For, X-Real-IP), so both
 * do the same work. `listen` is the listen directive's arguments; `extra`, more server directives.
 */
export function nginxProxyServer(backendHost: string, listen: string, extra = ""): string {
  return `  upstream backend { server ${backendHost}; keepalive 128; }
  server {
    listen ${listen};
${extra}    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
    }
  }
`;
}

/** Whether a program is on PATH. */
export const has = (bin: string): boolean => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;

/** CPU seconds (user + system) a process and its live descendants have used so far (Linux /proc; NaN elsewhere). */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** CPU seconds in user space and in the kernel of a process and its live descendants (NaN elsewhere than Linux). */
export function cpuTimes(pid: number): { user: number; system: number } {
  try {
    let user = 0;
    let system = 0;
    for (const p of processTree(pid)) {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      user += Number(f[11]) / 100; // utime, in USER_HZ (100)
      system += Number(f[12]) / 100;
    }
    return { user, system };
  } catch {
    return { user: NaN, system: NaN };
  }
}

/** Run a bench's main: its error on stderr with exit code 1, every child stopped at the end. */
export function runBench(name: string, main: () => Promise<void>): void {
  main()
    .catch((err: unknown) => {
      process.stderr.write(`${name}: ${(err as Error).message}\n`);
      process.exitCode = 1;
    })
    .finally(stopChildren);
}

/**
 * A port free right now, for a peer that cannot listen on port 0 and report it (nginx). A random one
 * could be in use by the thousands of loopback connections a bench opens.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The bench's "switchyard" target (a 50 % sticky feature, metrics, access log) and its variations. */
export function variantConfig(variant: string, backend: string, dir: string): string {
  // shadow-N: N % mirrored as in production (store, a log line per pair, noise replays); shadow-N-quiet:
  // no pair log line and no noise replays, to tell their share.
  const shadow = /^shadow-([\d.]+)(-quiet)?$/.exec(variant);
  const known = ["all-on", "no-log", "no-metrics", "fixed", "bare", "h2c-backend"].includes(variant) || shadow !== null;
  if (!known) throw new Error(`unknown variant "${variant}" (all-on, no-log, no-metrics, fixed, bare, h2c-backend, shadow-N, shadow-N-quiet, undici-proxy)`);
  // h2c-backend: all-on, with HTTP/2 (prior knowledge) to the same answer from an HTTP/2 backend.
  const h2 = variant === "h2c-backend" ? "    http2: true\n" : "";
  // fixed: the feature sends everyone to legacy (no identity, no sticky cookie to mint and set).
  const target = variant === "fixed" ? "legacy" : "{ percent: 50 }";
  return (
    `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend}\n${h2}  new:\n    url: ${backend}\n${h2}admin:\n  port: 0\n` +
    `log:\n  access_log: ${variant !== "no-log" && variant !== "bare"}\nmetrics:\n  enabled: ${variant !== "bare" && variant !== "no-metrics"}\n` +
    (variant === "bare" ? "" : `features:\n  root:\n    routes: [/**]\n    target: ${target}\n`) +
    (shadow ? `shadow:\n  enabled: true\n  percent: ${shadow[1]}\n  max_per_second: 1000000\n  max_in_flight: 128\n${shadow[2] ? "  log_pairs: none\n  noise:\n    percent: 0\n" : ""}  store:\n    path: ${join(dir, "shadow.db")}\n` : "")
  );
}

/** A --variants/--flags list: separated by ";" when there is one (a value such as MALLOC_CONF holds commas), by "," otherwise. */
export const variantList = (text: string): string[] => text.split(text.includes(";") ? ";" : ",");
