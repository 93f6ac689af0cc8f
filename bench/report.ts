// npm run bench:report [-- --sizes 10000,100000,1000000 --features 10]
// Shadow reports at production scale: for each size, a fresh process fills a store through the
// project's own StoreWriter with realistic pairs (about 10 % differing, noise on timestamps, replays,
// errors, 10 features), then builds the report as JSON, Markdown and HTML. Printed per size: insert
// rate, file size, report time per format, peak RSS of that process, HTML size. Temp files only.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { buildReport, type ReportOptions } from "../src/shadow/report/build.ts";
import { renderHtml, renderMarkdown } from "../src/shadow/report/render.ts";
import { REPORT_NODE_FLAGS } from "../src/shadow/report/runner.ts";
import { StoreWriter, type PairRecord } from "../src/shadow/store/writer.ts";

const T0 = Date.UTC(2026, 11, 1);
const DAY = 86_400_000;

/** A day of pairs at an even pace: the realistic mix the issue describes. */
export function* pairs(n: number, features: number, t0 = T0): Generator<PairRecord> {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  const lognormal = (median: number) => median * Math.exp((rnd() + rnd() + rnd() - 1.5) * 0.9);
  for (let i = 0; i < n; i++) {
    const f = `feature-${i % features}`;
    const route = `/api/1/${f}/**`;
    const ts = t0 + Math.floor((i / n) * DAY);
    const differs = rnd() < 0.1;
    const error = rnd() < 0.005;
    const diffs = [{ path: "$.generated_at", kind: "value", legacy: "2026-12-01T10:00:00.123Z", new: "2026-12-01T10:00:00.456Z" }];
    if (differs) diffs.push({ path: `$.items[${i % 7}].price`, kind: rnd() < 0.5 ? "type" : "value", legacy: "12.5", new: 12.5 } as never);
    yield {
      ts, req_id: `req-${i}`, feature: f, route, method: "GET", path: `/api/1/${f}/${i % 1000}`, primary_backend: "legacy",
      legacy_status: error ? 500 : 200, new_status: 200, legacy_ms: lognormal(40), new_ms: lognormal(25), legacy_bytes: 900, new_bytes: 905,
      verdict: differs ? "mismatch" : "noise_only", diffs: JSON.stringify(diffs), replay_diffs: rnd() < 0.1 ? JSON.stringify(["$.generated_at"]) : null,
      presets: differs && rnd() < 0.3 ? '["float_format"]' : "[]", body_compared: 1, error: null,
    };
  }
}

const reportOptions = (): ReportOptions => ({
  since: T0 - 1,
  until: T0 + DAY + 1,
  thresholds: { min_pairs: 100, max_error_rate: 1, min_p99_improvement: 20, min_match_rate: 99 },
  noise: { relative: 0.2, absolute: 0.0003 },
});

/** Fill a store with n pairs; prints the insert rate. */
function fill(n: number, features: number, dir: string): void {
  const path = join(dir, `s-${n}.db`);
  const w = new StoreWriter(path, { maxBytes: 0, maxAgeMs: 0 });
  const started = performance.now();
  let batch: PairRecord[] = [];
  for (const p of pairs(n, features)) {
    batch.push(p);
    if (batch.length === 5000) {
      w.write(batch);
      batch = [];
    }
  }
  w.write(batch);
  const insertS = (performance.now() - started) / 1000;
  w.close();
  process.stdout.write(`${JSON.stringify({ insertPerS: n / insertS, bytes: statSync(path).size })}\n`);
}

/** Build the report over a filled store in each format; prints times, HTML size and this process's peak RSS. */
function report(n: number, dir: string): void {
  const path = join(dir, `s-${n}.db`);
  const db = new DatabaseSync(path, { readOnly: true });
  const time = (f: () => unknown) => {
    const t = performance.now();
    const out = f();
    return { ms: performance.now() - t, out };
  };
  const json = time(() => JSON.stringify(buildReport(db, reportOptions())));
  const md = time(() => renderMarkdown(buildReport(db, reportOptions())));
  const html = time(() => renderHtml(buildReport(db, reportOptions())));
  db.close();
  process.stdout.write(`${JSON.stringify({ jsonMs: json.ms, mdMs: md.ms, htmlMs: html.ms, htmlBytes: Buffer.byteLength(html.out as string), maxRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
}

function main(): void {
  const { values: opts } = parseArgs({
    options: {
      sizes: { type: "string", default: "10000,100000,1000000" },
      features: { type: "string", default: "10" },
      /** Internal: fill (or report on) one size in this process and print a JSON line. */
      fill: { type: "string" },
      report: { type: "string" },
      dir: { type: "string" },
    },
  });
  if (opts.fill !== undefined) return fill(Number(opts.fill), Number(opts.features), opts.dir!);
  if (opts.report !== undefined) return report(Number(opts.report), opts.dir!);
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-report-"));
  const rows: string[] = [];
  try {
    for (const n of opts.sizes.split(",").map(Number)) {
      // A process to fill and one to report, so the peak RSS is the report's alone.
      const run = (mode: string) => {
        const flags = mode === "--report" ? REPORT_NODE_FLAGS : []; // as the proxy's report process runs
        const r = spawnSync(process.execPath, [...flags, new URL(import.meta.url).pathname, mode, String(n), "--features", opts.features, "--dir", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
        if (r.status !== 0) throw new Error(`${mode} ${n} failed (${r.status})`);
        return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, number>;
      };
      const x: Record<string, number> = { n, ...run("--fill"), ...run("--report") };
      rows.push(`| ${x.n!.toLocaleString("en-US")} | ${Math.round(x.insertPerS!).toLocaleString("en-US")} | ${(x.bytes! / 1048576).toFixed(1)} MiB | ${(x.jsonMs! / 1000).toFixed(2)} s | ${(x.mdMs! / 1000).toFixed(2)} s | ${(x.htmlMs! / 1000).toFixed(2)} s | ${x.maxRssMiB!.toFixed(0)} MiB | ${(x.htmlBytes! / 1024).toFixed(0)} KiB |`);
      process.stderr.write(`bench:report: ${n} done\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`Shadow report at scale (Node ${process.version}, ${opts.features} features, a day of pairs; the reports built in a fresh process per size, peak RSS is that process's)\n\n`);
  process.stdout.write(`| pairs | inserts/s | store | report JSON | Markdown | HTML | peak RSS | HTML size |\n|---|---|---|---|---|---|---|---|\n${rows.join("\n")}\n`);
}

if (import.meta.main) main();
