// TLS like an edge: certificates chosen by SNI, reloaded when their files change (open connections
// untouched, a bad file keeps the ones in use), a minimum version, HSTS, the expiry metric, and
// `switchyard check` saying whether certificate and key belong together.
import { execFile, execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Switchyard } from "../../src/app.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { captureLogger } from "../helpers/control.ts";
import { parseProm } from "../helpers/prom.ts";
import { startBackend, waitFor, type TestBackend } from "../helpers/servers.ts";

const dir = mkdtempSync(join(tmpdir(), "switchyard-tls-edge-"));
function makeCert(name: string, cn: string, san: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
    "-subj", `/CN=${cn}`, "-addext", `subjectAltName=${san}`, "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { cert, key };
}
const main = makeCert("main", "localhost", "IP:127.0.0.1,DNS:localhost");
const api = makeCert("api", "api.test", "DNS:api.test,DNS:*.apps.test");
const renewed = makeCert("renewed", "localhost", "IP:127.0.0.1,DNS:localhost");
const other = makeCert("other", "other", "DNS:other");
const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;

let backend: TestBackend;
let proxy: Switchyard | null = null;
let logs: Record<string, unknown>[] = [];
// The served pair lives in files of its own, so the tests can replace them.
const served = { cert: join(dir, "served.crt"), key: join(dir, "served.key") };

beforeAll(async () => {
  backend = await startBackend((_req, res) => res.end("ok"));
});
afterAll(() => backend.close());
afterEach(async () => {
  await proxy?.shutdown(1000);
  proxy = null;
});

function yaml(extra = ""): string {
  return `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${served.cert}\n      key: ${served.key}\n      sni:\n        - names: [api.test, "*.apps.test"]\n          cert: ${api.cert}\n          key: ${api.key}\n${extra}backends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`;
}

async function start(extra = ""): Promise<string> {
  copyFileSync(main.cert, served.cert);
  copyFileSync(main.key, served.key);
  const result = parseConfigText(yaml(extra), join(dir, "sy.yaml"), {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  logs = [];
  proxy = await Switchyard.start(result.config, { logger: captureLogger(logs) });
  return proxy.urls[0]!;
}

/** The certificate the server presents for `servername` (no verification: we look at what it is). */
function peerCert(port: number, servername: string, opts: tls.ConnectionOptions = {}): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false, ...opts }, () => {
      const c = s.getPeerCertificate();
      s.end();
      resolve(c);
    });
    s.on("error", reject);
  });
}
const fingerprintOf = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

