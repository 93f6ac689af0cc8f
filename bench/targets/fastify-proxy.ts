// @fastify/http-proxy (undici underneath) with logging off, its default pool.
import proxy from "@fastify/http-proxy";
import Fastify from "fastify";

const upstream = process.argv[2]!;
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(proxy, { upstream, http2: false });
const address = await app.listen({ port: 0, host: "127.0.0.1" });
process.stdout.write(`READY ${address}\n`);
process.on("SIGTERM", () => process.exit(0));
