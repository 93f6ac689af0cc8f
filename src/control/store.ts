// A control store shared by replicas: the runtime overrides (admin changes, kill switch, mode, guard
// rollbacks) of a fleet, each change a new version. `control.store: redis://...` keeps them in Redis:
// a change is a compare-and-set on the version (two replicas changing at once: one wins, the other
// gets 409 with the state that won), announced on a channel, and every replica also re-reads the
// version each second, so one that missed the message catches up. While Redis is unreachable the
// replicas keep serving their last state and refuse changes (503): a change applied to one replica
// only would split the fleet.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { GuardState } from "../guard/evaluate.ts";
import type { SeriesDelta } from "../observe/metrics.ts";
import type { WindowDelta } from "../observe/window.ts";
import type { OverrideEntry } from "./overrides.ts";

/** What each replica publishes every second: who it is, what it runs, and its records since the last one. */
export interface Heartbeat {
  from: string;
  /** Where it serves: listener URLs and the admin API's. */
  listeners: string[];
  admin: string | null;
  /** Hash of the config it runs (file plus overrides), and the store version those overrides come from. */
  hash: string;
  version: number;
  leader: boolean;
  /** Request window records per feature and backend, and compared shadow pairs per feature. */
  deltas: SeriesDelta[];
  comparisons: { feature: string; deltas: WindowDelta[] }[];
}

export interface SharedState {
  /**
   * Which history the versions count in: set when an empty store gets its first state. A Redis that
   * restarted empty starts a new epoch, so version 3 of one history is never taken for version 3 of
   * another.
   */
  epoch: string;
  /** 0: the store holds nothing (new, or restarted without persistence). */
  version: number;
  overrides: [string, OverrideEntry][];
}

export type CommitResult = { ok: true; version: number; epoch: string } | { ok: false; current: SharedState };

export class StoreUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreUnavailable";
  }
}

/**
 * Set the state only if the store is still at the epoch and version the change was made on (an empty
 * store takes any change made on version 0, and starts the new epoch ARGV[4]); announce it.
 */
const COMMIT = `
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local e = redis.call('HGET', KEYS[1], 'epoch') or ''
if v ~= tonumber(ARGV[2]) or (v > 0 and e ~= ARGV[1]) then
  return {0, v, e, redis.call('HGET', KEYS[1], 'overrides') or '[]'}
end
if v == 0 then
  e = ARGV[4]
end
redis.call('HSET', KEYS[1], 'version', v + 1, 'overrides', ARGV[3], 'epoch', e)
redis.call('PUBLISH', KEYS[2], v + 1)
return {1, v + 1, e}
`;

/** Renew the lease if we hold it, take it if nobody does. */
const LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

export class RedisControlStore {
  readonly url: string;
  readonly #key: string;
  readonly #channel: string;
  readonly #windowsChannel: string;
  readonly #leaderKey: string;
  readonly #auditKey: string;
  #heartbeatListeners: ((beat: Heartbeat) => void)[] = [];
  readonly #client: Redis;
  readonly #sub: Redis;
  #listeners: ((version: number) => void)[] = [];
  lastError: string | null = null;

  /**
   * `prefix` separates fleets sharing one Redis (default switchyard). The Redis client is loaded
   * only here, so a proxy on the file store does not carry it (~2 MiB of modules and their heap).
   */
  static async create(url: string, prefix = "switchyard"): Promise<RedisControlStore> {
    const { Redis } = await import("ioredis");
    return new RedisControlStore(url, prefix, Redis);
  }

