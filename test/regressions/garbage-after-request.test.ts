// Guards: a parse error in bytes that follow a valid request (pipelined garbage, data after
// `Connection: close`) once destroyed the socket and lost the valid request's answer.
import { afterEach, expect, it } from "vitest";
import { rawExchange, startBackend, startProxy, type TestBackend, type TestProxy } from "../helpers/servers.ts";

let backend: TestBackend;
let proxy: TestProxy;
afterEach(async () => {
  await proxy?.close();
  await backend?.close();
});

it.each([
  ["data after Connection: close", "GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["a malformed pipelined request", "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"],
])("answers the valid request and drops %s", async (_name, payload) => {
  backend = await startBackend((req, res) => setTimeout(() => res.end(`answer for ${req.url}`), 20));
  proxy = await startProxy("", backend.url);
  const out = await rawExchange(proxy.port, payload);
  expect(out).toMatch(/^HTTP\/1.1 200 /);
  expect(out).toContain("answer for /ok");
  expect(backend.seen.map((r) => r.url)).toEqual(["/ok"]);
  expect(proxy.accessLogs().filter((l) => l.path === "/ok")).toHaveLength(1);
});
