// npm run bench:idle [-- --connections 10000] [--park-wait 20] [--node] [--massif]
// What idle keep-alive client connections cost the proxy: Switchyard (as its command runs) in front
// of the bench backend; N connections each send one request, read the answer and stay open idle.
// Prints the proxy's RSS before, with the N idle connections open (3 s after the last opened), once
// they have been idle --park-wait seconds (memory.park_idle_connections_after parks them after
// 5-10 s), after one more request on each (woken), and 5 s after they close.
// --massif: the target runs under valgrind's massif (2,000 connections unless told), which takes a
// heap snapshot before and with the connections open: the malloc'd bytes per connection by the
// function that allocated them (what RSS alone cannot say).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { has, rssMiB, runBench, sleep, startNode, SWITCHYARD } from "./children.ts";

// --node: the same against the plain Node backend itself, for what node:http alone costs per connection.
const { values: opts } = parseArgs({ options: { connections: { type: "string" }, "park-wait": { type: "string", default: "20" }, node: { type: "boolean", default: false }, massif: { type: "boolean", default: false } } });
const N = Number(opts.connections ?? (opts.massif ? 2000 : 10_000));

/** Bytes allocated (still live) by each function that called malloc/new directly, from a massif snapshot. */
function massifSites(file: string): Map<string, number> {
  const sites = new Map<string, number>();
  // Depth-1 entries of the heap tree: " n2: 20192000 0x95E01E: node::http_parser::Parser::New(...) (in ...)".
  for (const m of readFileSync(file, "utf8").matchAll(/^ n\d+: (\d+) (?:0x[0-9A-F]+: )?(.*?)(?: \(in [^)]*\)| \([^)]*:\d+\))?$/gm)) {
    // "in 1076 places, all below massif's threshold (1.00%)": the small sites, together.
    const name = m[2]!.startsWith("in ") ? "(the sites under 1 % of the heap each, together)" : m[2]!.replace(/\(.*$/, "");
    sites.set(name, (sites.get(name) ?? 0) + Number(m[1]));
  }
  return sites;
}

function snapshot(pid: number, file: string): Map<string, number> {
  const r = spawnSync("vgdb", [`--pid=${pid}`, "detailed_snapshot", file], { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`vgdb detailed_snapshot failed: ${r.stderr || r.stdout}`);
  return massifSites(file);
}


/** One more request on an open connection; resolves once its answer is in. */
function again(s: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString("latin1");
      if (/\r\n\r\n[\s\S]*\}/.test(got)) {
        s.off("data", onData);
        resolve();
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error("connection closed before its answer")));
    s.write("GET /x HTTP/1.1\r\nHost: bench\r\n\r\n");
  });
}

/** One request on a fresh connection; resolves with the socket, left open and idle. */
function idleConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("GET /x HTTP/1.1\r\nHost: bench\r\n\r\n"));
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (/\r\n\r\n[\s\S]*\}/.test(got)) {
        s.removeAllListeners("data");
        resolve(s);
      }
    });
    s.on("error", reject);
  });
}

async function main(): Promise<void> {
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-idle-"));
  const file = join(dir, "sy.yaml");
  // keep-alive long enough for the measurement; access log on as in production.
  writeFileSync(file, `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nlimits:\n  keep_alive_timeout: 120s\n`);
  if (opts.massif && !has("vgdb")) throw new Error("valgrind is not installed (apt-get install valgrind)");
  const under = opts.massif ? { under: ["valgrind", "--tool=massif", `--massif-out-file=${join(dir, "massif.%p")}`] } : {};
  const args = opts.node ? ["bench/targets/backend.ts"] : ["--max-semi-space-size=8", SWITCHYARD, "start", "-c", file];
  const target = opts.node && !opts.massif ? backend : await startNode(args, opts.node ? /READY (\S+)/ : /"listeners":\["([^"]+)"\]/, {}, under);
  const port = Number(new URL(target.url).port);
  for (let i = 0; i < 20; i++) (await idleConnection(port)).destroy(); // warm
  await sleep(opts.massif ? 10_000 : 2000);
  const before = rssMiB(target.pid);
  const heapBefore = opts.massif ? snapshot(target.pid, join(dir, "before.massif")) : null;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < N; i += 200) sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, N - i) }, () => idleConnection(port)))));
  await sleep(3000);
  const open = rssMiB(target.pid);
  if (heapBefore !== null) {
    const heapOpen = snapshot(target.pid, join(dir, "open.massif"));
    const grown = [...heapOpen].map(([site, bytes]) => [site, (bytes - (heapBefore.get(site) ?? 0)) / N] as const).sort((a, b) => b[1] - a[1]);
    const total = grown.reduce((sum, [, b]) => sum + b, 0);
    process.stdout.write(
      `\nmassif: malloc'd bytes per idle connection (${N} connections), by the function that allocated them\n| function | bytes per connection |\n|---|---|\n` +
        grown
          .slice(0, 8)
          .map(([site, b]) => `| ${site} | ${b.toFixed(0)} |\n`)
          .join("") +
        `| every allocation site | ${total.toFixed(0)} |\n`,
    );
  }
  const wait = Number(opts["park-wait"]);
  let parked = NaN;
  let woken = NaN;
  if (!opts.massif && wait > 0) {
    await sleep(Math.max(0, wait - 3) * 1000);
    parked = rssMiB(target.pid);
    // Every connection still serves (woken by its request when parked).
    for (let i = 0; i < sockets.length; i += 200) await Promise.all(sockets.slice(i, i + 200).map(again));
    await sleep(2000);
    woken = rssMiB(target.pid);
  }
  for (const s of sockets) s.destroy();
  await sleep(5000);
  const after = rssMiB(target.pid);
  const mib = (x: number) => (Number.isNaN(x) ? "-" : `${x.toFixed(0)} MiB`);
  const per = (x: number) => (Number.isNaN(x) ? "-" : `+${(x - before).toFixed(0)} MiB, ${(((x - before) * 1024) / N).toFixed(1)} KiB each`);
  process.stdout.write(
    `\nbench:idle - node ${process.version}, ${N} idle keep-alive client connections to ${opts.node ? "a plain node:http server" : "Switchyard"}\n` +
      `| proxy RSS before | with ${N} idle (3 s) | added | idle ${wait} s | added | after one more request each | 5 s after they close |\n|---|---|---|---|---|---|---|\n` +
      `| ${mib(before)} | ${mib(open)} | ${per(open)} | ${mib(parked)} | ${per(parked)} | ${mib(woken)} | ${mib(after)} |\n`,
  );
}

runBench("bench:idle", main);
