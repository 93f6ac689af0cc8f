// A backend in a process of its own, so tests can kill, stop and restart it: answers
// {"backend": NAME, "url": ...} after reading the whole request, prints "READY <port>" once listening
// and "EXEC <method> <url>" for every request it received whole (what it executed).
// Usage: node child-backend.ts NAME [PORT]
import http from "node:http";

const name = process.argv[2] ?? "backend";
const server = http.createServer((req, res) => {
  let n = 0;
  req.on("data", (c: Buffer) => (n += c.length));
  req.on("end", () => {
    process.stdout.write(`EXEC ${req.method} ${req.url}\n`);
    if (req.url?.startsWith("/healthz")) {
      res.writeHead(200).end("ok");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ backend: name, url: req.url, bytes: n }));
  });
});
server.keepAliveTimeout = 30_000;
server.listen(Number(process.argv[3] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`READY ${(server.address() as import("node:net").AddressInfo).port}\n`);
});
