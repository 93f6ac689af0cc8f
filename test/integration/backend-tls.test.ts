// TLS and HTTP/2 towards the backends, as nginx's proxy_ssl_* directives set them: a private CA
// trusted, the name checked (and sent in SNI), verification off on request, a client certificate,
// a clear 502 when the handshake fails, CA files re-read at a reload; HTTP/2 by ALPN and h2c, with
// WebSocket upgrades to such a backend still over HTTP/1.1.
import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { Switchyard } from "../../src/app.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { captureLogger, configDir, openControlled } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startBackend, type TestBackend } from "../helpers/servers.ts";

const dir = mkdtempSync(join(tmpdir(), "switchyard-backend-tls-"));
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
const file = (name: string) => join(dir, name);

/** A CA, and certificates it signs: a server one for `san`, or a client one. */
function makeCa(name: string): string {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj", `/CN=${name} CA`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-keyout", file(`${name}.key`), "-out", file(`${name}.crt`));
  return file(`${name}.crt`);
}
function signed(ca: string, name: string, cn: string, ext: string): { cert: string; key: string } {
  const ext1 = file(`${name}.ext`);
  writeFileSync(ext1, `${ext}\n`);
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${cn}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
  openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file(`${ca}.crt`), "-CAkey", file(`${ca}.key`), "-CAcreateserial", "-days", "20", "-extfile", ext1, "-out", file(`${name}.crt`));
  return { cert: file(`${name}.crt`), key: file(`${name}.key`) };
}
const serverCa = makeCa("server-ca");
const otherCa = makeCa("other-ca");
const clientCa = makeCa("client-ca");
// Issued to a name only: reached at 127.0.0.1, it needs tls.server_name.
const named = signed("server-ca", "named", "backend.test", "subjectAltName=DNS:backend.test");
const byIp = signed("server-ca", "by-ip", "127.0.0.1", "subjectAltName=IP:127.0.0.1");
const client = signed("client-ca", "client", "switchyard-edge", "extendedKeyUsage=clientAuth");
const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const cliNode = process.execPath;

interface TlsBackend extends TestBackend {
  /** SNI name and client certificate CN of each request's connection. */
  tls: { servername: string | false; clientCn: string | null; httpVersion: string }[];
}

async function listen(server: http.Server | https.Server | http2.Http2SecureServer | http2.Http2Server, scheme: string, seen: TestBackend["seen"]): Promise<TestBackend> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const closable = server as http.Server;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    server: server as http.Server,
    seen,
    close: () => new Promise<void>((r) => {
      closable.closeAllConnections?.();
      server.close(() => r());
    }),
  };
}

/** An HTTPS backend (HTTP/1.1, or HTTP/2 with HTTP/1.1 beside it) that says who it is and how it was reached. */
async function tlsBackend(pair: { cert: string; key: string }, opts: { clientCa?: string; http2?: boolean } = {}): Promise<TlsBackend> {
  const seen: TestBackend["seen"] = [];
  const tlsSeen: TlsBackend["tls"] = [];
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const socket = req.socket as TLSSocket;
    const peer = opts.clientCa ? socket.getPeerCertificate() : null;
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, rawHeaders: req.rawHeaders });
    tlsSeen.push({ servername: socket.servername ?? false, clientCn: peer === null ? null : String(peer.subject?.CN ?? ""), httpVersion: req.httpVersion });
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => {
      (res as http.ServerResponse).writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ http: req.httpVersion, bytes: n }));
    });
  };
  const tlsOpts = { cert: readText(pair.cert), key: readText(pair.key), ...(opts.clientCa && { ca: readText(opts.clientCa), requestCert: true, rejectUnauthorized: true }) };
  const server = opts.http2 ? http2.createSecureServer({ ...tlsOpts, allowHTTP1: true }, handler) : https.createServer(tlsOpts, handler as http.RequestListener);
  const b = await listen(server, "https", seen);
  return Object.assign(b, { tls: tlsSeen });
}
const readText = (p: string) => readFileSync(p, "utf8");

const backends: TestBackend[] = [];
let proxy: Switchyard | null = null;
let logs: Record<string, unknown>[] = [];
afterEach(async () => {
  await proxy?.shutdown(1000);
  proxy = null;
});
afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
});

