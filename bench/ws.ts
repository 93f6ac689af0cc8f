// npm run bench:ws [-- --tunnels 1000 --seconds 10 --rounds 3 --together --also-dist PATH/dist/cli/main.js --hold 60]
// N concurrent WebSocket connections, each in a ping-pong loop (64-byte message, wait for the echo,
// repeat), against the echo backend directly, through Switchyard, through Node's floors for a tunnel (two
// pipe()d sockets, bench/targets/ws-pipe.ts; sockets read into reused buffers, the same with --relay) and through
// nginx (when installed).
// Prints messages/s (median of rounds), the ratio to direct and nginx, the proxy's CPU time per
// message, nginx's CPU per message over the target's (per round, median) and its RSS. --together loads
// every proxy at once (each its own N tunnels, one window), so a swing in the host's speed hits all alike;
// --also-dist runs another build of Switchyard beside ("sy-other"), for before/after. --hold SECONDS
// instead holds the tunnels open that long (RELIABILITY.md's D2), a message each per second, and
// counts wrong or missing echoes and closes nobody asked for (exit code 1 if any).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { cpuSeconds, freePort, nginxConf, rssMiB, SWITCHYARD } from "./children.ts";

const { values: opts } = parseArgs({ options: { tunnels: { type: "string", default: "1000" }, seconds: { type: "string", default: "10" }, rounds: { type: "string", default: "3" }, together: { type: "boolean", default: false }, "also-dist": { type: "string" }, hold: { type: "string", default: "0" } } });
const TUNNELS = Number(opts.tunnels);
const SECONDS = Number(opts.seconds);
const ROUNDS = Number(opts.rounds);
const root = new URL("..", import.meta.url).pathname;
const children: ChildProcess[] = [];
const log = (m: string) => process.stderr.write(`${m}\n`);

function start(cmd: string, args: string[], pattern: RegExp): Promise<{ url: string; pid: number }> {
  const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) {
        child.stdout!.removeAllListeners("data");
        child.stdout!.resume();
        resolve({ url: m[1]!, pid: child.pid! });
      }
    });
    child.on("exit", (c) => reject(new Error(`${cmd} exited ${c}: ${out}`)));
  });
}


/** TUNNELS WebSockets through a target, opened in batches of 100 (so the accept queue is not what is measured). */
async function openTunnels(url: string, setup: (ws: WebSocket, id: number) => void = () => {}): Promise<WebSocket[]> {
  const wsUrl = `${url.replace(/^http/, "ws")}/ws`;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < TUNNELS; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, TUNNELS - i) }, (_, j) => new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
        ws.once("open", () => resolve());
        ws.once("error", reject);
        setup(ws, i + j);
        sockets.push(ws);
      })),
    );
  }
  return sockets;
}

/** Every socket closed at once (terminate: no closing handshake to wait for). */
function closeAll(sockets: readonly WebSocket[]): Promise<void[]> {
  return Promise.all(sockets.map((ws) => new Promise<void>((res) => {
    if (ws.readyState === WebSocket.CLOSED) return res();
    ws.once("close", () => res());
    ws.terminate();
  })));
}

/** TUNNELS ping-pong loops through a target, counting the echoes, until stopped. */
async function load(url: string): Promise<{ count: () => number; stop: () => Promise<void> }> {
  const sockets = await openTunnels(url);
  const payload = Buffer.alloc(64, 0x61);
  let count = 0;
  let running = true;
  for (const ws of sockets) {
    ws.on("message", () => {
      count++;
      if (running) ws.send(payload);
    });
    ws.send(payload);
  }
  return {
    count: () => count,
    stop: async () => {
      running = false;
      await closeAll(sockets);
    },
  };
}

/**
 * Messages per second over the window, and the proxy's CPU time per message (µs) when it is ours to
 * read, for each target: one at a time, or all loaded at once (--together).
 */
async function measure(targets: readonly { url: string; pid: number | null }[]): Promise<{ rate: number; cpuUs: number }[]> {
  const loads: Awaited<ReturnType<typeof load>>[] = [];
  for (const t of targets) loads.push(await load(t.url));
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const c0 = loads.map((l) => l.count());
  const cpu0 = targets.map((t) => (t.pid === null ? NaN : cpuSeconds(t.pid)));
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const ms = performance.now() - t0;
  const out = targets.map((t, i) => {
    const messages = loads[i]!.count() - c0[i]!;
    return { rate: (messages * 1000) / ms, cpuUs: t.pid === null ? NaN : ((cpuSeconds(t.pid) - cpu0[i]!) * 1e6) / messages };
  });
  await Promise.all(loads.map((l) => l.stop()));
  return out;
}

