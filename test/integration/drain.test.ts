// Graceful shutdown: stop accepting at once, let in-flight requests finish (asking clients to close),
// cut what is left at the drain deadline, close idle keep-alive connections.
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { send } from "../helpers/client.ts";
import { startBackend, startProxy, waitFor, type TestBackend, type TestProxy } from "../helpers/servers.ts";

let backend: TestBackend;
let proxy: TestProxy;

afterEach(async () => {
  await proxy?.close();
  await backend?.close();
});

function connectOutcome(port: number): Promise<"refused" | "connected"> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.on("error", () => resolve("refused"));
  });
}

describe("graceful shutdown", () => {
  it("stops accepting, finishes in-flight requests with Connection: close, then resolves drained", async () => {
    const release: (() => void)[] = [];
    backend = await startBackend((_req, res) => release.push(() => res.end("finished")));
    proxy = await startProxy("", backend.url);
    const inflight = send(proxy.url, { path: "/slow" });
    await waitFor(() => release.length === 1, "the request to reach the backend");

    const shutdown = proxy.app.shutdown(5000);
    expect(await connectOutcome(proxy.port)).toBe("refused");
    expect(proxy.app.state.inflight).toBe(1);

    release[0]!();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("finished");
    expect(res.headers.connection).toBe("close");
    expect(await shutdown).toEqual({ drained: true, cut: 0 });
  });

  it("cuts requests still running at the drain deadline", async () => {
    backend = await startBackend(() => {
      /* never answers */
    });
    proxy = await startProxy("", backend.url);
    const inflight = send(proxy.url, { path: "/hang" }).then(
      () => "answered",
      () => "cut",
    );
    await waitFor(() => backend.seen.length === 1, "the request to reach the backend");
    expect(await proxy.app.shutdown(200)).toEqual({ drained: false, cut: 1 });
    expect(await inflight).toBe("cut");
    expect(proxy.app.state.inflight).toBe(0);
  });

  it("closes idle keep-alive connections at once", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    proxy = await startProxy("", backend.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const socketClosed = new Promise<void>((resolve) => {
      http.get(`${proxy.url}/`, { agent }, (res) => {
        res.resume();
        res.socket.once("close", () => resolve());
      });
    });
    await waitFor(() => proxy.accessLogs().length === 1, "the first request");
    const started = Date.now();
    await proxy.app.shutdown(5000);
    await socketClosed;
    expect(Date.now() - started).toBeLessThan(5000);
    agent.destroy();
  });

  it("is idempotent", async () => {
    backend = await startBackend((_req, res) => res.end("ok"));
    proxy = await startProxy("", backend.url);
    const [a, b] = await Promise.all([proxy.app.shutdown(100), proxy.app.shutdown(100)]);
    expect(a).toEqual(b);
  });
});