function yaml(newUrl: string, newExtra = "", top = ""): string {
  return `listeners:\n  - host: 127.0.0.1\n    port: 0\nbackends:\n  legacy:\n    url: ${plain.url}\n  new:\n    url: ${newUrl}\n${newExtra}routing:\n  default_backend: new\nadmin:\n  port: 0\n${top}`;
}
function parse(text: string) {
  const result = parseConfigText(text, join(dir, "sy.yaml"), {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  return result.config;
}
async function start(text: string): Promise<string> {
  logs = [];
  proxy = await Switchyard.start(parse(text), { logger: captureLogger(logs) });
  return proxy.urls[0]!;
}
async function get(base: string, path = "/x", init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}${path}`, init);
  return { status: res.status, body: await res.text() };
}
const NO_FAILOVER = "failover:\n  enabled: false\n";

let plain: TestBackend;
beforeAll(async () => {
  plain = track(await startBackend((_req, res) => res.end("plain")));
});
const track = <T extends TestBackend>(b: T): T => (backends.push(b), b);

describe("TLS to a backend", () => {
  it("refuses a certificate of a CA it does not trust with a 502 saying which setting trusts it, and answers once tls.ca names the CA", async () => {
    const b = track(await tlsBackend(byIp));
    // Failing before a byte was sent, the request may go to the other backend (failover's default).
    const failedOver = await start(yaml(b.url));
    expect(await get(failedOver)).toEqual({ status: 200, body: "plain" });
    await proxy!.shutdown(1000);

    const base = await start(yaml(b.url, "", NO_FAILOVER));
    const refused = await get(base);
    expect(refused.status).toBe(502);
    expect(refused.body).toContain("SY_UPSTREAM_TLS");
    expect(b.seen).toHaveLength(0);
    const line = logs.find((l) => l.error === "SY_UPSTREAM_TLS");
    expect(line?.error_detail).toMatch(/self-signed certificate in certificate chain|unable to .*certificate/);
    expect(line?.error_detail).toContain("trust the CA that signed the backend's certificate with backends.new.tls.ca");
    const m = parseProm(await proxy!.metrics.registry.metrics());
    expect(m.get('switchyard_upstream_errors_total{backend="new",kind="connect"}')).toBeGreaterThanOrEqual(1);
    await proxy!.shutdown(1000);

    const trusted = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n`, NO_FAILOVER));
    const ok = await get(trusted);
    expect(ok).toMatchObject({ status: 200 });
    expect(JSON.parse(ok.body)).toMatchObject({ http: "1.1" });
    // A CA of someone else is not enough.
    await proxy!.shutdown(1000);
    const wrong = await start(yaml(b.url, `    tls:\n      ca: ${otherCa}\n`, NO_FAILOVER));
    expect((await get(wrong)).status).toBe(502);
  });
});

