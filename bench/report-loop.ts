// npm run bench:report-loop [-- --pairs 1000000 --seconds 5 --switchyard DIR] [--trim]
// Does a big comparison report slow the proxy down? A store is filled with a day of pairs, a
// Switchyard serves from a plain backend with that store as its shadow store, and 16 keep-alive
// clients keep requests going: first alone (baseline), then while GET /shadow?since=24h builds a
// report over every pair. Printed: request latency p50/p99/max in both phases, the longest gap between
// two answers, and how long the report took. --switchyard DIR runs an older checkout (before/after).
// --trim instead starts the proxy with shadow.store.max_size at a fifth of the store and measures the
// load while the store trims itself down at start.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Pool, request } from "undici";
import { StoreWriter, type PairRecord } from "../src/shadow/store/writer.ts";
import { rssMiB } from "./children.ts";
import { pairs } from "./report.ts";

const { values: opts } = parseArgs({ options: { pairs: { type: "string", default: "1000000" }, seconds: { type: "string", default: "5" }, switchyard: { type: "string" }, trim: { type: "boolean", default: false } } });
const root = resolve(opts.switchyard ?? new URL("..", import.meta.url).pathname);
const children: ChildProcess[] = [];

/** Start a process and resolve with everything it printed once `match` matches it. */
function startChild(args: string[], env: NodeJS.ProcessEnv, match: RegExp): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolveOut, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (match.test(out)) {
        child.stdout!.removeAllListeners("data");
        child.stdout!.resume();
        resolveOut(out);
      }
    });
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${out.slice(-500)}`)));
  });
}

interface Phase {
  latencies: number[];
  maxGap: number;
}

/** Keep `concurrency` requests going until `until()` says stop; latency of each, and the longest silence. */
async function load(url: string, concurrency: number, until: () => boolean): Promise<Phase> {
  const pool = new Pool(url, { connections: concurrency });
  const latencies: number[] = [];
  let last = performance.now();
  let maxGap = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!until()) {
        const t = performance.now();
        const res = await pool.request({ path: "/api/ping", method: "GET" });
        await res.body.dump();
        const now = performance.now();
        latencies.push(now - t);
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }
    }),
  );
  await pool.close();
  return { latencies, maxGap };
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-report-loop-"));
  try {
    const n = Number(opts.pairs);
    const store = join(dir, "shadow.db");
    const w = new StoreWriter(store, { maxBytes: 0, maxAgeMs: 0 });
    let batch: PairRecord[] = [];
    const t0 = Date.now() - 86_400_000 - 60_000; // a day of pairs, ending a minute ago
    for (const p of pairs(n, 10, t0)) {
      batch.push(p);
      if (batch.length === 5000) {
        w.write(batch);
        batch = [];
      }
    }
    w.write(batch);
    w.close();
    process.stderr.write(`bench:report-loop: store of ${n} pairs filled\n`);

    const backend = /READY (\S+)/.exec(await startChild(["bench/targets/backend.ts"], process.env, /READY \S+\n/))![1]!;
    const cfg = join(dir, "sy.yaml");
    const storeBytes = statSync(store).size;
    const maxSize = opts.trim ? `${Math.floor(storeBytes / 5)}` : "8GiB";
    writeFileSync(cfg, `listeners: [{ host: 127.0.0.1, port: 0 }]\nbackends:\n  legacy: { url: "${backend}" }\n  new: { url: "${backend}" }\nadmin: { host: 127.0.0.1, port: 0 }\nlog: { access_log: false }\nshadow:\n  enabled: true\n  percent: 0\n  store: { path: ${store}, max_size: ${maxSize}, max_age: 7d }\n`);
    const env = { ...process.env, SWITCHYARD_STATE_DIR: dir };
    // The proxy's URL and the admin API's, from its log lines (the admin line comes last).
    const log = await startChild([join(root, "dist/cli/main.js"), "start", "-c", cfg, "--no-watch"], env, /"admin":"http:[^"]+"/);
    const proxyUrl = /"listeners":\["([^"]+)"\]/.exec(log)![1]!;
    const adminUrl = /"admin":"(http:[^"]+)"/.exec(log)![1]!;
    const seconds = Number(opts.seconds) * 1000;
    if (opts.trim) {
      // The load from the moment the proxy is up, while the store's worker trims it to max_size.
      const started = performance.now();
      const end = started + seconds;
      const during = await load(proxyUrl, 16, () => performance.now() > end);
      const fmt = (x: number) => x.toFixed(1);
      process.stdout.write(`Proxy latency in the first ${opts.seconds} s after start, while a ${(storeBytes / 1048576).toFixed(0)} MiB store of ${n.toLocaleString("en-US")} pairs trims itself to max_size ${(Number(maxSize) / 1048576).toFixed(0)} MiB (Switchyard at ${root})\n\n`);
      process.stdout.write(`| requests | p50 ms | p99 ms | max ms | longest gap between answers ms | store after |\n|---|---|---|---|---|---|\n`);
      process.stdout.write(`| ${during.latencies.length} | ${fmt(q(during.latencies, 0.5))} | ${fmt(q(during.latencies, 0.99))} | ${fmt(maxOf(during.latencies))} | ${fmt(during.maxGap)} | ${(statSync(store).size / 1048576).toFixed(0)} MiB |\n`);
      return;
    }

    // Warm up, then the baseline.
    let end = performance.now() + 1000;
    await load(proxyUrl, 16, () => performance.now() > end);
    end = performance.now() + seconds;
    const base = await load(proxyUrl, 16, () => performance.now() > end);

    // The same load while the report is built; the proxy's own RSS before and after.
    const proxyPid = children.at(-1)!.pid!;
    const rssBefore = rssMiB(proxyPid);
    let reportMs = 0;
    let building = true;
    const report = (async () => {
      const t = performance.now();
      const res = await request(`${adminUrl}/shadow?since=24h`, { headersTimeout: 600_000, bodyTimeout: 600_000 });
      const body = await res.body.text();
      reportMs = performance.now() - t;
      building = false;
      return { status: res.statusCode, bytes: body.length };
    })();
    const during = await load(proxyUrl, 16, () => !building);
    const r = await report;
    const fmt = (x: number) => x.toFixed(1);
    process.stdout.write(`Proxy latency while GET /shadow?since=24h builds a report over ${n.toLocaleString("en-US")} pairs (Switchyard at ${root}, 16 keep-alive clients)\n\n`);
    process.stdout.write(`| phase | requests | p50 ms | p99 ms | max ms | longest gap between answers ms |\n|---|---|---|---|---|---|\n`);
    for (const [name, p] of [["alone", base], ["during the report", during]] as const) {
      process.stdout.write(`| ${name} | ${p.latencies.length} | ${fmt(q(p.latencies, 0.5))} | ${fmt(q(p.latencies, 0.99))} | ${fmt(maxOf(p.latencies))} | ${fmt(p.maxGap)} |\n`);
    }
    process.stdout.write(`\nThe report: HTTP ${r.status}, ${(r.bytes / 1024).toFixed(0)} KiB, ${(reportMs / 1000).toFixed(2)} s. Proxy RSS ${rssBefore.toFixed(0)} MiB before, ${rssMiB(proxyPid).toFixed(0)} MiB after.\n`);
  } finally {
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:report-loop: ${(err as Error).stack ?? String(err)}\n`);
  for (const c of children) c.kill("SIGKILL");
  process.exitCode = 1;
});

/** The largest value (no spread: arrays here hold hundreds of thousands). */
function maxOf(xs: readonly number[]): number {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  return m;
}
