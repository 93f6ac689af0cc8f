// npm run bench:memory [-- --flags "--max-semi-space-size=8;--max-semi-space-size=8 SWITCHYARD_ALLOCATOR=system" --seconds 6 --idle 60 --settle 15]
// Does the proxy give memory back after load? Switchyard (everything on) under each set of node
// flags, side by side in front of one backend: RSS 2 s after start, idle once settled (--settle
// seconds: past memory.idle_trim_after, 10 s by default), right after each round of wrk load (CPU
// per request measured too), and after --idle seconds without traffic, with the CPU (all threads) it
// spent in them, ms per second. A variant is node flags and NAME=value environment settings; the
// default compares the allocators (jemalloc, which `switchyard start` re-executes on when installed,
// against glibc's). Needs wrk (apt-get install wrk).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { allocatorIn } from "../src/observe/memory.ts";
import { cpuSeconds, has, rssMiB, runBench, sleep, startNode, SWITCHYARD, variantList } from "./children.ts";

const { values: opts } = parseArgs({ options: { flags: { type: "string", default: "--max-semi-space-size=8;--max-semi-space-size=8 SWITCHYARD_ALLOCATOR=system" }, seconds: { type: "string", default: "6" }, rounds: { type: "string", default: "2" }, idle: { type: "string", default: "60" }, settle: { type: "string", default: "15" } } });


async function main(): Promise<void> {
  if (!has("wrk")) throw new Error("wrk is not installed (apt-get install wrk)");
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-memory-"));
  const file = join(dir, "sy.yaml");
  writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nfeatures:\n  root:\n    routes: [/**]\n    target: { percent: 50 }\n`);
  const variants: { flags: string; url: string; pid: number; start: number; idle: number; after: number[]; cpuUs: number[]; later: number; idleCpuMsPerS: number; allocator: string }[] = [];
  for (const flags of variantList(opts.flags)) {
    // A variant is node flags and NAME=value environment settings (MALLOC_ARENA_MAX=2), space separated.
    const tokens = flags === "none" ? [] : flags.split(" ");
    const env = Object.fromEntries(tokens.filter((t) => /^[A-Z_]+=/.test(t)).map((t) => [t.slice(0, t.indexOf("=")), t.slice(t.indexOf("=") + 1)]));
    const nodeArgs = tokens.filter((t) => !/^[A-Z_]+=/.test(t));
    const p = await startNode([...nodeArgs, SWITCHYARD, "start", "-c", file], /"listeners":\["([^"]+)"\]/, env);
    variants.push({ flags, ...p, start: NaN, idle: NaN, after: [], cpuUs: [], later: NaN, idleCpuMsPerS: NaN, allocator: "" });
  }
  await sleep(2000);
  for (const v of variants) {
    v.start = rssMiB(v.pid);
    v.allocator = allocatorIn(readFileSync(`/proc/${v.pid}/maps`, "utf8"));
  }
  process.stderr.write(`settling ${opts.settle} s...\n`);
  await sleep(Math.max(0, Number(opts.settle) - 2) * 1000);
  for (const v of variants) v.idle = rssMiB(v.pid);
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const v of variants) {
      const c0 = cpuSeconds(v.pid);
      const r = spawnSync("wrk", ["-t1", "-c64", `-d${opts.seconds}s`, v.url], { encoding: "utf8" });
      const n = Number(/(\d+) requests in/.exec(r.stdout)?.[1]);
      v.cpuUs.push(((cpuSeconds(v.pid) - c0) * 1e6) / n);
      v.after.push(rssMiB(v.pid));
    }
  }
  process.stderr.write(`idle ${opts.idle} s...\n`);
  const idleCpu0 = variants.map((v) => cpuSeconds(v.pid));
  await sleep(Number(opts.idle) * 1000);
  variants.forEach((v, i) => {
    v.later = rssMiB(v.pid);
    // What a proxy with no traffic spends (timers, samplers, GC), all threads.
    v.idleCpuMsPerS = ((cpuSeconds(v.pid) - idleCpu0[i]!) * 1000) / Number(opts.idle);
  });
  const f = (x: number) => x.toFixed(0);
  process.stdout.write(`\nbench:memory - node ${process.version}, wrk -c64 ${opts.rounds} x ${opts.seconds} s per variant, then ${opts.idle} s idle\n`);
  process.stdout.write(`| node flags | allocator | RSS at 2 s MiB | idle RSS (${opts.settle} s) MiB | after load MiB | ${opts.idle} s later MiB | later vs idle | wrk CPU µs/req | idle CPU ms/s |\n|---|---|---|---|---|---|---|---|---|\n`);
  for (const v of variants) {
    process.stdout.write(`| ${v.flags} | ${v.allocator} | ${f(v.start)} | ${f(v.idle)} | ${v.after.map(f).join(", ")} | ${f(v.later)} | ${((v.later / v.idle - 1) * 100).toFixed(0)} % | ${v.cpuUs.map(f).join(", ")} | ${v.idleCpuMsPerS.toFixed(1)} |\n`);
  }
}

runBench("bench:memory", main);
