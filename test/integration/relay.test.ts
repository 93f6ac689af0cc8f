// One direction of a tunnel over real loopback sockets: bytes arrive intact and in order when the
// far side reads slowly (writes that do not complete at once must not see their buffer reused),
// bytes the stream layer held before the relay started go first, an end is passed on, stop() passes
// nothing more, and TLS sockets fall back to pipe().
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { relay, RELAY_READ_BYTES } from "../../src/tunnel/relay.ts";
import { selfSigned } from "../helpers/tls.ts";

const open: (net.Server | net.Socket)[] = [];
afterEach(() => {
  for (const x of open.splice(0)) x instanceof net.Server ? x.close() : x.destroy();
});

/** A connected pair: the client socket and the server's accepted one. */
async function pair(): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const server = net.createServer();
  open.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = net.connect((server.address() as AddressInfo).port, "127.0.0.1");
  const [accepted] = (await once(server, "connection")) as [net.Socket];
  await once(client, "connect");
  open.push(client, accepted);
  return { client, accepted };
}

/** Everything `s` receives until it ends, read in small bites with pauses (a slow reader). */
function slowlyRead(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  s.on("data", (c: Buffer) => {
    chunks.push(c);
    if (++n % 8 === 0) {
      s.pause();
      setTimeout(() => s.resume(), 2);
    }
  });
  return new Promise((resolve) => s.once("end", () => resolve(Buffer.concat(chunks))));
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("relay", () => {
  it("carries 24 MiB intact to a slow reader, reusing its read buffer between plain sockets", async () => {
    const from = await pair(); // from.client writes; the relay reads from.accepted
    const to = await pair(); // the relay writes to.client; to.accepted receives
    const r = relay(from.accepted, to.client);
    expect(r.reusesBuffer).toBe(true);
    const received = slowlyRead(to.accepted);
    const data = randomBytes(24 * 1024 * 1024);
    // Written in pieces of odd sizes, so reads do not line up with the relay's buffer.
    for (let at = 0; at < data.length; ) {
      const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 3 * RELAY_READ_BYTES));
      if (!from.client.write(data.subarray(at, at + n))) await once(from.client, "drain");
      at += n;
    }
    from.client.end();
    const got = await received;
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
  });

  it("stops reading while the far side reads nothing, and carries on when it does", async () => {
    const from = await pair();
    const to = await pair();
    to.accepted.pause();
    relay(from.accepted, to.client);
    // Write until the kernel's buffers and the relay's are full: the writer is told to wait.
    const piece = randomBytes(256 * 1024);
    let written = 0;
    for (let i = 0; i < 400; i++) {
      written += piece.length;
      if (!from.client.write(piece) && (await Promise.race([once(from.client, "drain").then(() => true), new Promise((r) => setTimeout(r, 300, false))])) === false) break;
    }
    expect(written).toBeLessThan(400 * piece.length); // it had to stop: the relay no longer read
    // What the relay holds in memory is bounded by the socket's high-water mark and one read.
    expect(to.client.writableLength).toBeLessThanOrEqual(to.client.writableHighWaterMark + RELAY_READ_BYTES);
    const received = slowlyRead(to.accepted);
    to.accepted.resume();
    from.client.end();
    expect((await received).length).toBe(written);
  });

  it("passes on bytes the socket already held before it started, first and in order", async () => {
    const from = await pair();
    const to = await pair();
    from.accepted.pause();
    from.client.write("early bytes;");
    await new Promise((r) => setTimeout(r, 50));
    from.accepted.unshift(Buffer.from("put back;")); // as an HTTP client does with an upgrade's early data
    const received = slowlyRead(to.accepted);
    relay(from.accepted, to.client);
    from.client.end("later bytes");
    expect((await received).toString()).toBe("put back;early bytes;later bytes");
  });

  it("passes nothing on after stop()", async () => {
    const from = await pair();
    const to = await pair();
    const chunks: Buffer[] = [];
    to.accepted.on("data", (c: Buffer) => chunks.push(c));
    const r = relay(from.accepted, to.client);
    from.client.write("before");
    await waitUntil(() => Buffer.concat(chunks).toString() === "before");
    r.stop();
    from.client.write("after");
    await new Promise((res) => setTimeout(res, 100));
    to.client.end();
    await once(to.accepted, "end");
    expect(Buffer.concat(chunks).toString()).toBe("before");
  });

  it("pipes a TLS socket (no buffer reuse there) and carries its bytes", async () => {
    const { key, cert } = selfSigned();
    const server = tls.createServer({ key, cert });
    open.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const client = tls.connect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", rejectUnauthorized: false });
    const [accepted] = (await once(server, "secureConnection")) as [tls.TLSSocket];
    open.push(client, accepted);
    const to = await pair();
    const r = relay(accepted, to.client);
    expect(r.reusesBuffer).toBe(false);
    const received = slowlyRead(to.accepted);
    const data = randomBytes(2 * 1024 * 1024);
    client.end(data);
    expect(sha(await received)).toBe(sha(data));
  });
});

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}
