// RELIABILITY.md A2: malformed backend answers (an unsolicited 101 among them) get 502, never a
// tunnel, and the connection that carried them is never used again (a one-connection pool would
// otherwise reuse it for the very next request).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import { startProxyWithConfig, type TestProxy } from "../helpers/servers.ts";
import { rogueBackend, type RogueBackend } from "./backends.ts";
import { A2 } from "./cases.ts";
import { wire } from "./wire.ts";

let rogue: RogueBackend;
let proxy: TestProxy;

beforeAll(async () => {
  rogue = await rogueBackend(Object.fromEntries(A2.map((c) => [c.id, c.reply])));
  const yaml = `listeners: [{ host: 127.0.0.1, port: 0 }]
backends:
  legacy: { url: "${rogue.url}", pool: { connections: 1 }, timeouts: { response_header: 1s, read: 1s } }
  new: { url: "${rogue.url}", pool: { connections: 1 } }
admin: { port: 0 }
`;
  const loaded = parseConfigText(yaml, "a2.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  proxy = await startProxyWithConfig(loaded.config);
});
afterAll(async () => {
  await proxy.close();
  await rogue.close();
});

describe("A2: malformed backend answers", () => {
  it.each(A2)("$id $name", async (c) => {
    const r = await wire(proxy.port, `GET /rogue/${c.id} HTTP/1.1\r\nHost: a\r\n\r\n`, { idleMs: 300 });
    if (c.expect === "bad") {
      expect(r.statuses).toEqual([502]);
      expect(r.text).toMatch(/"code":"SY_UPSTREAM_(BAD_RESPONSE|RESET)"/);
    } else if (c.expect === "cut") {
      expect(r.closed).toBe(true);
      expect(looksComplete(r.text)).toBe(false); // never passed off as a complete answer
    } else expect(r.statuses).toEqual([c.expect]);
    expect(r.text).not.toContain("RAW-BYTES");
    expect(proxy.app.tunnels.open.size).toBe(0);
    // The next request must not ride the connection that carried a bad answer.
    const next = await wire(proxy.port, `GET /after/${c.id} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    expect(next.statuses).toEqual([200]);
    const carrier = rogue.connections.find((paths) => paths.includes(`/rogue/${c.id}`))!;
    if (typeof c.expect !== "number") expect(carrier.at(-1)).toBe(`/rogue/${c.id}`);
  });
});

/** Whether a client could take this byte stream for one complete response (by its own framing). */
function looksComplete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return false;
  const head = text.slice(0, end).toLowerCase();
  const body = text.slice(end + 4);
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) return body.length >= Number(length[1]);
  if (/\r\ntransfer-encoding: *chunked/.test(head)) return body.endsWith("0\r\n\r\n");
  return true; // delimited by close: indistinguishable, which is why the proxy never sends that
}
