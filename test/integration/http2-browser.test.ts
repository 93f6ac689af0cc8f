// A real Chromium through an HTTP/2 TLS listener: the page comes over h2 (ALPN), and the WebSocket it
// opens to the same origin goes over HTTP/2 as well (RFC 8441 extended CONNECT), tunnelled to the
// backend as an HTTP/1.1 upgrade. The self-signed certificate is trusted by its key's hash.
import { createHash, createPublicKey } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { Switchyard } from "../../src/app.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { captureLogger } from "../helpers/control.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[http2-browser] SKIPPED: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

const PAGE = `<!doctype html><title>h2</title><script>
window.echo = (text) => new Promise((resolve, reject) => {
  const ws = new WebSocket("wss://" + location.host + "/ws");
  ws.onopen = () => ws.send(text);
  ws.onmessage = (m) => { resolve(String(m.data)); ws.close(); };
  ws.onerror = () => reject(new Error("websocket failed"));
});
</script>`;

let browser: Browser | undefined;
let backend: http.Server;
let proxy: Switchyard;
let spki = "";
const logs: Record<string, unknown>[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-h2-browser-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
  spki = createHash("sha256").update(createPublicKey(readFileSync(join(dir, "cert.pem"))).export({ type: "spki", format: "der" })).digest("base64");
  backend = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(PAGE);
  });
  new WebSocketServer({ server: backend }).on("connection", (ws) => ws.on("message", (m) => ws.send(`echo:${String(m)}`)));
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const text = `listeners:\n  - host: 127.0.0.1\n    port: 0\n    http2: true\n    tls:\n      cert: ${join(dir, "cert.pem")}\n      key: ${join(dir, "key.pem")}\nbackends:\n  legacy:\n    url: ${url}\n  new:\n    url: ${url}\nadmin:\n  port: 0\nlog:\n  access_log: true\n`;
  const result = parseConfigText(text, "h2-browser.yaml", {});
  if (!result.ok) throw new Error(result.errors.map((e) => e.format()).join("\n"));
  proxy = await Switchyard.start(result.config, { logger: captureLogger(logs) });
  if (haveChromium) browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${spki}`] });
});
afterAll(async () => {
  await browser?.close();
  await proxy?.shutdown(1000);
  backend?.closeAllConnections();
  await new Promise((r) => backend?.close(r));
});

describe.runIf(haveChromium)("Chromium through an HTTP/2 listener", () => {
  it("loads the page over h2 and its WebSocket to the same origin works", async () => {
    const page = await browser!.newPage();
    const url = proxy.urls[0]!.replace("127.0.0.1", "localhost");
    const res = await page.goto(`${url}/`);
    expect(res?.status()).toBe(200);
    expect(await page.evaluate<string>('performance.getEntriesByType("navigation")[0].nextHopProtocol')).toBe("h2");
    expect(await page.evaluate<string>('echo("hi")')).toBe("echo:hi");
    await page.close();
    const line = logs.find((l) => l.msg === "request" && l.path === "/");
    expect(line).toMatchObject({ protocol: "HTTP/2.0", status: 200 });
    // Chromium took the WebSocket over HTTP/2 too (extended CONNECT), tunnelled as an HTTP/1.1 upgrade.
    await new Promise((r) => setTimeout(r, 100)); // the tunnel's line comes when it closes
    expect(logs.find((l) => l.msg === "request" && l.path === "/ws")).toMatchObject({ method: "GET", status: 200, protocol: "HTTP/2.0", bytes_in: expect.any(Number) });
    expect((logs.find((l) => l.path === "/ws")!.bytes_out as number) > 0).toBe(true);
  });
});