  private constructor(url: string, prefix: string, Redis: typeof import("ioredis").Redis) {
    this.url = redactUrl(url);
    this.#key = `${prefix}:control`;
    this.#channel = `${prefix}:control:changed`;
    this.#windowsChannel = `${prefix}:windows`;
    this.#leaderKey = `${prefix}:leader`;
    this.#auditKey = `${prefix}:audit`;
    const opts = { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000, enableOfflineQueue: false, retryStrategy: (n: number) => Math.min(n * 200, 2000) };
    this.#client = new Redis(url, opts);
    this.#sub = new Redis(url, opts);
    for (const c of [this.#client, this.#sub]) {
      c.on("error", (err: Error) => {
        this.lastError = err.message;
      });
      c.on("ready", () => {
        this.lastError = null;
      });
    }
    this.#sub.on("message", (channel: string, message: string) => {
      if (channel === this.#channel) for (const l of this.#listeners) l(Number(message));
      else if (channel === this.#windowsChannel) {
        const beat = JSON.parse(message) as Heartbeat;
        for (const l of this.#heartbeatListeners) l(beat);
      }
    });
  }

  get connected(): boolean {
    return this.#client.status === "ready";
  }

  /** Connect both links; resolves false (and keeps retrying in the background) when Redis is not there. */
  async connect(): Promise<boolean> {
    try {
      await Promise.all([this.#client.connect(), this.#sub.connect()]);
      await this.#sub.subscribe(this.#channel, this.#windowsChannel);
      // After a reconnect the subscription is restored by ioredis itself.
      return true;
    } catch (err) {
      this.lastError = (err as Error).message;
      return false;
    }
  }

  onChange(listener: (version: number) => void): void {
    this.#listeners.push(listener);
  }

  /** Epoch and version only (the check made every second). */
  async head(): Promise<{ epoch: string; version: number }> {
    this.#need();
    const [version, epoch] = await this.#client.hmget(this.#key, "version", "epoch");
    return { epoch: epoch ?? "", version: Number(version ?? 0) };
  }

  async load(): Promise<SharedState> {
    this.#need();
    const [version, overrides, epoch] = await this.#client.hmget(this.#key, "version", "overrides", "epoch");
    return { epoch: epoch ?? "", version: Number(version ?? 0), overrides: JSON.parse(overrides ?? "[]") as [string, OverrideEntry][] };
  }

  async commit(overrides: [string, OverrideEntry][], expected: { epoch: string; version: number }): Promise<CommitResult> {
    this.#need();
    const r = (await this.#client.eval(COMMIT, 2, this.#key, this.#channel, expected.epoch, String(expected.version), JSON.stringify(overrides), randomUUID())) as [number, number, string, string?];
    if (r[0] === 1) return { ok: true, version: r[1], epoch: r[2] };
    return { ok: false, current: { version: r[1], epoch: r[2], overrides: JSON.parse(r[3] ?? "[]") as [string, OverrideEntry][] } };
  }

  /** Every replica's heartbeat (its own included), each second, with its window records. */
  onHeartbeat(listener: (beat: Heartbeat) => void): void {
    this.#heartbeatListeners.push(listener);
  }

  async publishHeartbeat(beat: Heartbeat): Promise<void> {
    this.#need();
    await this.#client.publish(this.#windowsChannel, JSON.stringify(beat));
  }

  /** The fleet's audit trail: newest first, the last `keep` entries. */
  async pushAudit(entry: unknown, keep: number): Promise<void> {
    this.#need();
    await this.#client.multi().lpush(this.#auditKey, JSON.stringify(entry)).ltrim(this.#auditKey, 0, keep - 1).exec();
  }

  async loadAudit(n: number): Promise<unknown[]> {
    this.#need();
    return (await this.#client.lrange(this.#auditKey, 0, n - 1)).map((e) => JSON.parse(e) as unknown);
  }

  /** The guard's state per feature (breaches, schedule hold, pause), written by the leader only. */
  async saveGuard(states: [string, GuardState][]): Promise<void> {
    this.#need();
    await this.#client.hset(this.#key, "guard", JSON.stringify(states));
  }

  async loadGuard(): Promise<[string, GuardState][]> {
    this.#need();
    return JSON.parse((await this.#client.hget(this.#key, "guard")) ?? "[]") as [string, GuardState][];
  }

  /** Take or renew the leader lease for `ttlMs`; true while `me` holds it. */
  async holdLease(me: string, ttlMs: number): Promise<boolean> {
    this.#need();
    return (await this.#client.eval(LEASE, 1, this.#leaderKey, me, String(ttlMs))) === 1;
  }

  async leader(): Promise<string | null> {
    this.#need();
    return this.#client.get(this.#leaderKey);
  }

  /** Give the lease up at once (a replica shutting down), so another takes over without waiting. */
  async releaseLease(me: string): Promise<void> {
    if (!this.connected) return;
    await this.#client.eval(RELEASE, 1, this.#leaderKey, me);
  }

  #need(): void {
    if (!this.connected) throw new StoreUnavailable(`the control store ${this.url} is unreachable${this.lastError ? ` (${this.lastError})` : ""}`);
  }

  async close(): Promise<void> {
    this.#client.disconnect();
    this.#sub.disconnect();
  }
}

/** The URL without its password, for logs and status. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
