// npm run profile [-- --seconds 10 --features --no-access-log --shadow 10]: CPU profile of Switchyard under wrk (or autocannon) load, summarised
// as self time per function and per package, to see where a request's time goes.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { SWITCHYARD } from "./children.ts";

const { values: opts } = parseArgs({ options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "64" }, "no-access-log": { type: "boolean", default: false }, features: { type: "boolean", default: false }, shadow: { type: "string", default: "0" } } });
const seconds = Number(opts.seconds);
const root = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "switchyard-profile-"));

function waitReady(child: ReturnType<typeof spawn>, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (c) => reject(new Error(`exited ${c}: ${out}`)));
  });
}

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number; children?: number[] }

async function main() {
  const backend = spawn(process.execPath, ["bench/targets/backend.ts"], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const backendUrl = await waitReady(backend, /READY (\S+)/);
  const file = join(dir, "switchyard.yaml");
  writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backendUrl}\n  new:\n    url: ${backendUrl}\nadmin:\n  port: 0\nlog:\n  access_log: ${!opts["no-access-log"]}\n` +
    // --features: as the bench's "switchyard" target, a feature claiming every path with a 50 % sticky split.
    (opts.features ? "features:\n  root:\n    routes: [/**]\n    target: { percent: 50 }\n" : "") +
    (Number(opts.shadow) > 0 ? `shadow:\n  enabled: true\n  percent: ${Number(opts.shadow)}\n  max_per_second: 1000000\n  max_in_flight: 128\n  store:\n    path: ${join(dir, "shadow.db")}\n` : ""));
  const proxy = spawn(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--max-semi-space-size=8", SWITCHYARD, "start", "-c", file], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const url = await waitReady(proxy, /"listeners":\["([^"]+)"\]/);
  proxy.stdout!.resume();
  process.stderr.write(`profiling ${url} for ${seconds}s\n`);
  if (spawnSync("sh", ["-c", "command -v wrk"]).status === 0) {
    spawnSync("wrk", ["-t1", `-c${opts.connections}`, `-d${seconds}s`, url], { stdio: "inherit" });
  } else {
    await autocannon({ url, connections: Number(opts.connections), duration: seconds });
  }
  await new Promise<void>((resolve) => {
    proxy.on("exit", () => resolve());
    proxy.kill("SIGTERM");
  });
  backend.kill("SIGTERM");
  // One profile per thread: the main one, and the shadow store's worker when shadow is on. Samples
  // are 1 ms of CPU each (Node's default interval), so the threads' shares add up.
  const profiles = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as { nodes: Node[] });
  // Idle (waiting in epoll) and start-up are not the request path; shares are of busy samples only.
  const busyOf = (p: { nodes: Node[] }) => p.nodes.filter((n) => n.callFrame.functionName !== "(idle)");
  const busy = profiles.flatMap(busyOf);
  const total = busy.reduce((a, n) => a + n.hitCount, 0);
  if (profiles.length > 1) {
    const threads = profiles.map((p) => busyOf(p).reduce((a, n) => a + n.hitCount, 0)).sort((a, b) => b - a);
    process.stdout.write(`\nbusy samples by thread (main first): ${threads.map((t) => `${((100 * t) / total).toFixed(1)}%`).join(", ")}\n`);
  }
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  for (const n of busy) {
    const { functionName, url: src, lineNumber } = n.callFrame;
    const short = src.replace(/^file:\/\/.*?\/node_modules\//, "").replace(/^file:\/\/.*?\/src\//, "src/");
    const key = `${functionName || "(anonymous)"} ${short}:${lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + n.hitCount);
    const pkg = src === "" ? `(${functionName || "native"})` : src.startsWith("node:") ? "node core" : /node_modules\/([^/]+)/.exec(src)?.[1] ?? (src.includes("/src/") ? "switchyard src" : src);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + n.hitCount);
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  process.stdout.write("\nself time by package (share of busy samples)\n");
  for (const [k, v] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 12)) process.stdout.write(`${pct(v)}  ${k}\n`);
  process.stdout.write("\nself time by function (top 30)\n");
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 30)) process.stdout.write(`${pct(v)}  ${k}\n`);
  process.stdout.write("\nSwitchyard's own functions (top 25)\n");
  for (const [k, v] of [...byFn].filter(([k]) => / file:\/\/\S*\/(dist|src)\//.test(` ${k}`)).sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`${pct(v)}  ${k}\n`);
}
main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
});
