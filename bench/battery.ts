// npm run battery [-- --against nginx] [--switchyard DIR] [--fuzz N] [--markdown]
// The raw cases of test/battery (RELIABILITY.md A1, A2, C1, P1, P2) through Switchyard and, when
// installed, nginx in front of the same recording backends, side by side: what each answered, how
// fast, and what reached the backends. Switchyard must be as strict as nginx or stricter on every
// row; the last column says so. --switchyard DIR runs the Switchyard checked out in DIR (an older
// commit, for before/after figures). --fuzz N adds N fast-check requests through Switchyard.
// Loopback only; every exchange is bounded in time.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { recordingBackend, rogueBackend, type RecordingBackend, type RogueBackend } from "../test/battery/backends.ts";
import { A1, A2, batteryYaml, C1, LEGIT, P2, SMUGGLED, type RequestCase } from "../test/battery/cases.ts";
import { requestBytes, runRequestFuzz, type LogLine } from "../test/battery/fuzz.ts";
import { mapConcurrently, wire, type WireResult } from "../test/battery/wire.ts";
import { freePort, has } from "./children.ts";

const { values: opts } = parseArgs({
  options: {
    against: { type: "string", default: "nginx" },
    switchyard: { type: "string" },
    fuzz: { type: "string", default: "0" },
    markdown: { type: "boolean", default: false },
  },
});
const root = resolve(opts.switchyard ?? new URL("..", import.meta.url).pathname);
const children: ChildProcess[] = [];
const log = (msg: string) => process.stderr.write(`${msg}\n`);

interface Target {
  name: string;
  /** The port requests go to, and the port in front of the rogue backend. */
  port: number;
  roguePort: number;
  /** Access-log lines so far (Switchyard only). */
  logs?: LogLine[];
}

async function startSwitchyard(legacy: string, neu: string, rogue: string, modern: boolean): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-battery-"));
  // Keys an older checkout does not know are left out for it (--switchyard DIR).
  const strip = (yaml: string) => (modern ? yaml : yaml.replace(/, queue_timeout: [^ }]+/g, "").replace(/^ {2}body_timeout: .*\n/m, ""));
  const main = join(dir, "battery.yaml");
  writeFileSync(main, strip(batteryYaml(legacy, neu, "log:\n  level: info\n")));
  const rogueFile = join(dir, "rogue.yaml");
  writeFileSync(rogueFile, `listeners: [{ host: 127.0.0.1, port: 0 }]\nbackends:\n  legacy: { url: "${rogue}", pool: { connections: 1 }, timeouts: { response_header: 2s, read: 2s } }\n  new: { url: "${rogue}" }\nadmin: { port: 0 }\nlog: { level: info, access_log: false }\n`);
  const logs: LogLine[] = [];
  const env = { ...process.env, SWITCHYARD_STATE_DIR: dir };
  const run = (file: string, collect: boolean) =>
    new Promise<number>((resolvePort, reject) => {
      const child = spawn(process.execPath, [join(root, "dist/cli/main.js"), "start", "-c", file, "--no-watch"], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
      children.push(child);
      let buf = "";
      child.stdout!.on("data", (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf("\n")) !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = /"listeners":\["http:\/\/127\.0\.0\.1:(\d+)"\]/.exec(line);
          if (m) resolvePort(Number(m[1]));
          if (collect && line.includes('"msg":"request"')) logs.push(JSON.parse(line) as LogLine);
        }
      });
      child.on("exit", (code) => reject(new Error(`switchyard exited ${code}`)));
    });
  return { name: "switchyard", port: await run(main, true), roguePort: await run(rogueFile, false), logs };
}

