// The plain Node backend every target proxies to: a small JSON answer, keep-alive. With --h2c it
// speaks HTTP/2 with prior knowledge instead (the same answer), for backends.NAME.http2.
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";

const body = JSON.stringify({ ok: true, service: "bench-backend", items: [1, 2, 3], message: "hello from the backend" });
const answer = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
  req.resume();
  (res as http.ServerResponse).writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
};
const server = process.argv.includes("--h2c") ? http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, answer) : http.createServer(answer);
if (server instanceof http.Server) server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
