// Real servers on 127.0.0.1:0 for tests, and a Switchyard in front of them with logs captured as
// parsed JSON lines.
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { Switchyard } from "../../src/app.ts";
import { parseConfigText } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { createLogger } from "../../src/observe/logger.ts";

export interface TestBackend {
  url: string;
  port: number;
  server: http.Server;
  /** Every request the backend saw, with its raw headers. */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[] }[];
  close(): Promise<void>;
}

export async function startBackend(handler: http.RequestListener): Promise<TestBackend> {
  const seen: TestBackend["seen"] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A backend answering 200 with a small JSON body describing what it received. */
export function echoBackend(name = "legacy"): Promise<TestBackend> {
  return startBackend((req, res) => {
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ backend: name, url: req.url, bytes: n }));
    });
  });
}

/** A backend answering every request `status` with {"backend": name} (a failing one: 500). */
export function fixedBackend(name: string, status = 200): Promise<TestBackend> {
  return startBackend((req, res) => {
    req.resume();
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ backend: name }));
  });
}

/** A healthy legacy and a new backend that answers 500 to everything (the guard's tests). */
export async function failingPair(): Promise<{ legacy: TestBackend; failing: TestBackend; close(): Promise<void> }> {
  const legacy = await fixedBackend("legacy");
  const failing = await fixedBackend("new", 500);
  return { legacy, failing, close: async () => void (await Promise.all([legacy.close(), failing.close()])) };
}

/** A port that refuses connections (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface TestProxy {
  app: Switchyard;
  url: string;
  port: number;
  logs: Record<string, unknown>[];
  /** Access-log lines ("request" messages) only. */
  accessLogs(): Record<string, unknown>[];
  close(): Promise<void>;
}

/** A Switchyard from YAML text (a template with {{LEGACY}} / {{NEW}} replaced by backend URLs). */
export async function startProxy(yamlExtra: string, legacyUrl: string, newUrl = legacyUrl): Promise<TestProxy> {
  const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${legacyUrl}\n  new:\n    url: ${newUrl}\nadmin:\n  port: 0\n${yamlExtra}`;
  const result = parseConfigText(text, "test.yaml", {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  return startProxyWithConfig(result.config);
}

export async function startProxyWithConfig(config: Config): Promise<TestProxy> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ level: "info", destination: sink });
  const app = await Switchyard.start(config, { logger });
  const url = app.urls[0]!;
  return {
    app,
    url,
    port: Number(new URL(url).port),
    logs,
    accessLogs: () => logs.filter((l) => l.msg === "request"),
    close: async () => {
      await app.shutdown(1000);
    },
  };
}

/** Send raw bytes and collect everything until the server closes or `idleMs` passes without data. */
export function rawExchange(port: number, payload: string | Buffer, idleMs = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout;
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    };
    sock.on("connect", () => {
      sock.write(payload);
      arm();
    });
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      arm();
    });
    sock.on("end", done);
    sock.on("error", (err) => (chunks.length > 0 ? done() : reject(err)));
  });
}

/** Resolves once `cond()` holds, checking every 10 ms, or rejects after `ms` with `what`. */
export async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A Switchyard in its own process (`switchyard start`), so its memory can be measured apart from the test's. */
export interface ProxyProcess {
  url: string;
  pid: number;
  /** Resident and peak-resident set of the proxy process, bytes (Linux /proc). */
  memory(): { rss: number; peak: number };
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** What it wrote on stdout since it started listening (its log lines; the last MiB of them). */
  output(): string;
}

/** backendYaml: lines added to both backends' settings (indented 4 spaces), e.g. a pool size. */
export async function spawnProxy(yamlExtra: string, legacyUrl: string, backendYaml = ""): Promise<ProxyProcess> {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "switchyard-proc-"));
  const file = join(dir, "switchyard.yaml");
  writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${legacyUrl}\n${backendYaml}  new:\n    url: ${legacyUrl}\n${backendYaml}admin:\n  port: 0\n${yamlExtra}`);
  return spawnProxyFile(file, {});
}

/** `switchyard start -c file` in its own process, with extra environment. */
export async function spawnProxyFile(file: string, env: Record<string, string>): Promise<ProxyProcess> {
  const { spawn } = await import("node:child_process");
  const { readFileSync } = await import("node:fs");
  const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, "start", "-c", file], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"listeners":\["([^"]+)"\]/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`proxy exited ${code}: ${out}`)));
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => {
    output += d.toString();
    if (output.length > 2 * 1024 * 1024) output = output.slice(-1024 * 1024);
  });
  const kib = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return {
    url,
    pid: child.pid!,
    output: () => output,
    memory() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      return { rss: kib(status, "VmRSS"), peak: kib(status, "VmHWM") };
    },
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", (code) => resolve(code));
        child.kill("SIGTERM");
      }),
  };
}

/** Two backends that stamp which one answered: {"backend":"legacy"|"new", "path": ...}. */
export async function stampingBackends(): Promise<{ legacy: TestBackend; new: TestBackend; close(): Promise<void> }> {
  const stamp = (name: string) =>
    startBackend((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ backend: name, path: req.url }));
      });
    });
  const legacy = await stamp("legacy");
  const neu = await stamp("new");
  return { legacy, new: neu, close: async () => void (await Promise.all([legacy.close(), neu.close()])) };
}

/** A Switchyard from a config file with the given environment (ports default to 0 = free). */
export async function startProxyFromFile(file: string, env: Record<string, string>): Promise<TestProxy> {
  const { loadConfigFile } = await import("../../src/config/load.ts");
  const result = loadConfigFile(file, { SWITCHYARD_PORT: "0", SWITCHYARD_ADMIN_PORT: "0", ...env });
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  return startProxyWithConfig(result.config);
}