describe("TLS listener certificates", () => {
  it("chooses the certificate by SNI: exact and wildcard names, the default for the rest", async () => {
    const port = Number(new URL(await start()).port);
    expect((await peerCert(port, "api.test")).subject.CN).toBe("api.test");
    expect((await peerCert(port, "x.apps.test")).subject.CN).toBe("api.test");
    expect((await peerCert(port, "deep.x.apps.test")).subject.CN).toBe("localhost"); // a wildcard covers one label
    expect((await peerCert(port, "localhost")).subject.CN).toBe("localhost");
  });

  it("reloads changed files for new handshakes; a connection opened before goes on; a key that does not match keeps the old pair", async () => {
    const url = await start();
    const port = Number(new URL(url).port);
    const before = (await peerCert(port, "localhost")).fingerprint256;
    expect(before).toBe(fingerprintOf(main.cert));
    // An HTTP/2 connection opened now, used again after the reload.
    const session = http2.connect(url, { ca: readFileSync(main.cert) });
    const get = (path: string) => new Promise<number>((resolve, reject) => {
      const r = session.request({ ":path": path });
      r.on("response", (h) => resolve(Number(h[":status"])));
      r.on("error", reject);
      r.resume();
    });
    expect(await get("/before")).toBe(200);
    copyFileSync(renewed.cert, served.cert);
    copyFileSync(renewed.key, served.key);
    await waitFor(() => logs.some((l) => String(l.msg).startsWith("tls: certificates of listeners[0].tls reloaded")), "the reload", 5000);
    expect((await peerCert(port, "localhost")).fingerprint256).toBe(fingerprintOf(renewed.cert));
    expect(await get("/after")).toBe(200);
    session.close();
    // A certificate written without its key: refused, the renewed pair stays in use.
    copyFileSync(other.cert, served.cert);
    await waitFor(() => logs.some((l) => l.level === "error" && String(l.msg).startsWith("tls: cannot reload the certificates of listeners[0].tls, keeping the ones in use")), "the refusal", 5000);
    const refusal = logs.find((l) => l.level === "error")!;
    expect(String(refusal.msg)).toContain("does not belong to the certificate");
    expect((await peerCert(port, "localhost")).fingerprint256).toBe(fingerprintOf(renewed.cert));
    const m = parseProm(await proxy!.metrics.registry.metrics());
    expect(m.get('switchyard_tls_reloads_total{result="ok"}')).toBe(1);
    expect(m.get('switchyard_tls_reloads_total{result="failed"}')).toBe(1);
  });

  it("exposes each certificate's expiry as a metric", async () => {
    await start();
    const m = parseProm(await proxy!.metrics.registry.metrics());
    const notAfter = Math.floor(new Date(new X509Certificate(readFileSync(api.cert)).validTo).getTime() / 1000);
    expect(m.get(`switchyard_tls_certificate_expiry_timestamp_seconds{listener="0",file="${api.cert}",name="api.test"}`)).toBe(notAfter);
    expect([...m.keys()].filter((k) => k.startsWith("switchyard_tls_certificate_expiry_timestamp_seconds"))).toHaveLength(2);
  });

  it("min_version: TLSv1.3 refuses a TLS 1.2 client; HSTS on every answer, HTTP/1.1 and HTTP/2", async () => {
    const url = await start('      min_version: TLSv1.3\n      hsts: "max-age=31536000; includeSubDomains"\n');
    const port = Number(new URL(url).port);
    await expect(peerCert(port, "localhost", { maxVersion: "TLSv1.2" })).rejects.toThrow();
    expect((await peerCert(port, "localhost", { minVersion: "TLSv1.3" })).subject.CN).toBe("localhost");
    const h1 = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => https.get(`${url}/h`, { ca: readFileSync(main.cert), agent: false }, resolve).on("error", reject));
    h1.resume();
    expect(h1.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
    const session = http2.connect(url, { ca: readFileSync(main.cert) });
    const h2 = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => session.request({ ":path": "/h" }).on("response", resolve).on("error", reject).resume());
    session.close();
    expect(h2["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  });

  it("a key that does not match its certificate fails the start, naming both files", async () => {
    copyFileSync(main.cert, served.cert);
    copyFileSync(other.key, served.key);
    const result = parseConfigText(yaml(), join(dir, "sy.yaml"), {});
    if (!result.ok) throw new Error("config");
    await expect(Switchyard.start(result.config, { logger: captureLogger([]) })).rejects.toThrow(`listeners[0].tls: the key in ${served.key} does not belong to the certificate in ${served.cert}`);
  });
});

describe("switchyard check with certificates", () => {
  it("reports names and expiry when certificate and key match, and exits 1 naming the files when not", async () => {
    copyFileSync(main.cert, served.cert);
    copyFileSync(main.key, served.key);
    const file = join(dir, "check.yaml");
    writeFileSync(file, yaml());
    const ok = await promisify(execFile)(process.execPath, [cli, "check", "-c", file], { encoding: "utf8" });
    expect(ok.stdout).toMatch(new RegExp(`listeners\\[0\\] certificate ${served.cert.replace(/[.]/g, "\\.")}: 127\\.0\\.0\\.1, localhost; key matches; expires \\d{4}-\\d\\d-\\d\\d \\(in (29|30) days\\)`));
    expect(ok.stdout).toContain(`certificate ${api.cert}: api.test, *.apps.test; key matches`);
    copyFileSync(other.key, served.key);
    const bad = await promisify(execFile)(process.execPath, [cli, "check", "-c", file], { encoding: "utf8" }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toContain(`switchyard: listeners[0].tls: the key in ${served.key} does not belong to the certificate in ${served.cert}`);
    expect(bad?.stderr).toMatch(/1 certificate problem; nothing started/);
  });
});
