// npm run bench:h2 [-- --rounds 3 --requests 20000 --clients 16 --streams 10 --h1]
// HTTP/2 over TLS at the edge: h2load against Switchyard (listeners[].http2) and against nginx
// (`listen ssl http2`) on the same certificate, both proxying HTTP/1.1 to one backend, interleaved
// rounds, medians. Prints req/s, mean and p99-ish latency from h2load, the proxy's CPU per request
// and the ratio to nginx. Needs h2load (apt-get install nghttp2-client), nginx and openssl.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuSeconds, freePort, has, nginxConf, nginxProxyServer, rssMiB, runBench, sleep, startNode, SWITCHYARD, track } from "./children.ts";

const { values: opts } = parseArgs({ options: { rounds: { type: "string", default: "3" }, requests: { type: "string", default: "20000" }, clients: { type: "string", default: "16" }, streams: { type: "string", default: "10" }, h1: { type: "boolean", default: false } } });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  for (const bin of ["h2load", "nginx", "openssl"]) if (!has(bin)) throw new Error(`${bin} is not installed (apt-get install nghttp2-client nginx openssl)`);
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-h2-"));
  spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  const backend = await startNode(["bench/targets/backend.ts"], /READY (\S+)/);

  writeFileSync(join(dir, "sy.yaml"), `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\nlog:\n  access_log: false\nlimits:\n  http2_max_concurrent_streams: 128\n`);
  const sy = await startNode(["--max-semi-space-size=8", SWITCHYARD, "start", "-c", join(dir, "sy.yaml")], /"listeners":\["([^"]+)"\]/);

  mkdirSync(join(dir, "logs"));
  const port = await freePort();
  const tls = `    ssl_certificate ${dir}/cert.pem;\n    ssl_certificate_key ${dir}/key.pem;\n    http2_max_concurrent_streams 128;\n    keepalive_requests 1000000;\n`;
  writeFileSync(join(dir, "nginx.conf"), nginxConf(dir, nginxProxyServer(new URL(backend.url).host, `127.0.0.1:${port} ssl http2`, tls)));
  const nginx = track(spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" }));
  await sleep(500);
  const targets = [
    { name: "switchyard", url: `${sy.url}/`, pid: sy.pid },
    { name: "nginx", url: `https://127.0.0.1:${port}/`, pid: nginx.pid! },
  ];
  const results = new Map<string, { rps: number[]; meanMs: number[]; cpuUs: number[]; rss: number[]; failed: number[] }>(targets.map((t) => [t.name, { rps: [], meanMs: [], cpuUs: [], rss: [], failed: [] }]));
  // --h1: the same TLS listeners over HTTP/1.1 (h2load --h1, one request per connection at a time),
  // to tell what HTTP/2 costs from what TLS costs.
  const args = ["-n", opts.requests, "-c", opts.clients, ...(opts.h1 ? ["--h1"] : ["-m", opts.streams])];
  for (const t of targets) spawnSync("h2load", ["-n", "2000", "-c", opts.clients, "-m", opts.streams, t.url], { encoding: "utf8" }); // warm-up
  for (let round = 0; round < Number(opts.rounds); round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      process.stderr.write(`round ${round + 1}/${opts.rounds}: ${t.name}\n`);
      const c0 = cpuSeconds(t.pid);
      const r = spawnSync("h2load", [...args, t.url], { encoding: "utf8" });
      const cpu = cpuSeconds(t.pid) - c0;
      const done = Number(/(\d+) succeeded/.exec(r.stdout)?.[1] ?? 0);
      const res = results.get(t.name)!;
      res.rps.push(Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(r.stdout)?.[1] ?? 0));
      res.meanMs.push(Number(/time for request:\s+\S+\s+\S+\s+(\S+)/.exec(r.stdout)?.[1]?.replace(/ms$/, "") ?? NaN));
      res.cpuUs.push(done > 0 ? (cpu * 1e6) / done : NaN);
      res.failed.push(Number(/(\d+) failed/.exec(r.stdout)?.[1] ?? 0));
      res.rss.push(rssMiB(t.pid));
      const proto = opts.h1 ? /http\/1\.1/ : /h2/;
      if (!proto.test(r.stdout.split("Application protocol:")[1] ?? "")) throw new Error(`${t.name} did not speak ${opts.h1 ? "http/1.1" : "h2"}: ${r.stdout.slice(0, 400)}`);
    }
  }
  const ng = results.get("nginx")!;
  const f = (x: number, d = 0) => x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
  process.stdout.write(`\nbench:h2 - node ${process.version}, h2load ${args.join(" ")} over TLS (${opts.h1 ? "HTTP/1.1" : "HTTP/2"}), median of ${opts.rounds} interleaved rounds\n`);
  process.stdout.write("| target | req/s | vs nginx | mean ms/request | CPU µs/request | CPU vs nginx | RSS MiB | failed |\n|---|---|---|---|---|---|---|---|\n");
  for (const [name, r] of results) {
    process.stdout.write(`| ${name} | ${f(median(r.rps))} | ${f(median(r.rps) / median(ng.rps), 2)}x | ${f(median(r.meanMs), 2)} | ${f(median(r.cpuUs), 1)} | ${f(median(r.cpuUs) / median(ng.cpuUs), 2)}x | ${f(median(r.rss))} | ${Math.max(...r.failed)} |\n`);
  }
}

runBench("bench:h2", main);
