// npm run bench:instructions [-- --variants all-on,no-log,no-metrics,fixed,bare,h2c-backend,shadow-10,undici-proxy --requests 1500 --warmup 100000 --rounds 3 --functions 40 | --threads]
// Instructions per request, counted by valgrind's callgrind: the one cost figure that does not move
// with what else the shared machine is doing (CPU time per request moved by +-20 % between runs of
// the same target on these hosts). Each variant is a `switchyard start` under callgrind in front of
// the bench backend. The first --warmup requests run uninstrumented (valgrind ~10x slower instead of
// ~100x), long enough for V8 to tier up the code a long-running proxy runs; then the counters start,
// --requests requests are sent (autocannon, 8 connections, a fixed count) and the dump's total is
// divided by them. Every thread counts (the shadow store's too). V8 still compiles a little in that
// window (callbacks paced by timers tier up late at valgrind's speed; a proxy at full speed stops
// compiling after a few hundred thousand requests): that share is reported apart and left out of
// the comparison. Timer-paced work (metrics windows, store flushes) also weighs more per request
// than at full speed: compare variants with each other, not with CPU-time figures. --functions N
// prints the N functions whose self instructions differ most from the first variant's (JavaScript
// names from node's --perf-basic-prof map). --threads also counts the main thread on its own (the
// event loop, which bounds one process's throughput while other cores are free): everything else is
// V8's GC and compiler threads and the shadow store's worker. Needs valgrind.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { has, runBench, sleep, startNode, SWITCHYARD, track, variantConfig } from "./children.ts";

const { values: opts } = parseArgs({ options: { variants: { type: "string", default: "all-on,no-log,bare,shadow-10,undici-proxy" }, requests: { type: "string", default: "1500" }, warmup: { type: "string", default: "100000" }, functions: { type: "string" }, rounds: { type: "string", default: "1" }, threads: { type: "boolean", default: false } } });
if (opts.threads && opts.functions) throw new Error("--threads and --functions: one at a time");
const root = new URL("..", import.meta.url).pathname;

