// npm run bench:idle [-- --connections 10000]
// What idle keep-alive client connections cost the proxy: Switchyard (as its command runs) in front
// of the bench backend; N connections each send one request, read the answer and stay open idle.
// Prints the proxy's RSS before, with the N idle connections open, and 5 s after they close.
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { rssMiB, runBench, sleep, startNode, SWITCHYARD } from "./children.ts";

// --node: the same against the plain Node backend itself, for what node:http alone costs per connection.
const { values: opts } = parseArgs({ options: { connections: { type: "string", default: "10000" }, node: { type: "boolean", default: false } } });
const N = Number(opts.connections);


/** One request on a fresh connection; resolves with the socket, left open and idle. */
function idleConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("GET /x HTTP/1.1\r\nHost: bench\r\n\r\n"));
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (/\r\n\r\n[\s\S]*\}/.test(got)) {
        s.removeAllListeners("data");
        s.on("data", () => {});
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
  const sy = opts.node ? backend : await startNode(["--max-semi-space-size=8", SWITCHYARD, "start", "-c", file], /"listeners":\["([^"]+)"\]/);
  const port = Number(new URL(sy.url).port);
  for (let i = 0; i < 20; i++) (await idleConnection(port)).destroy(); // warm
  await sleep(2000);
  const before = rssMiB(sy.pid);
  const sockets: net.Socket[] = [];
  for (let i = 0; i < N; i += 200) sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, N - i) }, () => idleConnection(port)))));
  await sleep(3000);
  const open = rssMiB(sy.pid);
  for (const s of sockets) s.destroy();
  await sleep(5000);
  const after = rssMiB(sy.pid);
  const perConn = ((open - before) * 1024) / N;
  process.stdout.write(
    `\nbench:idle - node ${process.version}, ${N} idle keep-alive client connections to ${opts.node ? "a plain node:http server" : "Switchyard"}\n` +
      `| proxy RSS before | with ${N} idle | added | per connection | 5 s after they close |\n|---|---|---|---|---|\n` +
      `| ${before.toFixed(0)} MiB | ${open.toFixed(0)} MiB | +${(open - before).toFixed(0)} MiB | ${perConn.toFixed(1)} KiB | ${after.toFixed(0)} MiB |\n`,
  );
}

runBench("bench:idle", main);
