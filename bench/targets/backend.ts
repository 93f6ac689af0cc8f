// The plain Node backend every target proxies to: a small JSON answer, keep-alive.
import http from "node:http";
import type { AddressInfo } from "node:net";

const body = JSON.stringify({ ok: true, service: "bench-backend", items: [1, 2, 3], message: "hello from the backend" });
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
