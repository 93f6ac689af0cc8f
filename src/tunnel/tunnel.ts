// An open tunnel: bytes both ways with backpressure (relay.ts), either side's end or error closing the
// other promptly, an optional idle timeout, and a way to close both ends with a WebSocket status code.
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { RequestFacts } from "../routing/decide.ts";
import type { BackendName } from "../routing/table.ts";
import { closeFrameToClient, closeFrameToServer } from "./handshake.ts";
import { relay, type Relay } from "./relay.ts";

/** How long a side that ended cleanly may take to flush before it is destroyed. */
const LINGER_MS = 1000;

export interface TunnelInfo {
  readonly backend: BackendName;
  readonly feature: string | null;
  /** The request facts the decision was made on, kept to re-decide after a config change. */
  readonly facts: RequestFacts;
  readonly websocket: boolean;
}

/** The client's side of a tunnel: its socket, or its HTTP/2 stream (a WebSocket over HTTP/2). */
export type TunnelClient = Duplex & { setTimeout(ms: number, cb: () => void): unknown };

export class Tunnel {
  readonly client: TunnelClient;
  readonly upstream: Duplex;
  readonly info: TunnelInfo;
  readonly startedAt = performance.now();
  /** Why the proxy closed it, when it did ("idle", "shutdown", "moved"). */
  closedBy: string | null = null;
  #toUpstream0: number;
  #toClient0: number;
  #done = false;
  #streamBytesOut = 0;
  #onDone: (t: Tunnel) => void;
  #drainTimer: NodeJS.Timeout | null = null;
  readonly #relays: readonly [Relay, Relay];

  constructor(client: TunnelClient, upstream: Duplex, head: Buffer, info: TunnelInfo, idleMs: number, onDone: (t: Tunnel) => void) {
    this.client = client;
    this.upstream = upstream;
    this.info = info;
    this.#onDone = onDone;
    // Counted as written by the proxy, from here on: the handshake's bytes are not tunnel traffic.
    this.#toUpstream0 = bytesWritten(upstream);
    this.#toClient0 = bytesWritten(client);
    // An HTTP/2 stream keeps no count of its own: count what the backend sends it.
    if (typeof (client as { bytesWritten?: unknown }).bytesWritten !== "number") upstream.on("data", (c: Buffer) => (this.#streamBytesOut += c.length));
    if (head.length > 0) upstream.write(head);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on("error", () => this.destroy());
      // One side ended or closed: let the other flush what it holds, then make sure it is gone.
      a.once("close", () => {
        b.end();
        setTimeout(() => this.destroy(), LINGER_MS).unref();
        this.#finish();
      });
    }
    // Idle means neither way: the client socket's timer is refreshed by its own reads and writes,
    // and the writes are what the upstream sends.
    if (idleMs > 0) client.setTimeout(idleMs, () => this.closeWith(1001, "idle"));
    (client as Partial<Socket>).setNoDelay?.(true);
    this.#relays = [relay(client, upstream), relay(upstream, client)];
  }

  /** True when both directions read into reused buffers (plain TCP on both sides), false when pipe()d. */
  get reusesBuffers(): boolean {
    return this.#relays[0].reusesBuffer && this.#relays[1].reusesBuffer;
  }

  /** Bytes the client sent through the tunnel (after the handshake). */
  get bytesFromClient(): number {
    return bytesWritten(this.upstream) - this.#toUpstream0;
  }

  get bytesFromUpstream(): number {
    return bytesWritten(this.client) - this.#toClient0 + this.#streamBytesOut;
  }

  get open(): boolean {
    return !this.#done;
  }

  /**
   * Close both ends with a WebSocket close code (1001 going away, 1012 service restart) so clients
   * reconnect. Frames are injected between the relays, so a message in flight at that instant is cut.
   */
  closeWith(code: number, reason: string): void {
    if (this.#done || this.closedBy !== null) return;
    this.closedBy = reason;
    for (const r of this.#relays) r.stop();
    if (this.info.websocket) {
      this.client.end(closeFrameToClient(code));
      this.upstream.end(closeFrameToServer(code, randomBytes(4)));
    } else {
      this.client.end();
      this.upstream.end();
    }
    setTimeout(() => this.destroy(), LINGER_MS).unref();
  }

  /** Close with `code` after `ms`, unless the tunnel ends first. */
  closeAfter(ms: number, code: number, reason: string): void {
    if (this.#done || this.#drainTimer !== null) return;
    this.#drainTimer = setTimeout(() => this.closeWith(code, reason), ms);
    this.#drainTimer.unref();
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#onDone(this);
  }
}

function bytesWritten(s: Duplex): number {
  return (s as Duplex & { bytesWritten?: number }).bytesWritten ?? 0;
}
