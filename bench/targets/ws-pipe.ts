// The floor for a WebSocket tunnel in Node, for bench/ws.ts: a node:http server that answers an
// upgrade by opening a TCP connection to the backend, sending the request line and headers it got,
// and piping the two sockets into each other. No checks, no timeouts, no accounting. (Forwarding
// 'data' events by hand instead of pipe() measured the same: 0.77x nginx against 0.78x, 2026-12-03.)
// With --relay the bytes go through src/tunnel/relay.ts instead (reads into reused buffers), as in
// Switchyard: that floor is bench:ws's "node-onread". (Writing each read with the socket's
// _writeGeneric instead of write(), the Writable's bookkeeping skipped, measured the same CPU per
// message: 42.2 µs both, 2026-12-03.)
// node bench/targets/ws-pipe.ts <backend url> [--relay]  ->  prints "READY http://127.0.0.1:PORT"
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { relay } from "../../src/tunnel/relay.ts";

const backend = new URL(process.argv[2]!);
const useRelay = process.argv.includes("--relay");
const server = http.createServer((_req, res) => res.writeHead(426).end());
server.on("upgrade", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
  const upstream = net.connect(Number(backend.port), backend.hostname, () => {
    let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    upstream.write(`${lines}\r\n`);
    if (head.length > 0) upstream.write(head);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (useRelay) {
      relay(client, upstream);
      relay(upstream, client);
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close).on("close", close);
  upstream.on("error", close).on("close", close);
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
