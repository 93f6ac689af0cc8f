// npm run bench:instructions [-- --variants all-on,no-log,no-metrics,fixed,bare,shadow-10,undici-proxy --requests 1500 --warmup 300]
// Instructions per request, counted by valgrind's callgrind: the one cost figure that does not move
// with what else the shared machine is doing (CPU time per request moved by +-20 % between runs of
// the same target on these hosts). Each variant is a `switchyard start` under callgrind in front of
// the bench backend; after --warmup requests the counters are zeroed, --requests requests are sent
// (autocannon, 8 connections, a fixed count), and the dump's total is divided by them. Every thread of
// the proxy counts (the shadow store's too). Requests run ~100x slower under valgrind, so work that is
// paced by timers (metrics windows, store flushes, health checks) weighs more per request than at
// full speed: compare variants with each other, not with CPU-time figures. Needs valgrind.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { has, runBench, sleep, startNode, SWITCHYARD, track } from "./children.ts";

const { values: opts } = parseArgs({ options: { variants: { type: "string", default: "all-on,no-log,bare,shadow-10,undici-proxy" }, requests: { type: "string", default: "1500" }, warmup: { type: "string", default: "300" } } });
const root = new URL("..", import.meta.url).pathname;

/** The bench's "switchyard" target (a 50 % sticky feature, metrics, access log) and its variations. */
function config(variant: string, backend: string, dir: string): string {
  // shadow-N: N % mirrored as in production (store, a log line per pair, noise replays); shadow-N-quiet:
  // no pair log line and no noise replays, to tell their share.
  const shadow = /^shadow-([\d.]+)(-quiet)?$/.exec(variant);
  const known = ["all-on", "no-log", "no-metrics", "fixed", "bare"].includes(variant) || shadow !== null;
  if (!known) throw new Error(`unknown variant "${variant}" (all-on, no-log, no-metrics, fixed, bare, shadow-N, shadow-N-quiet, undici-proxy)`);
  // fixed: the feature sends everyone to legacy (no identity, no sticky cookie to mint and set).
  const target = variant === "fixed" ? "legacy" : "{ percent: 50 }";
  return (
    `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend}\n  new:\n    url: ${backend}\nadmin:\n  port: 0\n` +
    `log:\n  access_log: ${variant !== "no-log" && variant !== "bare"}\nmetrics:\n  enabled: ${variant !== "bare" && variant !== "no-metrics"}\n` +
    (variant === "bare" ? "" : `features:\n  root:\n    routes: [/**]\n    target: ${target}\n`) +
    (shadow ? `shadow:\n  enabled: true\n  percent: ${shadow[1]}\n  max_per_second: 1000000\n  max_in_flight: 128\n${shadow[2] ? "  log_pairs: none\n  noise:\n    percent: 0\n" : ""}  store:\n    path: ${join(dir, "shadow.db")}\n` : "")
  );
}

async function load(url: string, amount: number): Promise<void> {
  // A fixed count (autocannon knows "amount"; its types do not).
  const r = await autocannon({ url, connections: 8, amount } as Parameters<typeof autocannon>[0]);
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx answers, ${r.errors} errors`);
}

async function measure(variant: string, backend: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), `switchyard-bench-instructions-${variant}-`));
  const file = join(dir, "sy.yaml");
  // undici-proxy: the bare undici dispatch proxy of bench/targets, the floor the issue measures against.
  const target = variant === "undici-proxy" ? ["bench/targets/undici-proxy.ts", backend] : [SWITCHYARD, "start", "-c", file, "--state-file", join(dir, "state.json")];
  if (variant !== "undici-proxy") writeFileSync(file, config(variant, backend, dir));
  const child = track(
    spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${join(dir, "cg.%p")}`, "--smc-check=all-non-file", process.execPath, "--max-semi-space-size=8", ...target], {
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
  spawnSync("callgrind_control", ["-z", String(child.pid)]);
  await load(url, Number(opts.requests));
  await sleep(500);
  spawnSync("callgrind_control", ["-d", String(child.pid)]);
  let total = NaN;
  for (const t0 = Date.now(); Number.isNaN(total) && Date.now() - t0 < 30_000; await sleep(250)) {
    const dump = readdirSync(dir).find((f) => f.startsWith(`cg.${child.pid}.`));
    if (dump) total = Number(/^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, dump), "utf8"))?.[1]);
  }
  child.kill("SIGTERM");
  if (Number.isNaN(total)) throw new Error(`${variant}: no callgrind dump`);
  return total / Number(opts.requests);
}

runBench("bench:instructions", async () => {
  if (!has("valgrind") || !has("callgrind_control")) throw new Error("valgrind is not installed (apt-get install valgrind)");
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);
  const variants = opts.variants.split(",");
  const rows: [string, number][] = [];
  for (const v of variants) {
    process.stderr.write(`${v}: starting under callgrind (about a minute) ...\n`);
    rows.push([v, await measure(v, backend.url)]);
  }
  const base = rows[0]![1];
  process.stdout.write(`\nInstructions per request (callgrind, ${opts.requests} requests after ${opts.warmup}, node ${process.version})\n`);
  process.stdout.write(`| variant | instructions/request | vs ${rows[0]![0]} |\n|---|---|---|\n`);
  for (const [v, n] of rows) process.stdout.write(`| ${v} | ${Math.round(n).toLocaleString("en-US")} | ${(n / base).toFixed(3)}x |\n`);
});
