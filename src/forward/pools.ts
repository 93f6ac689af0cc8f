// One upstream per backend origin and pool settings: an undici Pool and the gate that admits exchanges
// to it. Upstreams are runtime state, not config: a reload that keeps a backend's settings keeps its
// pool (and its warm connections); changed ones are retired.
import { Pool } from "./undici.ts";
import type { BackendTarget } from "../config/compile.ts";
import { PoolGate } from "./gate.ts";

export interface Upstream {
  readonly pool: Pool;
  readonly gate: PoolGate;
  readonly target: BackendTarget;
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
    const key = poolKey(target);
    let up = this.#upstreams.get(key);
    if (up === undefined) {
      const pool = new Pool(target.origin, {
        connections: target.connections,
        pipelining: 1,
        connect: { timeout: target.connectTimeoutMs },
        keepAliveTimeout: target.idleTimeoutMs,
        keepAliveMaxTimeout: Math.max(target.idleTimeoutMs, 1000),
        headersTimeout: target.responseHeaderTimeoutMs,
        bodyTimeout: target.readTimeoutMs,
        allowH2: false,
      });
      const name = target.name;
      up = { pool, gate: new PoolGate(target.connections, target.queueTimeoutMs, () => void (this.queueTimeouts[name] = (this.queueTimeouts[name] ?? 0) + 1)), target };
      this.#upstreams.set(key, up);
    }
    this.#byTarget.set(target, up);
    return up;
  }

  /** Every pool's live counters, for leak checks and status. */
  stats(): { origin: string; backend: string; connected: number; running: number; pending: number; active: number; queued: number; queue_timeouts: number }[] {
    return [...this.#upstreams].map(([key, u]) => ({
      origin: key.slice(0, key.indexOf("|")),
      backend: u.target.name,
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
    const keep = new Set(targets.map(poolKey));
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

function poolKey(t: BackendTarget): string {
  return `${t.origin}|${t.connections}|${t.connectTimeoutMs}|${t.idleTimeoutMs}|${t.responseHeaderTimeoutMs}|${t.readTimeoutMs}|${t.queueTimeoutMs}`;
}
