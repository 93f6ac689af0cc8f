// An HTTPS listener from PEM files: clients speak TLS, the backend is told X-Forwarded-Proto https.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../helpers/client.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { startBackend, startProxyWithConfig, type TestBackend, type TestProxy } from "../helpers/servers.ts";

let backend: TestBackend;
let proxy: TestProxy;
let cert: Buffer;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-tls-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  cert = readFileSync(join(dir, "cert.pem"));
  backend = await startBackend((_req, res) => res.end("secure"));
  const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${backend.url}\n  new:\n    url: ${backend.url}\nadmin:\n  port: 0\n`;
  const result = parseConfigText(text, "tls.yaml", {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  proxy = await startProxyWithConfig(result.config);
});

afterAll(async () => {
  await proxy?.close();
  await backend?.close();
});

describe("TLS listener", () => {
  it("serves HTTPS and tells the backend the original scheme and port", async () => {
    expect(proxy.url).toMatch(/^https:\/\//);
    const res = await send(proxy.url, { path: "/s", ca: cert });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("secure");
    const h = backend.seen[0]!.headers;
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-forwarded-port"]).toBe(String(proxy.port));
  });
});
