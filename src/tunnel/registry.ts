// Every open tunnel, counted per backend for the limits, closed together at the drain deadline, and
// re-decided after a config change. Counters here are the hooks the metrics consume.
import type { RoutingTable } from "../routing/table.ts";
import { decide } from "../routing/decide.ts";
import type { BackendName } from "../routing/table.ts";
import type { Tunnel } from "./tunnel.ts";

export type UpgradeResult = "tunnelled" | "refused_by_backend" | "bad_handshake" | "limit" | "failed";

export interface TunnelLimits {
  readonly total: number;
  readonly perBackend: number;
}

export class TunnelRegistry {
  readonly open = new Set<Tunnel>();
  /** Open tunnels plus handshakes in progress, per backend (what the limits count). */
  readonly active: Record<BackendName, number> = { legacy: 0, new: 0 };
  readonly upgrades = new Map<string, number>();
  /** Bytes through closed tunnels, per backend and direction; open ones are added by stats(). */
  readonly bytes = { legacy: { fromClient: 0, fromUpstream: 0 }, new: { fromClient: 0, fromUpstream: 0 } };
  readonly durations = { count: 0, sumMs: 0 };
  #idleWaiters: (() => void)[] = [];

  /** Reserve a slot for a handshake; false when a limit is reached. */
  tryReserve(backend: BackendName, limits: TunnelLimits): boolean {
    const total = this.active.legacy + this.active.new;
    if (total >= limits.total || this.active[backend] >= limits.perBackend) return false;
    this.active[backend]++;
    return true;
  }

  /** A handshake that did not become a tunnel gives its slot back. */
  release(backend: BackendName): void {
    this.active[backend]--;
  }

  count(result: UpgradeResult, backend: BackendName | null): void {
    const key = `${backend ?? "none"}:${result}`;
    this.upgrades.set(key, (this.upgrades.get(key) ?? 0) + 1);
  }

  add(t: Tunnel): void {
    this.open.add(t);
  }

  /** Called by the tunnel when both ends are closed. */
  done(t: Tunnel): void {
    if (!this.open.delete(t)) return;
    const b = t.info.backend;
    this.active[b]--;
    this.bytes[b].fromClient += t.bytesFromClient;
    this.bytes[b].fromUpstream += t.bytesFromUpstream;
    this.durations.count++;
    this.durations.sumMs += performance.now() - t.startedAt;
    if (this.open.size === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Close every tunnel with a WebSocket code (1001 at the drain deadline). */
  closeAll(code: number, reason: string): void {
    for (const t of this.open) t.closeWith(code, reason);
  }

  /** Resolves when no tunnel is open, or after ms. */
  whenEmpty(ms: number): Promise<boolean> {
    if (this.open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.#idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * After a config change: re-decide every open tunnel on the new table. A tunnel whose user now
   * belongs on the other backend follows its feature's tunnels_on_move policy.
   * Returns how many tunnels were kept, set to drain, and closed.
   */
  reconsider(table: RoutingTable, drainMs: number, closeCode: number): { kept: number; draining: number; closed: number } {
    const out = { kept: 0, draining: 0, closed: 0 };
    for (const t of this.open) {
      const d = decide(t.info.facts, table);
      if (d.backend === t.info.backend) continue;
      const policy = (d.feature ?? t.info.feature) === null ? "keep" : table.features.get((d.feature ?? t.info.feature)!)?.tunnelsOnMove ?? "keep";
      if (policy === "close") {
        t.closeWith(closeCode, "moved");
        out.closed++;
      } else if (policy === "drain") {
        t.closeAfter(drainMs, closeCode, "moved");
        out.draining++;
      } else out.kept++;
    }
    return out;
  }

  stats() {
    const openPer = { legacy: 0, new: 0 };
    for (const t of this.open) openPer[t.info.backend]++;
    return { open: openPer, upgrades: Object.fromEntries(this.upgrades), bytes: this.bytes, durations: this.durations };
  }
}