interface HoldResult { opened: number; echoes: number; mismatches: number; unexpectedCloses: number; peakRss: number }

/**
 * RELIABILITY.md's D2: TUNNELS WebSockets held open for `seconds`, each sending a numbered message
 * every second (staggered) and checking the echo; counts echoes that came back wrong and closes
 * nobody asked for.
 */
async function hold(url: string, pid: number | null, seconds: number): Promise<HoldResult> {
  const r: HoldResult = { opened: 0, echoes: 0, mismatches: 0, unexpectedCloses: 0, peakRss: 0 };
  let holding = true;
  const sockets = await openTunnels(url, (ws, id) => {
    let seq = 0;
    let expected: string | null = null;
    ws.once("open", () => r.opened++);
    ws.on("message", (data) => {
      if (String(data) === expected) r.echoes++;
      else r.mismatches++;
      expected = null;
    });
    ws.on("close", () => {
      if (holding) r.unexpectedCloses++;
    });
    const tick = () => {
      if (!holding || ws.readyState !== WebSocket.OPEN) return;
      if (expected !== null) r.mismatches++; // the last one never came back
      expected = `${id}:${++seq}:${"x".repeat(id % 200)}`;
      ws.send(expected);
    };
    setTimeout(() => setInterval(tick, 1000).unref(), Math.random() * 1000).unref();
  });
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    await new Promise((res) => setTimeout(res, 1000));
    if (pid !== null) r.peakRss = Math.max(r.peakRss, rssMiB(pid));
  }
  holding = false;
  await closeAll(sockets);
  return r;
}