async function startNginx(legacy: string, neu: string, rogue: string): Promise<Target | null> {
  if (opts.against !== "nginx" || !has("nginx")) return null;
  const dir = mkdtempSync(join(tmpdir(), "switchyard-battery-nginx-"));
  mkdirSync(join(dir, "logs"));
  const port = await freePort();
  const roguePort = await freePort();
  const host = (u: string) => new URL(u).host;
  // The same routes, limits and timeouts as batteryYaml(), the way an nginx user writes them.
  writeFileSync(
    join(dir, "nginx.conf"),
    `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;
daemon off;
master_process off;
error_log ${dir}/logs/error.log crit;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  client_max_body_size 1m;
  client_header_timeout 2s;
  client_body_timeout 500ms;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $host;
  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  proxy_read_timeout 2s;
  upstream legacy { server ${host(legacy)}; keepalive 8; }
  upstream new { server ${host(neu)}; keepalive 8; }
  upstream rogue { server ${host(rogue)}; keepalive 1; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://legacy; }
    location /internal/ { proxy_pass http://new; }
    location /api/1/assets/ { proxy_pass http://new; }
  }
  server {
    listen 127.0.0.1:${roguePort};
    location / { proxy_pass http://rogue; }
  }
}
`,
  );
  const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
  children.push(child);
  for (let i = 0; i < 50; i++) {
    const r = await wire(port, "GET /public/ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", { idleMs: 200 }).catch(() => null);
    if (r?.statuses[0] === 200) return { name: "nginx", port, roguePort };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("nginx did not start");
}

interface Outcome {
  status: string;
  ms: number | null;
  closed: boolean;
  /** Requests the backends parsed for this case, "legacy /path". */
  forwarded: string[];
  smuggled: boolean;
}

async function runCase(t: Target, steps: RequestCase["steps"], backends: RecordingBackend[], idleMs = 250): Promise<Outcome> {
  for (const b of backends) b.reset();
  const r: WireResult = await wire(t.port, steps, { idleMs });
  await new Promise((res) => setTimeout(res, 30)); // let the backends finish parsing
  const forwarded = backends.flatMap((b) => b.seen.map((s) => `${b.name} ${s.url}${s.complete ? "" : " (cut)"}`));
  return { status: r.statuses.length > 0 ? r.statuses.join("+") : r.closed ? "closed" : "none", ms: r.firstByteMs, closed: r.closed, forwarded, smuggled: backends.some((b) => b.rawText().includes(SMUGGLED)) };
}

const fmtMs = (ms: number | null) => (ms === null ? "-" : ms < 10 ? ms.toFixed(1) : Math.round(ms).toString());

function table(header: string[], rows: string[][]): string {
  if (opts.markdown) return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Stricter or equal: it never forwards (or smuggles) what the reference refused. */
function verdict(sy: Outcome, ref: Outcome | null, expect: RequestCase["expect"]): string {
  const syOk = expect === "refuse" ? sy.forwarded.filter((f) => !f.endsWith("(cut)")).length === 0 && !sy.smuggled : !sy.smuggled;
  if (ref === null) return syOk ? "ok" : "FAIL";
  // A request cut off mid-body ("(cut)") was never delivered whole: a backend cannot act on it.
  const leaks = (o: Outcome) => (o.smuggled ? 2 : o.forwarded.some((f) => !f.endsWith("(cut)")) ? 1 : 0);
  const syLeaks = leaks(sy);
  const refLeaks = leaks(ref);
  if (!syOk) return "FAIL";
  return syLeaks < refLeaks ? "stricter" : syLeaks === refLeaks ? "same" : expect === "forward" ? "same (legit)" : "LESS STRICT";
}

async function requestSection(title: string, cases: RequestCase[], targets: Target[], backends: RecordingBackend[]): Promise<number> {
  const rows: string[][] = [];
  let failures = 0;
  log(`battery: ${title.split(":")[0]} (${cases.length} cases)`);
  for (const c of cases) {
    const outs: Outcome[] = [];
    for (const t of targets) outs.push(await runCase(t, c.steps, backends));
    const v = verdict(outs[0]!, outs[1] ?? null, c.expect);
    if (v === "FAIL" || v === "LESS STRICT") failures++;
    rows.push([c.id, c.name.slice(0, 58), ...outs.flatMap((o) => [o.status, fmtMs(o.ms), o.smuggled ? "SMUGGLED" : o.forwarded.length === 0 ? "-" : o.forwarded.join(", ").slice(0, 40)]), v]);
  }
  const header = ["case", "request", ...targets.flatMap((t) => [`${t.name}`, "ms", "reached a backend"]), "verdict"];
  process.stdout.write(`\n## ${title}\n\n${table(header, rows)}\n`);
  return failures;
}

async function pathSection(targets: Target[], backends: RecordingBackend[]): Promise<number> {
  const rows: string[][] = [];
  let failures = 0;
  for (const c of C1) {
    const cells: string[] = [];
    for (const t of targets) {
      const o = await runCase(t, [`GET ${c.raw} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`], backends);
      const got = o.forwarded[0] ?? o.status;
      const exact = got === `${c.backend} ${c.canonical}`;
      if (t.name === "switchyard" && !exact) failures++;
      cells.push(got.slice(0, 44), exact ? "yes" : "no");
    }
    rows.push([c.raw.slice(0, 44), `${c.backend} ${c.canonical}`.slice(0, 44), ...cells]);
  }
  const header = ["client sent", "matched (canonical)", ...targets.flatMap((t) => [`${t.name}: backend got`, "= matched"])];
  process.stdout.write(`\n## C1: path spellings (what was matched is what is sent)\n\n${table(header, rows)}\n`);
  return failures;
}

async function responseSection(targets: Target[], rogue: RogueBackend): Promise<number> {
  const rows: string[][] = [];
  let failures = 0;
  for (const c of A2) {
    const cells: string[] = [];
    for (const t of targets) {
      const r = await wire(t.roguePort, `GET /rogue/${c.id} HTTP/1.1\r\nHost: a\r\n\r\n`, { idleMs: 300 });
      await wire(t.roguePort, `GET /after/${c.id} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 300 });
      const carrier = rogue.connections.find((paths) => paths.includes(`/rogue/${c.id}`));
      const reused = carrier !== undefined && carrier.at(-1) !== `/rogue/${c.id}`;
      const status = r.statuses.length > 0 ? r.statuses.join("+") : r.closed ? "cut" : "none";
      const ok = typeof c.expect === "number" ? status === String(c.expect) : (status === "502" || status === "cut" || status.startsWith("200") && c.expect === "cut") && !reused;
      if (t.name === "switchyard" && !ok) failures++;
      cells.push(status, typeof c.expect === "number" ? (reused ? "reused (fine)" : "-") : reused ? "REUSED" : "-");
      for (const paths of rogue.connections) paths.length = 0; // forget, so the next target starts clean
    }
    rows.push([c.id, c.name.slice(0, 46), typeof c.expect === "number" ? String(c.expect) : c.expect === "bad" ? "502" : "cut", ...cells]);
  }
  const header = ["case", "backend answered", "want", ...targets.flatMap((t) => [t.name, "conn reused"])];
  process.stdout.write(`\n## A2: malformed backend answers\n\n${table(header, rows)}\n`);
  return failures;
}

/** P1 and the header deadline: how fast bad bodies are answered, and when a 504 comes. */
async function timingSection(targets: Target[], backends: RecordingBackend[]): Promise<void> {
  const rows: string[][] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const t of targets) {
    for (const b of backends) b.reset();
    const bad = await Promise.all(Array.from({ length: 16 }, (_, i) => wire(t.port, `POST /public/bad/${i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n`, { idleMs: 3000 })));
    const stalled = await Promise.all(Array.from({ length: 16 }, (_, i) => wire(t.port, `POST /public/stalled/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab`, { idleMs: 3000 })));
    const after = await wire(t.port, "GET /public/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const hang = await mapConcurrently([0, 1, 2, 3, 4], 5, (i) => wire(t.port, `GET /hang?${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 4000 }));
    const statuses = (rs: WireResult[]) => [...new Set(rs.map((r) => r.statuses.join("+") || (r.closed ? "closed" : "none")))].join(",");
    rows.push([
      t.name,
      `${statuses(bad)} p50 ${fmtMs(median(bad.map((r) => r.firstByteMs ?? NaN)))} max ${fmtMs(Math.max(...bad.map((r) => r.firstByteMs ?? NaN)))}`,
      `${statuses(stalled)} p50 ${fmtMs(median(stalled.map((r) => r.firstByteMs ?? r.totalMs)))}`,
      `${after.statuses.join("+")} ${fmtMs(after.firstByteMs)}`,
      `${statuses(hang)} p50 ${fmtMs(median(hang.map((r) => r.firstByteMs ?? NaN)))} (${((median(hang.map((r) => r.firstByteMs ?? NaN)) / 2000 - 1) * 100).toFixed(1)} % over 2 s)`,
    ]);
  }
  process.stdout.write(`\n## P1 and deadlines (16 malformed chunked bodies, 16 stalled bodies at once; body timeout 500 ms; a hung backend with a 2 s header timeout), ms\n\n${table(["target", "malformed body", "stalled body", "normal request after", "hung backend"], rows)}\n`);
}

async function main(): Promise<void> {
  const legacy = await recordingBackend("legacy");
  const neu = await recordingBackend("new");
  const rogue = await rogueBackend(Object.fromEntries(A2.map((c) => [c.id, c.reply])));
  const modern = opts.switchyard === undefined;
  const targets: Target[] = [await startSwitchyard(legacy.url, neu.url, rogue.url, modern)];
  const nginx = await startNginx(legacy.url, neu.url, rogue.url);
  if (nginx) targets.push(nginx);
  else log(`battery: nginx ${opts.against === "nginx" ? "is not installed (apt-get install nginx-light)" : "not requested"}; Switchyard alone`);
  const node = spawnSync(process.execPath, ["--version"], { encoding: "utf8" }).stdout.trim();
  const nginxVersion = nginx ? spawnSync("nginx", ["-v"], { encoding: "utf8" }).stderr.trim().replace("nginx version: ", "") : "-";
  const rev = spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim() || root;
  process.stdout.write(`# Battery: Switchyard ${rev} (Node ${node}) vs ${nginx ? nginxVersion : "nothing"}\n`);
  const backends = [legacy, neu];
  let failures = 0;
  failures += await requestSection("A1: malformed and smuggling requests (each hides GET /internal/smuggled, routed to new)", A1, targets, backends);
  failures += await requestSection("Legitimate neighbours (forwarded by a correct proxy)", LEGIT, targets, backends);
  failures += await requestSection("P2: a refusal, then a pipelined request for another route", P2, targets, backends);
  failures += await pathSection(targets, backends);
  failures += await responseSection(targets, rogue);
  await timingSection(targets, backends);
  const n = Number(opts.fuzz);
  if (n > 0) {
    const sy = targets[0]!;
    for (const b of backends) b.reset();
    sy.logs!.length = 0;
    const started = performance.now();
    const out = await runRequestFuzz(sy.port, fc.sample(requestBytes, { numRuns: n, seed: Date.now() % 1e9 }), backends, () => sy.logs!, () => new Promise((r) => setTimeout(r, 1500)), 50);
    const alive = (await wire(sy.port, "GET /public/alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).statuses[0] === 200;
    process.stdout.write(`\n## K1: ${n} fuzzed requests through Switchyard in ${((performance.now() - started) / 1000).toFixed(1)} s\n\nunaccounted backend requests: ${out.unaccounted.length}; hidden requests after a refusal: ${out.leakedAfterRefusal.length}; alive after: ${alive}\n`);
    if (out.unaccounted.length > 0 || out.leakedAfterRefusal.length > 0 || !alive) failures++;
  }
  process.stdout.write(`\n${failures === 0 ? "Switchyard is as strict as the reference or stricter on every row." : `${failures} row(s) where Switchyard failed or was less strict.`}\n`);
  await legacy.close();
  await neu.close();
  await rogue.close();
  process.exitCode = failures === 0 ? 0 : 1;
}

const stop = () => {
  for (const c of children) c.kill("SIGKILL");
};
process.on("exit", stop);
main()
  .catch((err: unknown) => {
    log(`battery: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 2;
  })
  .finally(() => {
    stop();
    setTimeout(() => process.exit(), 100).unref();
  });
