// The floor a Node proxy built on undici can reach: node:http in, pool.dispatch out, the answer
// streamed back with backpressure, nothing else (no header rules, no routing, no logs, no metrics).
// The "bare undici proxy" of the performance goals: Switchyard's CPU per request is measured against it.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Pool, type Dispatcher } from "undici";

const pool = new Pool(process.argv[2]!, { connections: 128, pipelining: 1 });
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "te", "proxy-connection"]);

const server = http.createServer((req, res) => {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  let controller: Dispatcher.DispatchController | null = null;
  // Only an answer cut short is aborted ('close' follows every answer; an Error per request would
  // cost the floor a stack trace each time).
  res.once("close", () => {
    if (!res.writableFinished) controller?.abort(new Error("client closed"));
  });
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      controller = c;
    },
    onResponseStart(c, status) {
      const out: string[] = [];
      const h = (c.rawHeaders ?? []) as Buffer[];
      for (let i = 0; i < h.length; i += 2) {
        const name = h[i]!.toString("latin1");
        if (!HOP.has(name.toLowerCase())) out.push(name, h[i + 1]!.toString("latin1"));
      }
      res.writeHead(status, out);
    },
    onResponseData(c, chunk) {
      if (!res.write(chunk)) {
        c.pause();
        res.once("drain", () => c.resume());
      }
    },
    onResponseEnd() {
      res.end();
    },
    onResponseError(_c, err) {
      if (!res.headersSent) res.writeHead(502).end(err.message);
      else res.destroy();
    },
  };
  pool.dispatch({ path: req.url!, method: req.method as "GET", headers, body: req.method === "GET" || req.method === "HEAD" ? null : req }, handler);
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
