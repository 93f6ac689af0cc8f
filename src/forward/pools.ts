// One upstream per backend origin and pool settings: an undici Pool and the gate that admits exchanges
// to it. Upstreams are runtime state, not config: a reload that keeps a backend's settings keeps its
// pool (and its warm connections); changed ones are retired.
import type { TLSSocket as Socket } from "node:tls";
import { Client, Pool } from "./undici.ts";
import type { BackendTarget } from "../config/compile.ts";
import { PoolGate } from "./gate.ts";

export interface Upstream {
  readonly pool: Pool;
  readonly gate: PoolGate;
  readonly target: BackendTarget;
  /** Offered HTTP/2 (a backend with http2: true also has an HTTP/1.1 pool, for WebSocket upgrades). */
  readonly http2: boolean;
}

export class BackendPools {
  readonly #upstreams = new Map<string, Upstream>();
  /** Snapshot targets are frozen objects: a lookup by identity spares building the key per request. */
  #byTarget = new WeakMap<BackendTarget, Upstream>();
  /** Queue deadlines passed per backend since start (kept across pool retirements, for the counter). */
  readonly queueTimeouts: Record<string, number> = { legacy: 0, new: 0 };

  get(target: BackendTarget): Upstream {
    const known = this.#byTarget.get(target);
    if (known !== undefined) return known;
    const up = this.#pool(target, target.http2);
    this.#byTarget.set(target, up);
    return up;
  }

  /**
   * Where upgrades (WebSocket) to a backend go: its pool, or for a backend spoken to over HTTP/2 a
   * pool of HTTP/1.1 connections beside it (a tunnel takes a connection of its own either way).
   */
  forUpgrade(target: BackendTarget): Upstream {
    return target.http2 ? this.#pool(target, false) : this.get(target);
  }

  #pool(target: BackendTarget, http2: boolean): Upstream {
    const key = poolKey(target, http2);
    let up = this.#upstreams.get(key);
    if (up === undefined) {
      const pool = new Pool(target.origin, {
        connections: target.connections,
        pipelining: 1,
        keepAliveTimeout: target.idleTimeoutMs,
        keepAliveMaxTimeout: Math.max(target.idleTimeoutMs, 1000),
        headersTimeout: target.responseHeaderTimeoutMs,
        bodyTimeout: target.readTimeoutMs,
        ...connectOptions(target, target.connectTimeoutMs, http2),
        ...(http2 && { factory: streamsWhenH2 }),
      });
      const name = target.name;
      // Over HTTP/2 each connection carries up to H2_STREAMS exchanges at once.
      const admitted = http2 ? target.connections * H2_STREAMS : target.connections;
      up = { pool, gate: new PoolGate(admitted, target.queueTimeoutMs, () => void (this.queueTimeouts[name] = (this.queueTimeouts[name] ?? 0) + 1)), target, http2 };
      this.#upstreams.set(key, up);
    }
    return up;
  }

  /** Every pool's live counters, for leak checks and status. */
  stats(): { origin: string; backend: string; http2: boolean; connected: number; running: number; pending: number; active: number; queued: number; queue_timeouts: number }[] {
    return [...this.#upstreams].map(([key, u]) => ({
      origin: key.slice(0, key.indexOf("|")),
      backend: u.target.name,
      http2: u.http2,
      connected: u.pool.stats.connected,
      running: u.pool.stats.running,
      pending: u.pool.stats.pending,
      active: u.gate.active,
      queued: u.gate.queued,
      queue_timeouts: u.gate.timeouts,
    }));
  }

  /** Retire pools no current backend uses: they finish what they carry, then close. */
  async retainOnly(targets: readonly BackendTarget[]): Promise<void> {
    const keep = new Set(targets.flatMap((t) => [poolKey(t, t.http2), poolKey(t, false)]));
    const retired = [...this.#upstreams].filter(([key]) => !keep.has(key));
    for (const [key] of retired) this.#upstreams.delete(key);
    this.#byTarget = new WeakMap();
    await Promise.all(retired.map(([, u]) => u.pool.close()));
  }

  /** Let in-flight requests finish, then close every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.#upstreams.values()].map((u) => u.pool.close()));
    this.#upstreams.clear();
  }

  /** Abort everything now (drain deadline passed). */
  async destroy(): Promise<void> {
    await Promise.all([...this.#upstreams.values()].map((u) => u.pool.destroy()));
    this.#upstreams.clear();
  }
}

function poolKey(t: BackendTarget, http2: boolean): string {
  return `${t.origin}|${t.connections}|${t.connectTimeoutMs}|${t.idleTimeoutMs}|${t.responseHeaderTimeoutMs}|${t.readTimeoutMs}|${t.queueTimeoutMs}|${connectionKey(t, http2)}`;
}

/** How a dispatcher reaches a backend (TLS material read, protocol): dispatchers for another are other dispatchers. */
export function connectionKey(t: BackendTarget, http2 = t.http2): string {
  return `${t.tls?.id ?? "-"}|${http2 ? "h2" : "h1"}`;
}

/**
 * A pool's client that carries H2_STREAMS requests at once on a connection that turned out HTTP/2,
 * and one at a time on one that fell back to HTTP/1.1 (ALPN chose it): undici's pipelining is per
 * client and fixed, and at 1 a pool opens a connection per concurrent request even over HTTP/2.
 */
export function streamsWhenH2(origin: string | URL, opts: object): Client {
  const { connect } = opts as { connect: (o: object, cb: (err: Error | null, socket: Socket | null) => void) => void };
  const client: Client = new Client(origin, {
    ...opts,
    pipelining: 1,
    connect: (o: object, cb: (err: Error | null, socket: Socket | null) => void) =>
      connect(o, (err, socket) => {
        client.pipelining = socket?.alpnProtocol === "h2" ? H2_STREAMS : 1;
        cb(err, socket);
      }),
  } as ConstructorParameters<typeof Client>[1]);
  return client;
}

/** Streams undici opens at once on one HTTP/2 connection (its default; a backend's SETTINGS may lower it). */
const H2_STREAMS = 100;

/**
 * How undici reaches a backend, for every dispatcher made for one (pools, health checks, probes,
 * shadow copies): the connect timeout, the backend's TLS settings, and HTTP/2 by ALPN on https://
 * or with prior knowledge (h2c) on http://.
 */
export function connectOptions(target: BackendTarget, timeoutMs: number, http2 = target.http2): { connect: Record<string, unknown>; allowH2: boolean; maxConcurrentStreams?: number } {
  const h2c = http2 && target.origin.startsWith("http:");
  // useH2c inside `connect`: a Pool builds the connector itself and passes only allowH2 to it.
  return { connect: { timeout: timeoutMs, ...target.tls?.connect, ...(h2c && { useH2c: true }) }, allowH2: http2 && !h2c, ...(http2 && { maxConcurrentStreams: H2_STREAMS }) };
}
