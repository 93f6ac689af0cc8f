// npm run bench [-- --duration 5 --rounds 3 --connections 64 --only switchyard,direct]
// Starts a plain Node backend and, side by side, every peer in front of it (each its own process);
// loads each with autocannon (and wrk when installed), interleaving targets over several rounds, and
// prints medians with ratios to nginx and node-http-proxy. Loopback only; every run is time-bounded.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { cpuSeconds, freePort, has, median, nginxConf, nginxProxyServer, rssMiB, SWITCHYARD } from "./children.ts";

const { values: opts } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
    only: { type: "string" },
    "no-wrk": { type: "boolean", default: false },
  },
});
const DURATION = Number(opts.duration);
const ROUNDS = Number(opts.rounds);
const CONNECTIONS = Number(opts.connections);
const root = new URL("..", import.meta.url).pathname;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const children: ChildProcess[] = [];
/** Target URL -> the pid serving it (processes started here), for CPU per request. */
const pids = new Map<string, number>();

const cleanup: (() => void)[] = [];

function start(name: string, cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out) ?? /"listeners":\["([^"]+)"\]/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.resume();
        child.stdout!.removeAllListeners("data");
        child.stdout!.on("data", () => {});
        pids.set(m[1]!, child.pid!);
        resolve(m[1]!);
      }
    });
    child.on("exit", (code) => reject(new Error(`${name} exited ${code}: ${out}`)));
  });
}


async function startNginx(backend: string): Promise<string | null> {
  if (!has("nginx")) return null;
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-nginx-"));
  mkdirSync(join(dir, "logs"));
  const port = await freePort();
  const upstream = new URL(backend);
  writeFileSync(
    join(dir, "nginx.conf"),
    nginxConf(dir, nginxProxyServer(upstream.host, `127.0.0.1:${port}`)),
  );
  const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  pids.set(url, child.pid!); // master_process off: this one process serves
  for (let i = 0; i < 50; i++) {
    try {
      await fetch(url);
      return url;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("nginx did not start");
}

interface SwitchyardVariant {
  name: string;
  metrics?: boolean;
  accessLog?: boolean;
  /** A feature claiming every path with a 50 % sticky split (routing, sticky cookie, labels do real work). */
  features?: boolean;
  shadowPercent?: number;
  resilience?: { newBackend: string; on: boolean };
  workers?: number;
  /** Connection distribution between workers: round-robin through the primary (rr, the default) or workers accepting on the shared socket (none). */
  sched?: "none" | "rr";
}

function startSwitchyard(backend: string, v: SwitchyardVariant): Promise<string> {
  const { metrics = true, accessLog = true, features = true, shadowPercent = 0, resilience } = v;
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const file = join(dir, "switchyard.yaml");
  // Everything on by default: access log (to the pipe, discarded), request ids, X-Forwarded-*, limits,
  // metrics, a feature claiming the path (so the routing decision and the metrics labels do real work).
  writeFileSync(
    file,
    `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend}\n${resilienceBackend("legacy", resilience)}  new:\n    url: ${resilience?.newBackend ?? backend}\n${resilienceBackend("new", resilience)}admin:\n  port: 0\nlog:\n  access_log: ${accessLog}\n` +
      (resilience && !resilience.on ? "failover:\n  enabled: false\n" : "") +
      (v.workers !== undefined ? `workers: ${v.workers}\n` : "") +
      `metrics:\n  enabled: ${metrics}\n` +
      (features ? "features:\n  root:\n    routes: [/**]\n    target: { percent: 50 }\n" : "") +
      // Shadow: no caps binding (the whole sample is mirrored), store and one log line per pair as in production.
      (shadowPercent > 0 ? `shadow:\n  enabled: true\n  percent: ${shadowPercent}\n  max_per_second: 1000000\n  max_in_flight: 128\n  store:\n    path: ${join(dir, "shadow.db")}\n` : ""),
  );
  // As the switchyard command runs (its shebang, npm start and the Dockerfile pass the same flag).
  return start(v.name, process.execPath, ["--max-semi-space-size=8", SWITCHYARD, "start", "-c", file], v.sched ? { NODE_CLUSTER_SCHED_POLICY: v.sched } : {});
}

/**
 * Health settings for the resilience pair: two backend processes (so failover has somewhere to go),
 * active checks every second and passive detection on, or everything off.
 */
function resilienceBackend(_name: string, r: { on: boolean } | undefined): string {
  if (r === undefined) return "";
  return r.on ? "    health:\n      active: { path: /healthz, interval: 1s, timeout: 500ms }\n" : "    health:\n      passive: { consecutive_failures: 0 }\n";
}

interface Sample { rps: number; p50: number; p99: number; errors: number; cpuUs?: number; rssMiB?: number }

/** CPU seconds and resident MiB of the process tree serving `url` (NaN when unknown). */
const cpuOf = (url: string) => (pids.has(url) ? cpuSeconds(pids.get(url)!) : NaN);
const rssOf = (url: string) => (pids.has(url) ? rssMiB(pids.get(url)!) : NaN);
const perRequestUs = (cpu0: number, cpu1: number, n: number) => (Number.isFinite(cpu1 - cpu0) && n > 0 ? ((cpu1 - cpu0) * 1e6) / n : undefined);
const orUndefined = (x: number) => (Number.isFinite(x) ? x : undefined);

async function loadAutocannon(url: string, seconds: number): Promise<Sample> {
  const cpu0 = cpuOf(url);
  const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, pipelining: 1 });
  const cpu1 = cpuOf(url);
  // The target process's own CPU per request: fair on a shared machine, where req/s also pays for
  // the load generator and the backend.
  const cpuUs = perRequestUs(cpu0, cpu1, r.requests.total);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx, cpuUs, rssMiB: orUndefined(rssOf(url)) };
}

