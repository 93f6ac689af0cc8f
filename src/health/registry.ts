// Backend health as runtime state: one BackendHealth per backend origin (so a reload that keeps a
// backend's address keeps its health), fed by the exchanges' outcomes and by active checks, read by
// the routing step (is the chosen backend ejected?) and by failover (is the other one available?).
// Also the failover budget and the counters behind the metrics. Transitions are logged once.
import { connectionKey, connectOptions } from "../forward/pools.ts";
import { Client } from "../forward/undici.ts";
import type { BackendTarget, Snapshot } from "../config/compile.ts";
import type { ErrorCode } from "../errors/codes.ts";
import type { Logger } from "../observe/logger.ts";
import type { Metrics } from "../observe/metrics.ts";
import { RetryBudget } from "./budget.ts";
import { BackendHealth, type ActiveCheck, type FailureKind, type HealthSnapshot } from "./state.ts";

/** Upstream error codes that count against a backend's health, by kind. */
const FAILURE_OF: Partial<Record<ErrorCode, FailureKind>> = {
  SY_UPSTREAM_CONNECT_REFUSED: "connect",
  SY_UPSTREAM_UNREACHABLE: "connect",
  SY_UPSTREAM_TLS: "connect",
  SY_UPSTREAM_CONNECT_TIMEOUT: "connect",
  SY_UPSTREAM_RESET: "reset",
  SY_UPSTREAM_HEADERS_TIMEOUT: "timeout",
  SY_UPSTREAM_BODY_TIMEOUT: "timeout",
  SY_UPSTREAM_BAD_RESPONSE: "bad_response",
};

export type FailoverReason = "ejected" | "connect" | "reset" | "timeout" | "bad_response" | "pool_queue";
export const FAILOVER_REASONS: readonly FailoverReason[] = ["ejected", "connect", "reset", "timeout", "bad_response", "pool_queue"];

/** The failover reason for an upstream error code, or null when that error never fails over. */
export function failoverReason(code: ErrorCode): FailoverReason | null {
  if (code === "SY_POOL_QUEUE_TIMEOUT") return "pool_queue";
  const kind = FAILURE_OF[code];
  return kind === undefined || kind === "5xx" ? null : kind;
}

/** Errors that happen before a byte of the request was sent: any method may be sent elsewhere. */
export function failedBeforeSending(code: ErrorCode): boolean {
  return code === "SY_UPSTREAM_CONNECT_REFUSED" || code === "SY_UPSTREAM_UNREACHABLE" || code === "SY_UPSTREAM_CONNECT_TIMEOUT" || code === "SY_UPSTREAM_TLS" || code === "SY_POOL_QUEUE_TIMEOUT";
}

interface Entry {
  readonly origin: string;
  name: string;
  readonly health: BackendHealth;
  prober: Prober | null;
}

export class HealthRegistry {
  readonly #entries = new Map<string, Entry>();
  #byTarget = new WeakMap<BackendTarget, Entry>();
  readonly budget = new RetryBudget(20, 3);
  /** Failovers by "feature\u0000from\u0000to\u0000reason". */
  readonly failovers = new Map<string, number>();
  readonly #logger: Logger;
  readonly #now: () => number;
  /**
   * false in a worker: active checks run once, in the primary, which hands every result to the
   * workers (applyCheck), so a backend is probed once per interval however many workers there are.
   */
  probeLocally = true;
  /** Called with every active check result of this process's probers (the primary relays them). */
  onCheck: ((origin: string, ok: boolean, detail: string) => void) | null = null;