describe("TLS to a backend: names, verification, client certificates, reloads", () => {
  it("checks the certificate against tls.server_name and sends it in SNI; a certificate for another name is a 502 that says so", async () => {
    const b = track(await tlsBackend(named));
    const mismatch = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n`, NO_FAILOVER));
    expect((await get(mismatch)).status).toBe(502);
    const line = logs.find((l) => l.error === "SY_UPSTREAM_TLS");
    expect(line?.error_detail).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(line?.error_detail).toContain("backends.new.tls.server_name");
    await proxy!.shutdown(1000);

    const base = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n      server_name: backend.test\n`, NO_FAILOVER));
    expect((await get(base)).status).toBe(200);
    expect(b.tls.at(-1)).toMatchObject({ servername: "backend.test" });
    // The Host header is the client's (proxy.preserve_host), whatever name TLS uses.
    expect(b.seen.at(-1)!.headers.host).toBe(new URL(base).host);
  });

  it("with verify: false accepts any certificate (a self-signed one for another name)", async () => {
    const b = track(await tlsBackend(named));
    const base = await start(yaml(b.url, `    tls:\n      verify: false\n`, NO_FAILOVER));
    expect((await get(base)).status).toBe(200);
  });

  it("presents tls.cert to a backend that asks for a client certificate; without one the backend's refusal is a 502", async () => {
    const b = track(await tlsBackend(byIp, { clientCa }));
    const without = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n`, NO_FAILOVER));
    expect((await get(without)).status).toBe(502);
    expect(b.seen).toHaveLength(0);
    const line = logs.find((l) => typeof l.error === "string" && String(l.error).startsWith("SY_UPSTREAM"));
    expect(line?.error).toMatch(/SY_UPSTREAM_(TLS|RESET)/);
    await proxy!.shutdown(1000);

    const base = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n      cert: ${client.cert}\n      key: ${client.key}\n`, NO_FAILOVER));
    expect((await get(base)).status).toBe(200);
    expect(b.tls.at(-1)).toMatchObject({ clientCn: "switchyard-edge" });
    // Both certificates' dates, for an alert before either runs out.
    const m = parseProm(await proxy!.metrics.registry.metrics());
    const expiry = (role: string, f: string, name: string) => m.get(`switchyard_backend_tls_certificate_expiry_timestamp_seconds{backend="new",role="${role}",file="${f}",name="${name}"}`);
    const days = (t: number | undefined) => Math.round(((t ?? 0) - Date.now() / 1000) / 86400);
    expect(days(expiry("ca", serverCa, "server-ca CA"))).toBe(30);
    expect(days(expiry("client", client.cert, "switchyard-edge"))).toBe(20);
  });

  it("reads the CA file again at a reload: new connections trust the new CA, and a bad file fails the reload and keeps the one in use", async () => {
    const b = track(await tlsBackend(byIp));
    const caFile = file("reloaded-ca.pem");
    copyFileSync(otherCa, caFile);
    const text = yaml(b.url, `    tls:\n      ca: ${caFile}\n`, NO_FAILOVER);
    const base = await start(text);
    expect((await get(base)).status).toBe(502);
    copyFileSync(serverCa, caFile);
    proxy!.applyConfig(parse(text));
    expect((await get(base)).status).toBe(200);

    writeFileSync(caFile, "not a certificate\n");
    expect(() => proxy!.applyConfig(parse(text))).toThrow(/backends\.new\.tls\.ca: .*reloaded-ca\.pem holds no PEM certificate/);
    expect((await get(base)).status).toBe(200);
  });

  it("mirrors shadow copies and runs active health checks over the backend's TLS settings", async () => {
    const b = track(await tlsBackend(byIp));
    const shadow = `shadow:\n  enabled: true\n  percent: 100\n  max_per_second: 1000\n`;
    const legacyTarget = yaml(b.url, `    tls:\n      ca: ${serverCa}\n    health:\n      active:\n        path: /healthz\n        interval: 200ms\n        timeout: 200ms\n`, `${NO_FAILOVER}${shadow}`).replace("default_backend: new", "default_backend: legacy");
    logs = [];
    proxy = await Switchyard.start(parse(legacyTarget), { logger: captureLogger(logs), shadowStorePath: file(`shadow-${Date.now()}.db`) });
    const base = proxy.urls[0]!;
    expect(await get(base, "/mirrored")).toEqual({ status: 200, body: "plain" });
    await waitUntil(() => b.seen.some((s) => s.url === "/mirrored") && b.seen.some((s) => s.url === "/healthz"));
    const m = parseProm(await proxy.metrics.registry.metrics());
    expect(m.get('switchyard_upstream_errors_total{backend="new",kind="connect"}') ?? 0).toBe(0);
  });

  it("a backend that accepts TCP but never completes the TLS handshake is a 504 after timeouts.connect; one that speaks no TLS is a 502 saying so", async () => {
    const held: net.Socket[] = [];
    const silent = net.createServer((sock) => void held.push(sock.on("error", () => {})));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const base = await start(yaml(`https://127.0.0.1:${(silent.address() as AddressInfo).port}`, "    timeouts:\n      connect: 300ms\n", NO_FAILOVER));
    const stalled = await get(base);
    expect(stalled.status).toBe(504);
    expect(stalled.body).toContain("SY_UPSTREAM_CONNECT_TIMEOUT");
    for (const sock of held) sock.destroy();
    silent.close();
    await proxy!.shutdown(1000);

    // https:// in front of a plain HTTP port.
    const wrong = await start(yaml(`https://127.0.0.1:${plain.port}`, "", NO_FAILOVER));
    expect((await get(wrong)).status).toBe(502);
    const line = logs.find((l) => l.error === "SY_UPSTREAM_TLS");
    expect(line?.error_detail).toMatch(/ERR_SSL_WRONG_VERSION_NUMBER.*does not speak TLS on that port; use http:\/\/ in backends\.new\.url/);
  });

  it("does not start with a CA file that holds no certificate, saying which field and file", async () => {
    const bad = file("empty-ca.pem");
    writeFileSync(bad, "");
    await expect(Switchyard.start(parse(yaml("https://127.0.0.1:1", `    tls:\n      ca: ${bad}\n`)), { logger: captureLogger([]) })).rejects.toThrow(/backends\.new\.tls\.ca: .*empty-ca\.pem holds no PEM certificate/);
    const notPem = file("junk-ca.pem");
    writeFileSync(notPem, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    await expect(Switchyard.start(parse(yaml("https://127.0.0.1:1", `    tls:\n      ca: ${notPem}\n`)), { logger: captureLogger([]) })).rejects.toThrow(/certificate 1 of 1 in .*junk-ca\.pem cannot be read/);
    await expect(Switchyard.start(parse(yaml("https://127.0.0.1:1", `    tls:\n      cert: ${client.cert}\n      key: ${named.key}\n`)), { logger: captureLogger([]) })).rejects.toThrow(/backends\.new\.tls: the key in .* does not belong to the certificate/);
  });
});

