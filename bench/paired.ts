// npm run bench:paired [-- --variants all-on,shadow-10 --rounds 12 --seconds 4 --warmup 20 --connections 32]
// CPU time per request of several targets loaded at the same time. On these shared hosts the speed
// of the machine moves by +-20 % from one run to the next, so two targets loaded one after the other
// are measured on different machines; loaded together, in the same seconds, they share whatever the
// host is doing. Each variant (the same ones as bench:instructions: all-on, no-log, no-metrics,
// fixed, bare, h2c-backend, shadow-N, shadow-N-quiet, undici-proxy) runs as its own process in front
// of one backend, and each round one wrk per variant loads them all for the same seconds. A round
// gives every variant's CPU per request (user and kernel, from /proc) and its ratio to the first
// variant's in that round; the table shows medians over rounds, after --warmup seconds of the same
// load uncounted (V8 compiling). Throughput is not compared: the variants share the cores and the
// backend, so one's requests per second depend on the others'.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuTimes, has, median, runBench, startNode, SWITCHYARD, variantConfig, variantList } from "./children.ts";

const { values: opts } = parseArgs({
  options: {
    variants: { type: "string", default: "all-on,shadow-10" },
    rounds: { type: "string", default: "12" },
    seconds: { type: "string", default: "4" },
    warmup: { type: "string", default: "20" },
    connections: { type: "string", default: "32" },
  },
});

interface Load {
  requests: number;
  p50ms: number;
}

/** wrk -t1 against url for seconds; resolves with the requests it completed and its p50. */
function wrk(url: string, seconds: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    const child = spawn("wrk", ["-t1", `-c${opts.connections}`, `-d${seconds}s`, "--latency", url], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", () => {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
      const p50 = /\s50%\s+([\d.]+)(us|ms|s)/.exec(out);
      if (!Number.isFinite(requests) || requests === 0) reject(new Error(`wrk against ${url} completed no request:\n${out}`));
      else resolve({ requests, p50ms: p50 ? Number(p50[1]) * (p50[2] === "us" ? 0.001 : p50[2] === "s" ? 1000 : 1) : NaN });
    });
  });
}

async function main(): Promise<void> {
  if (!has("wrk")) throw new Error("wrk is not installed (apt-get install wrk)");
  const names = variantList(opts.variants);
  if (names.length < 2) throw new Error("--variants: name at least two (the first is the reference)");
  const rounds = Number(opts.rounds);
  const seconds = Number(opts.seconds);
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);
  const h2c = names.includes("h2c-backend") ? await startNode(["bench/targets/backend.ts", "--h2c"], /READY (\S+)/) : null;
  const variants: { name: string; url: string; pid: number; user: number[]; system: number[]; p50: number[] }[] = [];
  for (const label of names) {
    const [name, ...envs] = label.split("@");
    // "all-on@NAME=value": with that environment variable; "all-on@dist=PATH": another build's
    // dist/cli/main.js (a worktree of an earlier commit), for before/after in one run.
    const { dist = SWITCHYARD, ...env } = Object.fromEntries(envs.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])) as Record<string, string>;
    const dir = mkdtempSync(join(tmpdir(), `switchyard-bench-paired-${name}-`));
    const file = join(dir, "switchyard.yaml");
    const args = name === "undici-proxy" ? ["bench/targets/undici-proxy.ts", backend.url] : [dist, "start", "-c", file, "--state-file", join(dir, "state.json")];
    if (name !== "undici-proxy") writeFileSync(file, variantConfig(name!, name === "h2c-backend" ? h2c!.url : backend.url, dir));
    // As the switchyard command runs (its shebang passes the same flag).
    const p = await startNode(["--max-semi-space-size=8", ...args], name === "undici-proxy" ? /READY (\S+)/ : /"listeners":\["([^"]+)"\]/, env);
    variants.push({ name: label, ...p, user: [], system: [], p50: [] });
  }
  process.stderr.write(`bench:paired: ${names.join(", ")} loaded together, ${opts.warmup} s uncounted, then ${rounds} x ${seconds} s\n`);
  await Promise.all(variants.map((v) => wrk(v.url, Number(opts.warmup))));
  for (let round = 1; round <= rounds; round++) {
    const before = variants.map((v) => cpuTimes(v.pid));
    const loads = await Promise.all(variants.map((v) => wrk(v.url, seconds)));
    variants.forEach((v, i) => {
      const after = cpuTimes(v.pid);
      v.user.push(((after.user - before[i]!.user) * 1e6) / loads[i]!.requests);
      v.system.push(((after.system - before[i]!.system) * 1e6) / loads[i]!.requests);
      v.p50.push(loads[i]!.p50ms);
    });
    process.stderr.write(`round ${round}/${rounds}: ${variants.map((v) => `${v.name} ${(v.user.at(-1)! + v.system.at(-1)!).toFixed(1)} µs`).join(", ")}\n`);
  }
  const ref = variants[0]!;
  const total = (v: (typeof variants)[number]) => v.user.map((u, i) => u + v.system[i]!);
  const refTotal = total(ref);
  process.stdout.write(`\nbench:paired - node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, wrk -t1 -c${opts.connections} per variant, all at once, median of ${rounds} x ${seconds} s after ${opts.warmup} s\n`);
  process.stdout.write(`| variant | CPU µs/request | user | kernel | vs ${ref.name} (median of rounds) | vs ${ref.name}, rounds sorted | wrk p50 ms |\n|---|---|---|---|---|---|---|\n`);
  for (const v of variants) {
    const ratios = total(v).map((t, i) => t / refTotal[i]!);
    const sorted = [...ratios].sort((a, b) => a - b).map((r) => r.toFixed(3));
    process.stdout.write(`| ${v.name} | ${median(total(v)).toFixed(1)} | ${median(v.user).toFixed(1)} | ${median(v.system).toFixed(1)} | ${v === ref ? "1.000" : median(ratios).toFixed(3)} | ${v === ref ? "-" : sorted.join(", ")} | ${median(v.p50).toFixed(2)} |\n`);
  }
}

runBench("bench:paired", main);