function loadWrk(url: string, seconds: number): Sample | null {
  if (opts["no-wrk"] || !has("wrk")) return null;
  const cpu0 = cpuOf(url);
  const r = spawnSync("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", url], { encoding: "utf8", timeout: (seconds + 10) * 1000 });
  const cpu1 = cpuOf(url);
  const total = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
  const cpuUs = perRequestUs(cpu0, cpu1, total);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const ms = (label: string) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(r.stdout);
    if (!m) return NaN;
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0) + Number(/Socket errors:.*?(\d+)/.exec(r.stdout)?.[1] ?? 0);
  return { rps, p50: ms("50"), p99: ms("99"), errors, cpuUs, rssMiB: orUndefined(rssOf(url)) };
}

async function main(): Promise<void> {
  log(`bench: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${CONNECTIONS} connections, ${DURATION}s x ${ROUNDS} rounds`);
  const backend = await start("backend", process.execPath, ["bench/targets/backend.ts"]);
  const targets: [string, string][] = [["direct", backend]];
  const only = opts.only?.split(",");
  const want = (n: string) => !only || only.includes(n);
  if (want("switchyard")) targets.push(["switchyard", await startSwitchyard(backend, { name: "switchyard" })]);
  // The cost of metrics on the hot path: the same proxy with metrics.enabled false.
  if (want("switchyard-no-metrics")) targets.push(["switchyard-no-metrics", await startSwitchyard(backend, { name: "switchyard-no-metrics", metrics: false })]);
  // On request: the access log's share, and Switchyard with nothing on (one backend, no features,
  // no metrics, no access log) - what the proxy core costs beside the bare undici proxy.
  if (only?.includes("switchyard-no-log")) targets.push(["switchyard-no-log", await startSwitchyard(backend, { name: "switchyard-no-log", accessLog: false })]);
  if (only?.includes("switchyard-bare")) targets.push(["switchyard-bare", await startSwitchyard(backend, { name: "switchyard-bare", accessLog: false, metrics: false, features: false })]);
  // Every core, on request only (--only switchyard-workers-1,switchyard-workers-2,switchyard-workers-2-shared):
  // everything on, served by N workers; CPU and RSS are the whole process tree's.
  for (const name of only ?? []) {
    const m = /^switchyard-workers-(\d+)(-shared)?$/.exec(name);
    if (m) targets.push([name, await startSwitchyard(backend, { name, workers: Number(m[1]), sched: m[2] ? "none" : "rr" })]);
  }
  // Shadow traffic costs, on request only (--only switchyard,switchyard-shadow-10,switchyard-shadow-100).
  for (const p of [10, 100]) if (only?.includes(`switchyard-shadow-${p}`)) targets.push([`switchyard-shadow-${p}`, await startSwitchyard(backend, { name: `switchyard-shadow-${p}`, shadowPercent: p })]);
  // The cost of health checks and of the failover path when nothing fails, on request only
  // (--only switchyard-resilience-on,switchyard-resilience-off): two backends, a 50 % split.
  if (only?.some((n) => n.startsWith("switchyard-resilience"))) {
    const second = await start("backend-2", process.execPath, ["bench/targets/backend.ts"]);
    for (const on of [true, false]) {
      const name = `switchyard-resilience-${on ? "on" : "off"}`;
      if (only.includes(name)) targets.push([name, await startSwitchyard(backend, { name, resilience: { newBackend: second, on } })]);
    }
  }
  if (want("nginx")) {
    const nginx = await startNginx(backend);
    if (nginx) targets.push(["nginx", nginx]);
    else log("bench: nginx not on PATH (apt-get install nginx-light) - skipping that peer");
  }
  // The floor: a bare undici dispatch proxy, the reference of the performance goals (on request).
  if (only?.includes("undici-proxy")) targets.push(["undici-proxy", await start("undici-proxy", process.execPath, ["bench/targets/undici-proxy.ts", backend])]);
  if (want("node-http-proxy")) targets.push(["node-http-proxy", await start("node-http-proxy", process.execPath, ["bench/targets/node-http-proxy.ts", backend])]);
  if (want("fastify-http-proxy")) targets.push(["fastify-http-proxy", await start("fastify-http-proxy", process.execPath, ["bench/targets/fastify-proxy.ts", backend])]);

  const samples = new Map<string, { ac: Sample[]; wrk: Sample[] }>(targets.map(([n]) => [n, { ac: [], wrk: [] }]));
  for (let round = 1; round <= ROUNDS; round++) {
    // Rotate the order each round so no target always runs right after the same neighbour.
    const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
    for (const [name, url] of order) {
      log(`round ${round}/${ROUNDS}: ${name} (warm-up 1s, autocannon ${DURATION}s${loadWrk.length && has("wrk") && !opts["no-wrk"] ? `, wrk ${DURATION}s` : ""})`);
      await loadAutocannon(url, 1);
      samples.get(name)!.ac.push(await loadAutocannon(url, DURATION));
      const w = loadWrk(url, DURATION);
      if (w) samples.get(name)!.wrk.push(w);
    }
  }

  const summary = targets.map(([name]) => {
    const s = samples.get(name)!;
    const pick = (xs: Sample[], k: "rps" | "p50" | "p99" | "cpuUs" | "rssMiB") => median(xs.flatMap((x) => (x[k] === undefined ? [] : [x[k]])));
    const sum = (xs: Sample[]) => ({ rps: pick(xs, "rps"), p50: pick(xs, "p50"), p99: pick(xs, "p99"), cpuUs: pick(xs, "cpuUs"), rssMiB: pick(xs, "rssMiB"), errors: xs.reduce((a, x) => a + x.errors, 0) });
    return { name, ac: sum(s.ac), wrk: s.wrk.length ? sum(s.wrk) : null };
  });
  const ref = (n: string, tool: "ac" | "wrk") => summary.find((s) => s.name === n)?.[tool]?.rps;
  const refCpu = (n: string) => summary.find((s) => s.name === n)?.wrk?.cpuUs ?? summary.find((s) => s.name === n)?.ac.cpuUs;
  const ratio = (v: number | undefined, r: number | undefined) => (v && r ? `${(v / r).toFixed(2)}x` : "-");
  const f0 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "-" : Math.round(n).toLocaleString("en-US"));
  const f2 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(2));

  // CPU per request is the figure that holds on a shared machine; wrk's is the fairer (autocannon
  // itself takes about twice wrk's CPU per request from the same two cores).
  const header = ["target", "wrk req/s", "wrk p50 ms", "wrk p99 ms", "wrk cpu us/req", "cpu vs undici-proxy", "wrk vs nginx", "ac req/s", "ac p50 ms", "ac p99 ms", "ac cpu us/req", "ac vs nginx", "ac vs http-proxy", "rss MiB", "errors"];
  const rows = summary.map((s) => [
    s.name, f0(s.wrk?.rps), f2(s.wrk?.p50), f2(s.wrk?.p99), f2(s.wrk?.cpuUs), ratio(s.wrk?.cpuUs ?? s.ac.cpuUs, refCpu("undici-proxy")), ratio(s.wrk?.rps, ref("nginx", "wrk")),
    f0(s.ac.rps), f2(s.ac.p50), f2(s.ac.p99), f2(s.ac.cpuUs), ratio(s.ac.rps, ref("nginx", "ac")), ratio(s.ac.rps, ref("node-http-proxy", "ac")),
    f0(Math.max(s.ac.rssMiB, s.wrk?.rssMiB ?? 0)), String(s.ac.errors + (s.wrk?.errors ?? 0)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  process.stdout.write(`\nSwitchyard bench - node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${CONNECTIONS} connections, median of ${ROUNDS} x ${DURATION}s\n`);
  process.stdout.write(`${line(header)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|\n${rows.map(line).join("\n")}\n`);
  mkdirSync(join(root, "bench/results"), { recursive: true });
  const out = join(root, "bench/results", `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(out, JSON.stringify({ node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, connections: CONNECTIONS, duration: DURATION, rounds: ROUNDS, summary, samples: Object.fromEntries(samples) }, null, 2));
  log(`bench: raw samples in ${out}`);
}

function stopAll(): void {
  for (const c of children) c.kill("SIGTERM");
  for (const f of cleanup) f();
}

process.on("SIGINT", () => {
  stopAll();
  process.exit(130);
});
main().then(
  () => stopAll(),
  (err: unknown) => {
    log(`bench: ${(err as Error).message}`);
    stopAll();
    process.exitCode = 1;
  },
);