describe("status of backend TLS", () => {
  it("GET /status says how each backend is spoken to: protocol, verification, server name, CA and client certificate files", async () => {
    const b = track(await tlsBackend(byIp));
    const running = await openControlled(configDir("in-place", yaml(b.url, `    http2: true\n    tls:\n      ca: ${serverCa}\n      server_name: backend.test\n      cert: ${client.cert}\n      key: ${client.key}\n`)).file);
    try {
      expect((await get(running.url)).status).toBe(200);
      const status = (await (await fetch(`${running.admin.url}/status`)).json()) as { backends: Record<string, Record<string, unknown>> };
      expect(status.backends.new).toMatchObject({ url: b.url, protocol: "h2 by ALPN", tls: { verify: true, server_name: "backend.test", ca: serverCa, client_certificate: client.cert } });
      // The pool the request made (the HTTP/2 one; none exists before a request); no WebSocket yet, so no HTTP/1.1 pool beside it.
      expect(status.backends.new!.pool).toMatchObject({ backend: "new", http2: true });
      expect(status.backends.new!.websocket_pool).toBeUndefined();
      expect(status.backends.legacy).toMatchObject({ protocol: "http/1.1" });
      expect(status.backends.legacy!.tls).toBeUndefined();
    } finally {
      await running.close();
    }
  });
});