async function main() {
  log(`bench:ws: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, ${TUNNELS} tunnels, ${SECONDS}s x ${ROUNDS} rounds`);
  const backend = await start(process.execPath, ["bench/targets/ws-backend.ts"], /READY (\S+)/);
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-ws-"));
  writeFileSync(join(dir, "sy.yaml"), `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`);
  // As the switchyard command runs (its shebang passes the same flag).
  const sy = await start(process.execPath, ["--max-semi-space-size=8", SWITCHYARD, "start", "-c", join(dir, "sy.yaml")], /"listeners":\["([^"]+)"\]/);
  const targets: { name: string; url: string; pid: number | null }[] = [{ name: "direct", url: backend.url, pid: null }, { name: "switchyard", url: sy.url, pid: sy.pid }];
  if (opts["also-dist"] !== undefined) {
    // Another build's dist/cli/main.js beside this one (before/after in one run).
    const other = await start(process.execPath, ["--max-semi-space-size=8", opts["also-dist"], "start", "-c", join(dir, "sy.yaml")], /"listeners":\["([^"]+)"\]/);
    targets.push({ name: "sy-other", url: other.url, pid: other.pid });
  }
  // Node's floor for a tunnel: two pipe()d sockets and nothing else, run the way Switchyard runs.
  const floor = await start(process.execPath, ["--max-semi-space-size=8", "bench/targets/ws-pipe.ts", backend.url], /READY (\S+)/);
  targets.push({ name: "node-pipe", url: floor.url, pid: floor.pid });
  const onread = await start(process.execPath, ["--max-semi-space-size=8", "bench/targets/ws-pipe.ts", backend.url, "--relay"], /READY (\S+)/);
  targets.push({ name: "node-onread", url: onread.url, pid: onread.pid });
  if (spawnSync("sh", ["-c", "command -v nginx"]).status === 0) {
    mkdirSync(join(dir, "logs"));
    const port = await freePort();
    writeFileSync(join(dir, "nginx.conf"), nginxConf(dir, `  server {\n    listen 127.0.0.1:${port};\n    location / {\n      proxy_pass ${backend.url};\n      proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection "upgrade";\n      proxy_read_timeout 3600s;\n    }\n  }\n`, { connections: 8192 }));
    const child = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
    children.push(child);
    await new Promise((r) => setTimeout(r, 500));
    targets.push({ name: "nginx", url: `http://127.0.0.1:${port}`, pid: child.pid! });
  } else log("bench:ws: nginx not on PATH - skipping that peer");

  const holdSeconds = Number(opts.hold);
  if (holdSeconds > 0) {
    // D2: every proxy at once (holding is not CPU-bound), then the usual rounds are skipped.
    const proxies = targets.filter((t) => t.pid !== null);
    log(`holding ${TUNNELS} WebSockets through ${proxies.map((t) => t.name).join(", ")} for ${holdSeconds} s`);
    const results = await Promise.all(proxies.map((t) => hold(t.url, t.pid, holdSeconds)));
    process.stdout.write(`\nbench:ws --hold - ${TUNNELS} WebSockets per proxy held ${holdSeconds} s, a message each per second, all proxies at once\n`);
    process.stdout.write(`| target | opened | echoes right | echoes wrong or missing | closes nobody asked for | peak RSS |\n|---|---|---|---|---|---|\n`);
    proxies.forEach((t, i) => {
      const r = results[i]!;
      process.stdout.write(`| ${t.name} | ${r.opened} | ${r.echoes} | ${r.mismatches} | ${r.unexpectedCloses} | ${r.peakRss.toFixed(0)} MiB |\n`);
    });
    if (results.some((r) => r.mismatches > 0 || r.unexpectedCloses > 0 || r.opened < TUNNELS)) process.exitCode = 1;
    return;
  }
  const rates = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const cpu = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const rss = new Map<string, number>();
  const idle = new Map<string, number>();
  for (let round = 1; round <= ROUNDS; round++) {
    // Together: every proxy at once (direct alone first, it would take the client's CPU from them).
    const groups = opts.together ? [targets.filter((t) => t.pid === null), targets.filter((t) => t.pid !== null)] : targets.map((t) => [t]);
    for (const group of groups) {
      log(`round ${round}/${ROUNDS}: ${group.map((t) => t.name).join(", ")}`);
      const before = group.map((t) => (t.pid ? rssMiB(t.pid) : NaN));
      const results = await measure(group);
      group.forEach((t, i) => {
        rates.get(t.name)!.push(results[i]!.rate);
        cpu.get(t.name)!.push(results[i]!.cpuUs);
        if (t.pid) rss.set(t.name, Math.max(rss.get(t.name) ?? 0, rssMiB(t.pid, "VmHWM")));
        if (t.pid && round === 1) {
          idle.set(t.name, before[i]!);
          log(`  ${t.name} RSS before ${before[i]!.toFixed(0)} MiB`);
        }
      });
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const m = new Map([...rates].map(([k, v]) => [k, med(v)]));
  const cpuMed = new Map([...cpu].map(([k, v]) => [k, med(v)]));
  // nginx's CPU per message over each target's, per round (same round, same host speed), median: the
  // throughput ratio a CPU-bound proxy would have, the figure that holds when the host's speed swings.
  const cpuVsNginx = (name: string) => {
    const n = cpu.get("nginx");
    return n === undefined ? NaN : med(cpu.get(name)!.map((c, i) => n[i]! / c));
  };
  process.stdout.write(`\nbench:ws - node ${process.version}, ${cpus().length} x ${cpus()[0]?.model}, ${TUNNELS} concurrent tunnels, 64-byte ping-pong, median of ${ROUNDS} x ${SECONDS}s${opts.together ? ", proxies loaded together" : ""}\n`);
  // CPU per message: the proxy process's user + system time over the window, divided by the messages
  // (each counted once, at the client, so a message is one crossing each way).
  process.stdout.write(`| target     | messages/s | vs direct | vs nginx | CPU µs/message | nginx CPU / CPU | peak RSS | peak / idle RSS |\n|------------|------------|-----------|----------|----------------|-----------------|----------|-----------------|\n`);
  for (const t of targets) {
    const r = m.get(t.name)!;
    const cpuUs = t.pid ? cpuMed.get(t.name)!.toFixed(1) : "-";
    const vsNginx = m.has("nginx") ? `${(r / m.get("nginx")!).toFixed(2)}x` : "-";
    const cpuRatio = t.pid && m.has("nginx") ? `${cpuVsNginx(t.name).toFixed(2)}x` : "-";
    process.stdout.write(`| ${t.name.padEnd(10)} | ${Math.round(r).toLocaleString("en-US").padStart(10)} | ${`${(r / m.get("direct")!).toFixed(2)}x`.padStart(9)} | ${vsNginx.padStart(8)} | ${cpuUs.padStart(14)} | ${cpuRatio.padStart(15)} | ${t.pid ? `${rss.get(t.name)!.toFixed(0)} MiB`.padStart(8) : "       -"} | ${t.pid ? `${(rss.get(t.name)! / idle.get(t.name)!).toFixed(2)}x`.padStart(15) : "              -"} |\n`);
  }
}

main()
  .catch((e: unknown) => {
    log(`bench:ws: ${(e as Error).message}`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill("SIGTERM");
  });