async function load(url: string, amount: number): Promise<void> {
  // A fixed count (autocannon knows "amount"; its types do not).
  const r = await autocannon({ url, connections: 8, amount } as Parameters<typeof autocannon>[0]);
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx answers, ${r.errors} errors`);
}

interface Measured {
  /** Every instruction counted per request, every thread. */
  total: number;
  /** Of which V8's optimising compilers (Maglev, TurboFan), still tiering up late callbacks. */
  compile: number;
  /** The main thread alone, without compiling (with --threads; NaN otherwise). */
  main: number;
  /** Self instructions per request by function (JavaScript names from --perf-basic-prof), with --functions. */
  functions: Map<string, number>;
}

async function measure(variant: string, backend: string): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), `switchyard-bench-instructions-${variant}-`));
  const file = join(dir, "sy.yaml");
  // undici-proxy: the bare undici dispatch proxy of bench/targets, the floor the issue measures against.
  const target = variant === "undici-proxy" ? ["bench/targets/undici-proxy.ts", backend] : [SWITCHYARD, "start", "-c", file, "--state-file", join(dir, "state.json")];
  if (variant !== "undici-proxy") writeFileSync(file, variantConfig(variant, backend, dir));
  // Not instrumented until the warm-up is done (valgrind then runs ~10x slower instead of ~100x), so
  // the warm-up can be long enough for the JIT to reach the code a long-running proxy runs.
  // --perf-basic-prof also opens V8's log (isolate-*-v8.log in the working directory): into the temp dir.
  const flags = ["--max-semi-space-size=8", ...(opts.functions ? ["--perf-basic-prof", "--no-logfile-per-isolate", `--logfile=${join(dir, "v8.log")}`] : [])];
  const child = track(
    spawn("valgrind", ["--tool=callgrind", "--instr-atstart=no", ...(opts.threads ? ["--separate-threads=yes"] : []), `--callgrind-out-file=${join(dir, "cg.%p")}`, "--smc-check=all-non-file", process.execPath, ...flags, ...target], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.resume();
  let url: string | undefined;
  for (const t0 = Date.now(); url === undefined; await sleep(250)) {
    url = (/"listeners":\["([^"]+)"\]/.exec(out) ?? /READY (\S+)/.exec(out))?.[1];
    if (child.exitCode !== null) throw new Error(`${variant}: exited ${child.exitCode}: ${out.slice(-500)}`);
    if (Date.now() - t0 > 180_000) throw new Error(`${variant}: not listening after 180 s under valgrind`);
  }
  await load(url, Number(opts.warmup));
  await sleep(500);
  spawnSync("callgrind_control", ["-i", "on", String(child.pid)]);
  spawnSync("callgrind_control", ["-z", String(child.pid)]);
  await load(url, Number(opts.requests));
  await sleep(500);
  spawnSync("callgrind_control", ["-d", String(child.pid)]);
  // One dump file, or with --threads one per thread (cg.PID.1-01 is the main thread): done when every
  // file is complete and no new one came in a tick.
  const complete = (name: string) => /^(?:summary|totals): \d+/m.test(readFileSync(join(dir, name), "utf8"));
  let dumps: string[] = [];
  for (const t0 = Date.now(); Date.now() - t0 < 30_000; await sleep(250)) {
    const names = readdirSync(dir).filter((f) => f.startsWith(`cg.${child.pid}.`)).sort();
    const ready = names.length > 0 && names.every(complete);
    if (ready && (!opts.threads || names.length === dumps.length)) {
      dumps = names;
      break;
    }
    dumps = ready ? names : [];
  }
  child.kill("SIGTERM");
  if (dumps.length === 0) throw new Error(`${variant}: no callgrind dump`);
  const n = Number(opts.requests);
  let total = 0;
  let compile = 0;
  let main = NaN;
  for (const f of dumps) {
    const t = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, f), "utf8"))![1]);
    const c = annotate(join(dir, f), true).get("v8::internal::OptimizedCompilationJob::ExecuteJob") ?? 0;
    total += t;
    compile += c;
    if (opts.threads && /-0*1$/.test(f)) main = (t - c) / n;
  }
  total /= n;
  compile /= n;
  const dump = join(dir, dumps[0]!);
  const functions = new Map<string, number>();
  if (opts.functions) {
    const names = perfMap(`/tmp/perf-${child.pid}.map`);
    for (const [fn, cost] of annotate(dump, false)) {
      const name = /^0x[0-9a-f]+$/.test(fn) ? (names(parseInt(fn, 16)) ?? "(JIT code, unnamed)") : fn;
      functions.set(name, (functions.get(name) ?? 0) + cost / n);
    }
    rmSync(`/tmp/perf-${child.pid}.map`, { force: true });
  }
  return { total, compile, main, functions };
}

/** Instructions by function name from callgrind_annotate (self, or inclusive of callees). */
function annotate(dump: string, inclusive: boolean): Map<string, number> {
  const r = spawnSync("callgrind_annotate", [`--inclusive=${inclusive ? "yes" : "no"}`, "--threshold=100", dump], { encoding: "utf8", maxBuffer: 256 << 20 });
  const costs = new Map<string, number>();
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(?:[^:]*):(.*?)(?: \[[^\]]*\])?$/.exec(line);
    if (!m || line.includes("PROGRAM TOTALS")) continue;
    // "v8::internal::X::Run(args) const" -> "v8::internal::X::Run"; a JIT address stays as it is.
    const name = m[2]!.replaceAll("(anonymous namespace)", "{anon}").replace(/\(.*$/, "");
    costs.set(name, (costs.get(name) ?? 0) + Number(m[1]!.replaceAll(",", "")));
  }
  return costs;
}

/** Address -> JavaScript function, from the map node writes with --perf-basic-prof. */
function perfMap(file: string): (addr: number) => string | undefined {
  const rows = readFileSync(file, "utf8").split("\n").flatMap((l) => {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l);
    return m ? [{ start: parseInt(m[1]!, 16), end: parseInt(m[1]!, 16) + parseInt(m[2]!, 16), name: m[3]! }] : [];
  });
  rows.sort((a, b) => a.start - b.start);
  return (addr) => {
    let lo = 0;
    let hi = rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rows[mid]!;
      if (addr < r.start) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r.name.replace(/^(JS|LazyCompile|Function):[*~^+]?/, "");
    }
    return undefined;
  };
}

runBench("bench:instructions", async () => {
  if (!has("valgrind") || !has("callgrind_control")) throw new Error("valgrind is not installed (apt-get install valgrind)");
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);
  const variants = opts.variants.split(",");
  const h2cBackend = variants.includes("h2c-backend") ? await startNode(["bench/targets/backend.ts", "--h2c"], /READY (\S+)/) : null;
  // Rounds interleave the variants; a variant's row is its median round (by instructions without
  // compiling): which functions V8 inlines differs from one process to the next, +-5 %.
  const runs = new Map<string, Measured[]>(variants.map((v) => [v, []]));
  const rounds = Number(opts.rounds);
  for (let round = 1; round <= rounds; round++) {
    for (const v of variants) {
      process.stderr.write(`${v}${rounds > 1 ? ` (round ${round}/${rounds})` : ""}: warming up and counting under callgrind (a few minutes) ...\n`);
      runs.get(v)!.push(await measure(v, v === "h2c-backend" ? h2cBackend!.url : backend.url));
    }
  }
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  const steady = (m: Measured) => m.total - m.compile;
  const rows: [string, Measured][] = variants.map((v) => {
    const sorted = [...runs.get(v)!].sort((x, y) => steady(x) - steady(y));
    return [v, sorted[(sorted.length - 1) >> 1]!];
  });
  const base = steady(rows[0]![1]);
  // Against the first variant within each round too: what slows a whole round (timer-paced work
  // weighs more while the host is busy and valgrind runs slower) then cancels out.
  const firstRuns = runs.get(variants[0]!)!;
  const paired = (v: string) => runs.get(v)!.map((r, i) => steady(r) / steady(firstRuns[i]!));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;
  process.stdout.write(`\nInstructions per request (callgrind, ${opts.requests} requests after ${opts.warmup} uninstrumented, ${rounds > 1 ? `median of ${rounds} rounds, ` : ""}node ${process.version})\n`);
  const threadCols = opts.threads ? ` main thread, rounds (without compiling) | main thread vs ${rows[0]![0]} in the same round (median) |` : "";
  process.stdout.write(`| variant | instructions/request | of which JIT compiling | without it | vs ${rows[0]![0]} |${rounds > 1 ? ` rounds (without compiling) | vs ${rows[0]![0]} in the same round (median) |` : ""}${threadCols}\n|---|---|---|---|---|${rounds > 1 ? "---|---|" : ""}${opts.threads ? "---|---|" : ""}\n`);
  for (const [v, m] of rows) {
    const p = paired(v);
    const all = rounds > 1 ? ` ${runs.get(v)!.map((r) => fmt(steady(r))).join(", ")} | ${p.map((x) => x.toFixed(3)).join(", ")} (${median(p).toFixed(3)}x) |` : "";
    const pm = runs.get(v)!.map((r, i) => r.main / firstRuns[i]!.main);
    const threads = opts.threads ? ` ${runs.get(v)!.map((r) => fmt(r.main)).join(", ")} | ${pm.map((x) => x.toFixed(3)).join(", ")} (${median(pm).toFixed(3)}x) |` : "";
    process.stdout.write(`| ${v} | ${fmt(m.total)} | ${fmt(m.compile)} | ${fmt(steady(m))} | ${(steady(m) / base).toFixed(3)}x |${all}${threads}\n`);
  }
  if (opts.functions) {
    // Per function, each variant against the first: where the difference is.
    const [first, firstM] = rows[0]!;
    for (const [v, m] of rows.slice(1)) {
      const names = new Set([...firstM.functions.keys(), ...m.functions.keys()]);
      const diff = [...names].map((k) => [k, (firstM.functions.get(k) ?? 0) - (m.functions.get(k) ?? 0), firstM.functions.get(k) ?? 0] as const).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
      process.stdout.write(`\nSelf instructions per request, ${first} minus ${v} (top ${opts.functions})\n| function | ${first} | difference |\n|---|---|---|\n`);
      for (const [k, d, own] of diff.slice(0, Number(opts.functions))) process.stdout.write(`| ${k.slice(0, 110).replaceAll("|", "\\|")} | ${fmt(own)} | ${d > 0 ? "+" : ""}${fmt(d)} |\n`);
    }
    if (rows.length === 1) {
      const top = [...firstM.functions].sort((a, b) => b[1] - a[1]).slice(0, Number(opts.functions));
      process.stdout.write(`\nSelf instructions per request, ${first} (top ${opts.functions})\n| function | instructions |\n|---|---|\n`);
      for (const [k, c] of top) process.stdout.write(`| ${k.slice(0, 110).replaceAll("|", "\\|")} | ${fmt(c)} |\n`);
    }
  }
});