describe("switchyard check with backend TLS", () => {
  it("lists the trusted CAs and the client certificate with their expiry, warns when verification is off, and fails on a key that does not match", async () => {
    const run = (text: string) => {
      const f = file(`check-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(f, text);
      return promisify(execFile)(cliNode, [cli, "check", "-c", f], { encoding: "utf8" }).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
    };
    const ok = await run(yaml("https://127.0.0.1:8443", `    tls:\n      ca: ${serverCa}\n      cert: ${client.cert}\n      key: ${client.key}\n`));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/backends\.new trusted CA .*server-ca\.crt: server-ca CA; expires \d{4}-\d\d-\d\d \(in (29|30) days\)/);
    expect(ok.stdout).toMatch(/backends\.new client certificate .*client\.crt: switchyard-edge; key matches; expires \d{4}-\d\d-\d\d \(in (19|20) days\)/);
    expect(ok.stderr).toMatch(/warning: backends\.new\.tls: .*client\.crt \(switchyard-edge\) expires in (19|20) days/);
    expect(ok.stdout).not.toContain("public CAs"); // its own CA, not the public ones
    const publicCas = await run(yaml("https://127.0.0.1:8443"));
    expect(publicCas.stdout).toContain("backends.new: TLS verified against the public CAs");

    const unverified = await run(yaml("https://127.0.0.1:8443", "    tls:\n      verify: false\n"));
    expect(unverified.code).toBe(0);
    expect(unverified.stderr).toContain("warning: backends.new.tls.verify is false: any certificate is accepted from https://127.0.0.1:8443");

    const mismatched = await run(yaml("https://127.0.0.1:8443", `    tls:\n      cert: ${client.cert}\n      key: ${named.key}\n`));
    expect(mismatched.code).toBe(1);
    expect(mismatched.stderr).toMatch(/backends\.new\.tls: the key in .*named\.key does not belong to the certificate in .*client\.crt/);
  });
});

describe("HTTP/2 to a backend", () => {
  it("speaks HTTP/2 to a backend that offers h2 by ALPN (bodies both ways, many requests on few connections), and tunnels WebSockets to it over HTTP/1.1", async () => {
    const b = track(await tlsBackend(byIp, { http2: true }));
    let sessions = 0;
    b.server.on("session", () => sessions++);
    const wss = new WebSocketServer({ noServer: true });
    b.server.on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on("message", (m) => ws.send(`echo ${m.toString()}`))));
    const base = await start(yaml(b.url, `    tls:\n      ca: ${serverCa}\n    http2: true\n`, `${NO_FAILOVER}websocket:\n  enabled: true\n`));
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => get(base, `/p${i}`, { method: "POST", body: "x".repeat(1000 * i) })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.map((a) => JSON.parse(a.body) as { http: string; bytes: number })).toEqual(Array.from({ length: 20 }, (_, i) => ({ http: "2.0", bytes: 1000 * i })));
    expect(b.tls.every((t) => t.httpVersion === "2.0")).toBe(true);
    // The first burst races the first handshakes (undici knows h2 only once connected); after it,
    // 20 requests at once share the open connections, where HTTP/1.1 would need 20.
    const opened = sessions;
    expect(opened).toBeLessThan(20);
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) => get(base, `/again${i}`)));
    expect(again.every((a) => a.status === 200)).toBe(true);
    expect(sessions).toBe(opened);
    expect(b.seen.at(-1)!.headers["x-forwarded-for"]).toBe("127.0.0.1");

    const ws = new WebSocket(base.replace("http", "ws") + "/ws");
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once("open", () => ws.send("hi"));
      ws.once("message", (m) => resolve(m.toString()));
      ws.once("error", reject);
    });
    ws.close();
    expect(reply).toBe("echo hi");
    // Two pools to the backend now: HTTP/2 for requests, HTTP/1.1 for the upgrade.
    expect(proxy!.pools.stats().filter((p) => p.origin === b.url).map((p) => p.http2).sort()).toEqual([false, true]);
  });

  it("streams a large answer from an HTTP/2 backend, and turns a stream it resets into a 502 (a GET failing over when allowed)", async () => {
    const seen: TestBackend["seen"] = [];
    const server = http2.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders });
      if (req.url === "/reset") return req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      if (req.url === "/head") return res.writeHead(200, { "content-length": "5" }).end();
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let left = 64;
      const more = () => {
        while (left > 0) {
          left--;
          if (!res.write(Buffer.alloc(64 * 1024, 97))) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    const b = track(await listen(server, "http", seen));
    const base = await start(yaml(b.url, "    http2: true\n", NO_FAILOVER));
    const big = await fetch(`${base}/big`);
    expect(big.status).toBe(200);
    expect((await big.arrayBuffer()).byteLength).toBe(64 * 64 * 1024);
    const head = await fetch(`${base}/head`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("5");
    const reset = await get(base, "/reset");
    expect(reset.status).toBe(502);
    expect(reset.body).toContain("SY_UPSTREAM_RESET");
    await proxy!.shutdown(1000);
    // With failover on, the GET goes once to the other backend.
    const again = await start(yaml(b.url, "    http2: true\n"));
    expect(await get(again, "/reset")).toEqual({ status: 200, body: "plain" });
  });

  it("speaks h2c (HTTP/2 with prior knowledge) to an http:// backend with http2: true", async () => {
    const seen: TestBackend["seen"] = [];
    const versions: string[] = [];
    const server = http2.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders });
      versions.push(req.httpVersion);
      res.end("h2c");
    });
    const b = track(await listen(server, "http", seen));
    const base = await start(yaml(b.url, "    http2: true\n", NO_FAILOVER));
    const r = await get(base);
    expect(r).toEqual({ status: 200, body: "h2c" });
    expect(versions).toEqual(["2.0"]);
  });
});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
