// RELIABILITY.md E1 (short deadline), F2 and F3: slow clients, a frozen backend process, and
// connections reset under a request. What is asserted is what the client gets and how often the
// backend executed each request; how fast is measured by bench/battery.ts.
import { spawn, type ChildProcess } from "node:child_process";
import net, { type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import { startBackend, startProxyWithConfig, type TestBackend, type TestProxy } from "../helpers/servers.ts";
import { startBattery, type Battery } from "./setup.ts";
import { wire } from "./wire.ts";

let b: Battery | undefined;
let proxy: TestProxy | undefined;
let backend: TestBackend | undefined;
let child: ChildProcess | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
  for (const c of closers.splice(0)) c();
  await b?.close();
  await proxy?.close();
  await backend?.close();
  b = proxy = backend = child = undefined;
});

async function proxyTo(url: string, extra = ""): Promise<TestProxy> {
  const loaded = parseConfigText(`listeners: [{ host: 127.0.0.1, port: 0 }]\nbackends:\n  legacy: { url: "${url}", timeouts: { response_header: 800ms } }\n  new: { url: "${url}" }\nadmin: { port: 0 }\n${extra}`, "f.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  return startProxyWithConfig(loaded.config);
}

describe("E1: slow clients are cut at the header deadline while others are served", () => {
  it("closes 200 slowloris connections with 408 and answers every probe meanwhile", async () => {
    b = await startBattery("", { header_timeout: "1s" });
    const port = b.proxy.port;
    // Each slow client sends a request line, then one header byte every 150 ms, never finishing.
    const slow = Array.from({ length: 200 }, (_, i) => wire(port, ["GET /public/slow HTTP/1.1\r\nHost: a\r\n", ...Array.from({ length: 20 }, () => [{ pauseMs: 150 }, "X"]).flat()], { idleMs: 3000, maxMs: 5000 }).then((r) => ({ i, r })));
    const probes: Promise<number | undefined>[] = [];
    for (let t = 0; t < 15; t++) {
      probes.push(wire(port, "GET /public/probe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").then((r) => r.statuses[0]));
      await new Promise((r) => setTimeout(r, 100));
    }
    const results = await Promise.all(slow);
    for (const { r } of results) {
      expect(r.closed).toBe(true);
      expect(r.statuses).toEqual([408]);
    }
    expect(await Promise.all(probes)).toEqual(Array(15).fill(200));
    expect(b.forwarded().filter((f) => f.includes("/public/slow"))).toEqual([]);
  });
});

describe("F2: a frozen backend (SIGSTOP)", () => {
  it("answers 504 from the proxy's own header timer, then serves again after SIGCONT", async () => {
    child = spawn(process.execPath, ["-e", "const s=require('http').createServer((q,r)=>r.end('ok'));s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ["ignore", "pipe", "inherit"] });
    const port = await new Promise<number>((resolve) => child!.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))));
    proxy = await proxyTo(`http://127.0.0.1:${port}`);
    expect((await wire(proxy.port, "GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).statuses).toEqual([200]);
    child.kill("SIGSTOP");
    const frozen = await Promise.all(Array.from({ length: 10 }, (_, i) => wire(proxy!.port, `GET /frozen/${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, { idleMs: 3000 })));
    for (const r of frozen) {
      expect(r.statuses).toEqual([504]);
      expect(r.text).toContain('"code":"SY_UPSTREAM_HEADERS_TIMEOUT"');
    }
    // The proxy's precise timer fired (its message), not undici's coarse backstop.
    const lines = proxy.accessLogs().filter((l) => String(l.path).startsWith("/frozen/"));
    expect(lines).toHaveLength(10);
    for (const l of lines) expect(l.error_detail).toBe("no response headers within 800 ms");
    child.kill("SIGCONT");
    expect((await wire(proxy.port, "GET /thawed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).statuses).toEqual([200]);
  });
});

describe("F3: connections reset under a request", () => {
  it("executes a POST exactly once and a GET at most once when the answer is lost to a reset", async () => {
    const executed: string[] = [];
    backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => {
        executed.push(`${req.method} ${req.url}`);
        res.end("done");
      });
    });
    // A fault relay: passes the request to the backend, then resets the proxy's connection as soon as
    // the backend starts answering (the request was executed; its answer is lost).
    const relay = net.createServer((client) => {
      const up = net.connect(backend!.port, "127.0.0.1");
      client.pipe(up);
      up.once("data", () => client.resetAndDestroy());
      up.on("error", () => client.destroy());
      client.on("error", () => up.destroy());
      client.on("close", () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    closers.push(() => relay.close());
    proxy = await proxyTo(`http://127.0.0.1:${(relay.address() as AddressInfo).port}`);
    for (let i = 0; i < 10; i++) {
      const post = await wire(proxy.port, `POST /pay/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`);
      const get = await wire(proxy.port, `GET /read/${i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      expect(post.statuses).toEqual([502]);
      expect(get.statuses).toEqual([502]);
    }
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 10; i++) {
      expect(executed.filter((e) => e === `POST /pay/${i}`)).toHaveLength(1);
      expect(executed.filter((e) => e === `GET /read/${i}`).length).toBeLessThanOrEqual(1);
    }
  });
});
