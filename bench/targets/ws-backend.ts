// WebSocket echo backend for bench/ws.ts.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";

const server = http.createServer((_req, res) => res.end("ok"));
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })));
server.listen(0, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${(server.address() as AddressInfo).port}\n`));
process.on("SIGTERM", () => process.exit(0));