  constructor(logger: Logger, metrics: Metrics, now: () => number = Date.now) {
    this.#logger = logger;
    this.#now = now;
    metrics.collect("switchyard_backend_healthy", "gauge", "1 while the backend takes traffic (healthy or half-open), 0 while ejected or failing its active checks (with workers: 0 when any worker has it out of rotation).", () =>
      (["legacy", "new"] as const).map((backend) => ({ labels: { backend }, value: this.#named(backend)?.health.available(this.#now()) === false ? 0 : 1 })),
    );
    metrics.collect("switchyard_backend_ejections_total", "counter", "Times a backend was taken out of rotation, by reason: passive (failed exchanges in a row) or active_check.", () =>
      (["legacy", "new"] as const).flatMap((backend) => {
        const counts = this.#named(backend)?.health.ejectionCounts ?? { passive: 0, active_check: 0 };
        return [{ labels: { backend, reason: "passive" }, value: counts.passive }, { labels: { backend, reason: "active_check" }, value: counts.active_check }];
      }),
    );
    metrics.collect("switchyard_failovers_total", "counter", "Requests sent to the other backend, by feature, from, to and reason: ejected, connect, reset, timeout, bad_response, pool_queue.", () =>
      [...this.failovers].map(([key, value]) => {
        const [feature, from, to, reason] = key.split("\u0000") as [string, string, string, string];
        return { labels: { feature, from, to, reason }, value };
      }),
    );
    metrics.collect("switchyard_failover_budget_exhausted_total", "counter", "Failovers refused because the retry budget (failover.budget_percent) was spent.", () => [{ labels: {}, value: this.budget.exhausted }]);
  }

  #named(name: string): Entry | undefined {
    for (const e of this.#entries.values()) if (e.name === name) return e;
    return undefined;
  }

  /** Take a new snapshot's backends: keep the health of unchanged origins, start or stop active checks. */
  configure(snap: Snapshot): void {
    const f = snap.config.failover;
    this.budget.percent = f.budget_percent;
    this.budget.minPerSecond = f.min_per_second;
    const keep = new Set<string>();
    for (const target of Object.values(snap.backends)) {
      keep.add(target.origin);
      const h = target.health;
      let e = this.#entries.get(target.origin);
      if (e === undefined) {
        e = { origin: target.origin, name: target.name, health: new BackendHealth(h.passive, h.active, this.#now()), prober: null };
        this.#entries.set(target.origin, e);
      }
      e.name = target.name;
      e.health.passive = h.passive;
      e.health.active = h.active;
      const probe = target.activeCheck;
      if (e.prober !== null && (probe === null || !e.prober.sameAs(probe, target))) {
        e.prober.stop();
        e.prober = null;
      }
      if (e.prober === null && probe !== null && this.probeLocally) {
        const entry = e;
        e.prober = new Prober(target, probe, (ok, detail) => {
          this.#record(entry, () => entry.health.checked(ok, detail, this.#now()));
          this.onCheck?.(entry.origin, ok, detail);
        });
      }
    }
    for (const [origin, e] of this.#entries) {
      if (keep.has(origin)) continue;
      e.prober?.stop();
      this.#entries.delete(origin);
    }
    this.#byTarget = new WeakMap();
  }

  #entry(target: BackendTarget): Entry {
    let e = this.#byTarget.get(target);
    if (e === undefined) {
      e = this.#entries.get(target.origin);
      if (e === undefined) {
        // A backend of a snapshot configure() has not seen (requests in flight across a reload).
        e = { origin: target.origin, name: target.name, health: new BackendHealth(target.health.passive, target.health.active, this.#now()), prober: null };
        this.#entries.set(target.origin, e);
      }
      this.#byTarget.set(target, e);
    }
    return e;
  }

  /** An active check result from the primary's prober (workers). */
  applyCheck(origin: string, ok: boolean, detail: string): void {
    const entry = this.#entries.get(origin);
    if (entry === undefined || entry.health.active === null) return;
    this.#record(entry, () => entry.health.checked(ok, detail, this.#now()));
  }

  available(target: BackendTarget): boolean {
    return this.#entry(target).health.available(this.#now());
  }

  /** The end of an exchange with this backend: an error code (upstream failures count), or its status. */
  observe(target: BackendTarget, error: ErrorCode | undefined, status: number): void {
    const e = this.#entry(target);
    const kind = error !== undefined ? FAILURE_OF[error] : status === 502 || status === 503 || status === 504 ? "5xx" : undefined;
    if (error !== undefined && kind === undefined) return; // the client's doing (gone, refused): says nothing of the backend
    const now = this.#now();
    const before = e.health.state;
    if (kind === undefined) e.health.succeeded(now);
    else e.health.failed(kind, now);
    if (e.health.state !== before) this.#logTransition(e, before);
  }

  countFailover(feature: string | null, from: string, to: string, reason: FailoverReason): void {
    const key = `${feature ?? "none"}\u0000${from}\u0000${to}\u0000${reason}`;
    this.failovers.set(key, (this.failovers.get(key) ?? 0) + 1);
  }

  /** Run a change of health and log a transition once. */
  #record(e: Entry, change: () => unknown): void {
    const before = e.health.state;
    change();
    if (e.health.state !== before) this.#logTransition(e, before);
  }

  #logTransition(e: Entry, before: string): void {
    const after = e.health.state;
    const line = { backend: e.name, origin: e.origin, from: before, to: after, reason: e.health.reason };
    if (after === "healthy") this.#logger.info(line, `backend ${e.name} is healthy again`);
    else if (after === "half_open") this.#logger.info(line, `backend ${e.name} is half-open: ${e.health.reason}`);
    else this.#logger.warn(line, `backend ${e.name} taken out of rotation: ${e.health.reason}`);
  }

  status(target: BackendTarget): HealthSnapshot {
    return this.#entry(target).health.snapshot(this.#now());
  }

  close(): void {
    for (const e of this.#entries.values()) e.prober?.stop();
  }
}

/** Active checks of one backend: GET path every interval (plus jitter) on a connection of its own. */
class Prober {
  readonly #check: ActiveCheck;
  readonly #client: Client;
  readonly #report: (ok: boolean, detail: string) => void;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  /** How it connects (TLS material, HTTP/2): a reload that changes it makes a new prober. */
  readonly #via: string;

  constructor(target: BackendTarget, check: ActiveCheck, report: (ok: boolean, detail: string) => void) {
    this.#check = check;
    this.#report = report;
    this.#via = connectionKey(target);
    this.#client = new Client(target.origin, { headersTimeout: check.timeoutMs, bodyTimeout: check.timeoutMs, pipelining: 1, ...connectOptions(target, check.timeoutMs) });
    this.#schedule(0);
  }

  sameAs(other: ActiveCheck, target: BackendTarget): boolean {
    const c = this.#check;
    return this.#via === connectionKey(target) && c.path === other.path && c.intervalMs === other.intervalMs && c.timeoutMs === other.timeoutMs && c.jitterMs === other.jitterMs && c.expected.join() === other.expected.join();
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#run(), delayMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const c = this.#check;
    let ok = false;
    let detail: string;
    const timeout = AbortSignal.timeout(c.timeoutMs);
    try {
      const res = await this.#client.request({ path: c.path, method: "GET", headers: { "user-agent": "switchyard-health-check" }, signal: timeout });
      await res.body.dump();
      ok = c.expected.some((e) => (typeof e === "number" ? e === res.statusCode : Math.floor(res.statusCode / 100) === Number(e[0])));
      detail = `GET ${c.path} answered ${res.statusCode}`;
    } catch (err) {
      detail = `GET ${c.path} failed: ${timeout.aborted ? `no answer within ${c.timeoutMs} ms` : (err as Error).message}`;
    }
    if (this.#stopped) return;
    this.#report(ok, detail);
    this.#schedule(c.intervalMs + Math.random() * c.jitterMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    void this.#client.destroy();
  }
}
