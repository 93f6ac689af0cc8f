// Two sample backends for the demo: a "legacy" one in the manner of Flask/gevent (slower, Werkzeug
// headers) and a "new" one in the manner of FastAPI/uvicorn. Same API, slightly different answers.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { BackendName } from "../config/schema.ts";

interface Flavour {
  server: string;
  /** Simulated work per request, ms. */
  latencyMs: number;
}

const FLAVOURS: Record<BackendName, Flavour> = {
  legacy: { server: "Werkzeug/3.0.1 Python/3.11.7", latencyMs: 12 },
  new: { server: "uvicorn", latencyMs: 3 },
};

export interface SampleBackend {
  name: BackendName;
  url: string;
  close(): Promise<void>;
}

export async function startSampleBackend(name: BackendName, host = "127.0.0.1", port = 0): Promise<SampleBackend> {
  const flavour = FLAVOURS[name];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      setTimeout(() => {
        const url = new URL(req.url ?? "/", "http://x");
        const body = JSON.stringify({
          backend: name,
          method: req.method,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          received_bytes: Buffer.concat(chunks).length,
          forwarded_for: req.headers["x-forwarded-for"] ?? null,
          request_id: req.headers["x-request-id"] ?? null,
          result: url.pathname.endsWith("/ping") ? "pong" : "ok",
        });
        res.writeHead(200, { "content-type": "application/json", server: flavour.server });
        res.end(body);
      }, flavour.latencyMs);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
