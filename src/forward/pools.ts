// One undici Pool per backend origin and pool settings. Pools are runtime state, not config: a reload
// that keeps a backend's settings keeps its pool (and its warm connections); changed ones are retired.
import { Pool } from "undici";
import type { BackendTarget } from "../config/compile.ts";

export class BackendPools {
  readonly #pools = new Map<string, Pool>();

  get(target: BackendTarget): Pool {
    const key = poolKey(target);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = new Pool(target.origin, {
        connections: target.connections,
        pipelining: 1,
        connect: { timeout: target.connectTimeoutMs },
        keepAliveTimeout: target.idleTimeoutMs,
        keepAliveMaxTimeout: Math.max(target.idleTimeoutMs, 1000),
        headersTimeout: target.responseHeaderTimeoutMs,
        bodyTimeout: target.readTimeoutMs,
        allowH2: false,
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Every pool's live counters, for leak checks and status. */
  stats(): { origin: string; connected: number; running: number; pending: number }[] {
    return [...this.#pools].map(([key, p]) => ({ origin: key.slice(0, key.indexOf("|")), ...pick(p.stats) }));
  }

  /** Retire pools no current backend uses: they finish what they carry, then close. */
  async retainOnly(targets: readonly BackendTarget[]): Promise<void> {
    const keep = new Set(targets.map(poolKey));
    const retired = [...this.#pools].filter(([key]) => !keep.has(key));
    for (const [key] of retired) this.#pools.delete(key);
    await Promise.all(retired.map(([, pool]) => pool.close()));
  }

  /** Let in-flight requests finish, then close every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
    this.#pools.clear();
  }

  /** Abort everything now (drain deadline passed). */
  async destroy(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.destroy()));
    this.#pools.clear();
  }
}

function poolKey(t: BackendTarget): string {
  return `${t.origin}|${t.connections}|${t.connectTimeoutMs}|${t.idleTimeoutMs}|${t.responseHeaderTimeoutMs}|${t.readTimeoutMs}`;
}

function pick(s: { connected: number; running: number; pending: number }) {
  return { connected: s.connected, running: s.running, pending: s.pending };
}
