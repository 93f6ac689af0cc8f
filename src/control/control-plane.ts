// The control plane of a running Switchyard: the config file (watched, reloaded on change or SIGHUP),
// the runtime overrides (admin API, persisted next to the file), and the one place that lays the
// second over the first and hands the result to the proxy. Changes are serialised; a bad file or a
// bad override never takes effect.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Switchyard, type StartOptions } from "../app.ts";
import { compileSnapshot } from "../config/compile.ts";
import { parseConfigText } from "../config/load.ts";
import { effectiveAdminToken, type Config } from "../config/schema.ts";
import type { GuardState } from "../guard/evaluate.ts";
import { watchConfigDir, type ConfigWatcher } from "../config/watch.ts";
import { compileRoutingTable } from "../routing/table.ts";
import { rolloutDiff } from "../routing/diff.ts";
import { describeChanges, needsRestart } from "./changes.ts";
import { applyOverrides, fileValue, overrideProblem, type OverrideEntry, type OverrideValue } from "./overrides.ts";
import { readGuardStates, readState, runtimeFileFor, stateFileFor, writeState } from "./state-file.ts";
import { Guard } from "../guard/guard.ts";
import type { ClusterPrimary } from "../cluster/primary.ts";
import { RedisControlStore, StoreUnavailable, type Heartbeat, type SharedState } from "./store.ts";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Metrics } from "../observe/metrics.ts";
import { WindowStats } from "../observe/window.ts";

export interface LoadRecord {
  ok: boolean;
  at: string;
  trigger: string;
  /** Hash of the effective config after this load (unchanged when the load failed). */
  hash: string;
  errors: string[];
  changes: string[];
  restartNeeded: string[];
}

/** A replica heard from, as /status and `switchyard status` list it. */
export interface ReplicaView {
  id: string;
  listeners: string[];
  admin: string | null;
  /** Hash of its config file: replicas of one fleet should all run the same. */
  config_hash: string;
  /** The store version its overrides come from. */
  version: number;
  leader: boolean;
  last_seen_ms_ago: number;
}

export interface AuditEntry {
  at: string;
  who: string;
  action: string;
  before?: unknown;
  after?: unknown;
  changes: string[];
  ok: boolean;
  /** The replica that made the change (with a shared control store). */
  replica?: string;
}

const AUDIT_KEEP = 200;
/** The leader lease: renewed each second, taken over by another replica within this after a leader dies. */
const LEASE_MS = 3000;

export interface OpenOptions extends StartOptions {
  /** Where overrides persist; default next to the config file. */
  stateFile?: string;
  /** Debounce for file events, ms. */
  debounceMs?: number;
  /** Watch the config directory (default true). */
  watch?: boolean;
  env?: Record<string, string | undefined>;
}

const MODES = ["disabled", "pilot", "mixed", "full"] as const;

export class ControlPlane {
  readonly app: Switchyard;
  readonly file: string;
  readonly stateFile: string;
  readonly startedAt = Date.now();
  lastLoad: LoadRecord;
  reloads = { ok: 0, failed: 0 };
  /** The most recent changes (admin calls and file reloads), newest last, for the admin page. */
  readonly audit: AuditEntry[] = [];
  #fileConfig: Config;
  #fileHash: string;
  /** Hash of the file's text the last time it failed to load: the same bad save is reported once. */
  #failedHash: string | null = null;
  #overrides: Map<string, OverrideEntry>;
  #queue: Promise<unknown> = Promise.resolve();
  #watcher: ConfigWatcher | null = null;
  #env: Record<string, string | undefined>;

  readonly guard: Guard;
  /** The workers serving traffic when `workers` > 1 (this process is then the control plane only). */
  cluster: ClusterPrimary | null = null;
  /** The fleet's shared overrides (control.store: redis://...), null with the file store. */
  store: RedisControlStore | null = null;
  /** The store's epoch and version the overrides in effect come from (version 0: none yet). */
  storeVersion = 0;
  storeEpoch = "";
  /** This replica in the fleet (logs, the leader lease). */
  readonly replicaId = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  /**
   * With a shared store: every replica's request windows merged (each publishes its records each
   * second), what the guard judges; null with the file store (the guard reads this process's own).
   */
  fleetMetrics: Metrics | null = null;
  /** Likewise every replica's compared shadow pairs per feature (the guard's shadow rule). */
  fleetComparisons: Map<string, WindowStats> | null = null;
  /** The admin API's URL once it listens (announced to the fleet). */
  adminUrl: string | null = null;
  /** Whether this replica holds the leader lease: the one that runs the guard and the schedules. */
  leader = false;
  readonly #replicasSeen = new Map<string, { at: number; beat: Heartbeat }>();
  #reconcileTimer: NodeJS.Timeout | null = null;
  /** Whether the store was reachable at the last tick (a change either way is logged once). */
  #storeWasUp = true;

  private constructor(app: Switchyard, file: string, stateFile: string, fileConfig: Config, fileHash: string, overrides: Map<string, OverrideEntry>, env: Record<string, string | undefined>, guardStates: Map<string, GuardState>) {
    this.app = app;
    this.file = file;
    this.stateFile = stateFile;
    this.#fileConfig = fileConfig;
    this.#fileHash = fileHash;
    this.#overrides = overrides;
    this.#env = env;
    this.lastLoad = { ok: true, at: new Date().toISOString(), trigger: "start", hash: app.snapshot.hash, errors: [], changes: [], restartNeeded: [] };
    this.#metrics();
    this.guard = new Guard(this, guardStates, {
      persist: () => {
        try {
          writeState(this.stateFile, this.#overrides, this.guard.states);
        } catch (err) {
          this.app.logger.error({ err, state_file: this.stateFile }, "cannot persist the guard state");
        }
        this.#shareGuardState();
      },
    });
  }

  /** Reload results and the effective rollout as gauges, read at scrape time. */
  #metrics(): void {
    const m = this.app.metrics;
    const cfg = () => this.app.snapshot.config;
    m.collect("switchyard_config_reloads_total", "counter", "Config reloads (file watch, SIGHUP, API) and admin changes, by result.", () => [
      { labels: { result: "ok" }, value: this.reloads.ok },
      { labels: { result: "failed" }, value: this.reloads.failed },
    ]);
    m.collect("switchyard_config_last_reload_successful", "gauge", "1 when the last reload applied, 0 when it failed (the previous config keeps serving).", () => [{ labels: {}, value: this.lastLoad.ok ? 1 : 0 }]);
    m.collect("switchyard_config_info", "gauge", "Always 1; the hash label identifies the effective config (file plus overrides).", () => [{ labels: { hash: this.app.snapshot.hash }, value: 1 }]);
    m.collect("switchyard_control_store_up", "gauge", "1 while the shared control store (control.store: redis://...) is reachable, 0 while not (changes are refused, the last state keeps serving); absent with the file store.", () =>
      this.store === null ? [] : [{ labels: {}, value: this.store.connected ? 1 : 0 }],
    );
    m.collect("switchyard_runtime_overrides", "gauge", "Runtime overrides in effect (admin API changes over the file).", () => [{ labels: {}, value: this.#overrides.size }]);
    m.collect("switchyard_routing_mode", "gauge", "1 for the current routing mode.", () => MODES.map((mode) => ({ labels: { mode }, value: cfg().routing.mode === mode ? 1 : 0 })));
    m.collect("switchyard_kill_switch", "gauge", "1 while the kill switch sends everything to legacy.", () => [{ labels: {}, value: cfg().routing.kill_switch ? 1 : 0 }]);
    m.collect("switchyard_feature_enabled", "gauge", "1 when the feature is enabled.", () => Object.entries(cfg().features).map(([feature, f]) => ({ labels: { feature }, value: f.enabled ? 1 : 0 })));
    m.collect("switchyard_feature_new_percent", "gauge", "Share of the feature's identified users routed to new, percent (fixed target new = 100, legacy = 0).", () =>
      Object.entries(cfg().features).map(([feature, f]) => ({ labels: { feature }, value: typeof f.target === "string" ? (f.target === "new" ? 100 : 0) : f.target.percent })),
    );
  }

  /** Load the file and the persisted overrides, start the proxy on their combination, watch the file. */
  static async open(file: string, opts: OpenOptions = {}): Promise<ControlPlane> {
    const env = opts.env ?? process.env;
    const text = readFileSync(file, "utf8");
    const result = parseConfigText(text, file, env);
    if (!result.ok) throw Object.assign(new Error(result.errors.map((e) => e.format()).join("\n")), { configErrors: result.errors });
    const configured = result.config.admin.state_file;
    const stateFile = opts.stateFile ?? (configured ? resolve(dirname(file), configured) : stateFileFor(file));
    const overrides = readState(stateFile);
    // Overrides that no longer fit the file (a feature was removed) are dropped with a warning, not fatal.
    const dropped: string[] = [];
    for (const [key, entry] of overrides) {
      if (overrideProblem(result.config, key, entry.value) !== null) {
        overrides.delete(key);
        dropped.push(key);
      }
    }
    const shadowStorePath = opts.shadowStorePath ?? shadowStoreFor(file, result.config);
    const shared = result.config.control.store !== "file";
    const app = await Switchyard.start(applyOverrides(result.config, overrides), { ...opts, shadowStorePath, trackDeltas: opts.trackDeltas || shared });
    const cp = new ControlPlane(app, file, stateFile, result.config, sha(text), overrides, env, readGuardStates(stateFile));
    if (overrides.size > 0) app.logger.info({ overrides: Object.fromEntries(overrides), state_file: stateFile }, "runtime overrides loaded");
    if (dropped.length > 0) app.logger.warn({ dropped, state_file: stateFile }, "runtime overrides dropped: they do not fit the config file any more");
    if (opts.watch !== false) cp.#watcher = watchConfigDir(file, opts.debounceMs ?? 100, () => void cp.reload("watch"));
    if (!configured && opts.stateFile === undefined) app.logger.info({ state_file: stateFile }, "runtime overrides persist here (set admin.state_file or $SWITCHYARD_STATE_DIR to move them)");
    const storeUrl = result.config.control.store;
    if (storeUrl !== "file") await cp.#openStore(storeUrl, result.config.control.prefix);
    cp.guard.start();
    return cp;
  }

  get fileConfig(): Config {
    return this.#fileConfig;
  }

  get overrides(): ReadonlyMap<string, OverrideEntry> {
    return this.#overrides;
  }

  /** The admin API's bearer token: admin.token, else $SWITCHYARD_ADMIN_TOKEN (null: none, loopback only). */
  get adminToken(): string | null {
    return effectiveAdminToken(this.#fileConfig.admin, this.#env) ?? null;
  }

  /** Re-read the file; apply it when valid, keep serving the old snapshot when not. */
  reload(trigger: string): Promise<LoadRecord> {
    return this.#serial(() => {
      let text: string;
      try {
        text = readFileSync(this.file, "utf8");
      } catch (err) {
        return this.#failed(trigger, [`${this.file}: cannot read config: ${(err as Error).message}`]);
      }
      const hash = sha(text);
      if (trigger === "watch") {
        // An event without a change (a store written next to the file, a touch): nothing to do. A
        // bad save stays one failed load, however many events follow it.
        if (hash === this.#fileHash && this.lastLoad.ok) return this.lastLoad;
        if (hash === this.#failedHash) return this.lastLoad;
      }
      try {
        const result = parseConfigText(text, this.file, this.#env);
        if (!result.ok) {
          this.#failedHash = hash;
          return this.#failed(trigger, result.errors.map((e) => e.format()));
        }
        const before = this.app.snapshot.config;
        const restart = needsRestart(this.#fileConfig, result.config);
        // Compiled before anything is swapped: a file that validates but cannot be compiled fails whole.
        compileSnapshot(applyOverrides(result.config, this.#overrides));
        this.#fileConfig = result.config;
        this.#fileHash = hash;
        this.#failedHash = null;
        const shadowed = [...this.#overrides.keys()].filter((k) => fileValue(result.config, k) !== null && fileValue(before, k) !== fileValue(result.config, k));
        return this.#apply(trigger, before, restart, shadowed);
      } catch (err) {
        this.#failedHash = hash;
        return this.#failed(trigger, [`${this.file}:1:1: cannot apply this file: ${(err as Error).message}`]);
      }
    });
  }

  /** Set runtime overrides (validated all together, persisted, then applied); resolves to the load record. */
  set(changes: { key: string; value: OverrideValue }[], who: string): Promise<{ record: LoadRecord; before: Record<string, OverrideValue | null> }> {
    return this.#serial(() => {
      for (const { key, value } of changes) {
        const problem = overrideProblem(this.#fileConfig, key, value);
        if (problem !== null) throw new OverrideError(problem);
      }
      const next = new Map(this.#overrides);
      const at = new Date().toISOString();
      const before: Record<string, OverrideValue | null> = {};
      for (const { key, value } of changes) {
        before[key] = this.#overrides.get(key)?.value ?? fileValue(this.#fileConfig, key);
        next.set(key, { value, by: who, at });
      }
      return this.#commit(next, `admin (${who})`, before);
    });
  }

  /** Clear runtime overrides (the file's values apply again). Unknown keys are an error. */
  clear(keys: string[], who: string): Promise<{ record: LoadRecord; before: Record<string, OverrideValue | null> }> {
    return this.#serial(() => {
      const missing = keys.filter((k) => !this.#overrides.has(k));
      if (missing.length > 0) throw new OverrideError(`no runtime override ${missing.join(", ")} to clear`, 404);
      const next = new Map(this.#overrides);
      const before: Record<string, OverrideValue | null> = {};
      for (const k of keys) {
        before[k] = next.get(k)!.value;
        next.delete(k);
      }
      return this.#commit(next, `admin (${who})`, before);
    });
  }

  /** Remember a change for the admin page (the log has them all). */
  remember(entry: Omit<AuditEntry, "at">): void {
    const full: AuditEntry = { at: new Date().toISOString(), ...entry, ...(this.store !== null && { replica: this.replicaId }) };
    this.audit.push(full);
    if (this.audit.length > AUDIT_KEEP) this.audit.splice(0, this.audit.length - AUDIT_KEEP);
    // The fleet's trail, in the store: one entry per change where it was made (not its echoes on the others).
    const store = this.store;
    if (store !== null && store.connected && !entry.who.startsWith("control store")) {
      void store.pushAudit(full, AUDIT_KEEP).catch((err: unknown) => this.app.logger.warn({ err }, "cannot add to the fleet's audit trail"));
    }
  }

  /** The newest `n` changes, newest first: the fleet's with a reachable shared store, else this process's. */
  async auditEntries(n: number): Promise<AuditEntry[]> {
    const store = this.store;
    if (store !== null && store.connected) {
      try {
        return (await store.loadAudit(n)) as AuditEntry[];
      } catch {
        // fall back to what this replica saw
      }
    }
    return this.audit.slice(-n).reverse();
  }

  /**
   * Join the fleet's store: take its overrides (or seed an empty store with ours), follow its changes
   * (announcements, and a version check each second that catches up on a missed one).
   */
  async #openStore(url: string, prefix: string): Promise<void> {
    const store = await RedisControlStore.create(url, prefix);
    this.store = store;
    const log = this.app.logger;
    const up = await Promise.race([store.connect(), new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref())]);
    this.#storeWasUp = up;
    if (up) await this.#serial(() => this.#syncFromStore("start")).catch((err: unknown) => log.warn({ err, store: store.url }, "control store: first read failed; retrying each second"));
    else log.warn({ store: store.url, error: store.lastError, state_file: this.stateFile }, `control store ${store.url} unreachable at start: serving the overrides persisted locally; admin changes are refused until it is back`);
    store.onChange(() => void this.#serial(() => this.#syncFromStore("announcement")).catch(() => {}));
    // Fleet-wide windows: every replica's records, its own included (they come back on the channel).
    const fleet = new Metrics({ processMetrics: false });
    this.fleetMetrics = fleet;
    const comparisons = new Map<string, WindowStats>();
    this.fleetComparisons = comparisons;
    store.onHeartbeat((beat) => {
      this.#replicasSeen.set(beat.from, { at: Date.now(), beat });
      fleet.mergeWindowDeltas(beat.deltas);
      for (const f of beat.comparisons ?? []) {
        let w = comparisons.get(f.feature);
        if (w === undefined) comparisons.set(f.feature, (w = new WindowStats()));
        for (const d of f.deltas) w.merge(d);
      }
    });
    this.#reconcileTimer = setInterval(() => {
      void this.#serial(() => this.#syncFromStore("reconcile")).catch(() => {});
      void this.#fleetTick();
    }, 1000);
    this.#reconcileTimer.unref();
  }

  /** Each second: hand this replica's window records to the fleet, and hold (or try for) the lease. */
  async #fleetTick(): Promise<void> {
    const store = this.store;
    if (store === null) return;
    const up = store.connected;
    if (up !== this.#storeWasUp) {
      this.#storeWasUp = up;
      if (up) this.app.logger.info({ store: store.url }, `control store ${store.url} reachable again: following the fleet's state, admin changes accepted`);
      else this.app.logger.warn({ store: store.url, error: store.lastError, version: this.storeVersion }, `control store ${store.url} unreachable (${store.lastError ?? "connection lost"}): serving the last state (version ${this.storeVersion}); admin changes are refused until it is back`);
    }
    const deltas = this.app.metrics.drainWindowDeltas();
    const comparisons = this.app.shadow.drainComparisonDeltas();
    try {
      const was = this.leader;
      const leads = await store.holdLease(this.replicaId, LEASE_MS);
      if (leads && !was) {
        // Take over where the last leader left off: breach counts, schedule holds, pauses, approvals.
        const states = await store.loadGuard();
        this.guard.states.clear();
        for (const [feature, state] of states) this.guard.states.set(feature, state);
      }
      this.leader = leads;
      await store.publishHeartbeat({ from: this.replicaId, listeners: this.app.urls, admin: this.adminUrl, hash: this.#fileHash, version: this.storeVersion, leader: this.leader, deltas, comparisons });
      if (this.leader !== was) this.app.logger.info({ replica: this.replicaId, store: store.url }, this.leader ? "this replica leads the fleet: it runs the guard and the schedules" : "this replica no longer leads the fleet");
    } catch {
      // The store is unreachable: the records are lost for the fleet view, and nobody can be sure of the lease.
      if (this.leader) this.app.logger.warn({ replica: this.replicaId }, "control store unreachable: this replica stops leading (the guard holds still until it is back)");
      this.leader = false;
    }
  }

  /** The leader keeps the guard's state in the store, so the next leader goes on from it. */
  #shareGuardState(): void {
    const store = this.store;
    if (store === null || !this.leader || !store.connected) return;
    void store.saveGuard([...this.guard.states]).catch((err: unknown) => this.app.logger.warn({ err }, "cannot share the guard state with the fleet"));
  }

  /** Whether the guard and the schedules run here: always with the file store, on the leader with a shared one. */
  get actsForFleet(): boolean {
    return this.store === null || this.leader;
  }

  /** Replicas heard from in the last 5 s (each reports every second), for /status. */
  get replicas(): ReplicaView[] {
    const now = Date.now();
    return [...this.#replicasSeen]
      .filter(([, r]) => now - r.at < 5000)
      .map(([id, { at, beat }]) => ({ id, listeners: beat.listeners ?? [], admin: beat.admin ?? null, config_hash: beat.hash, version: beat.version ?? 0, leader: beat.leader, last_seen_ms_ago: now - at }));
  }

  /** Take the store's overrides when its epoch or version moved on; seed an empty store with ours. */
  async #syncFromStore(trigger: string): Promise<void> {
    const store = this.store;
    if (store === null || !store.connected) return;
    const head = await store.head();
    if (head.version === 0) {
      await this.#seed(store);
      return;
    }
    if (head.version === this.storeVersion && head.epoch === this.storeEpoch) return;
    this.#adopt(await store.load(), trigger);
  }

  /**
   * An empty store (new, or a Redis that restarted without persistence) gets this replica's overrides:
   * they are the fleet's last state, which every replica kept serving. The first replica to notice
   * seeds it; the others adopt that.
   */
  async #seed(store: RedisControlStore): Promise<boolean> {
    const r = await store.commit([...this.#overrides], { epoch: "", version: 0 });
    if (!r.ok) {
      this.#adopt(r.current, "seeded by another replica");
      return false;
    }
    this.storeVersion = r.version;
    this.storeEpoch = r.epoch;
    this.app.logger.warn({ store: store.url, epoch: r.epoch, overrides: this.#overrides.size }, "control store was empty: seeded with this replica's overrides (the fleet's last state)");
    return true;
  }

  /** Apply the fleet's state as ours (persisted locally too, for a start while the store is down). */
  #adopt(state: SharedState, trigger: string): void {
    const previous = this.app.snapshot.config;
    this.#overrides = new Map(state.overrides);
    this.storeVersion = state.version;
    this.storeEpoch = state.epoch;
    try {
      writeState(this.stateFile, this.#overrides, this.guard.states);
    } catch (err) {
      this.app.logger.warn({ err, state_file: this.stateFile }, "cannot cache the fleet's overrides locally");
    }
    this.#apply(`control store (${trigger}, version ${state.version})`, previous, [], []);
  }

  close(): void {
    if (this.#reconcileTimer !== null) clearInterval(this.#reconcileTimer);
    const store = this.store;
    if (store !== null) void store.releaseLease(this.replicaId).catch(() => {}).finally(() => store.close());
    void this.guard.stop();
    this.#watcher?.close();
    this.#watcher = null;
  }

  async #commit(next: Map<string, OverrideEntry>, trigger: string, before: Record<string, OverrideValue | null>) {
    const effective = applyOverrides(this.#fileConfig, next);
    // Compile before persisting: an override that yields an unusable table is refused whole.
    compileRoutingTable(effective.routing, effective.features);
    const store = this.store;
    if (store !== null) {
      // The fleet's store first: a change that only this replica took would split the fleet.
      let r;
      try {
        // A store that lost its state (restarted empty) is seeded with ours before the change goes on top.
        const seeded = (await store.head()).version !== 0 || (await this.#seed(store));
        r = seeded ? await store.commit([...next], { epoch: this.storeEpoch, version: this.storeVersion }) : { ok: false as const, current: { epoch: this.storeEpoch, version: this.storeVersion, overrides: [...this.#overrides] } };
      } catch (err) {
        const why = err instanceof StoreUnavailable ? err.message : `the control store ${store.url} failed: ${(err as Error).message}`;
        throw new OverrideError(`${why}; nothing changed on any replica (every replica keeps serving its current state). Retry when it is back`, 503);
      }
      if (!r.ok) {
        this.#adopt(r.current, "conflict");
        throw new OverrideError(`another change reached the control store first (now version ${r.current.version}); nothing of yours was applied. The current overrides: ${JSON.stringify(Object.fromEntries(r.current.overrides.map(([k, e]) => [k, e.value])))}; retry on top of them`, 409);
      }
      this.storeVersion = r.version;
      this.storeEpoch = r.epoch;
      this.#shareGuardState();
    }
    try {
      writeState(this.stateFile, next, this.guard.states);
    } catch (err) {
      throw new OverrideError(`cannot persist the change to ${this.stateFile} (${(err as Error).message}); nothing changed. Point admin.state_file at a writable path`, 503);
    }
    const previous = this.app.snapshot.config;
    this.#overrides = next;
    const record = this.#apply(trigger, previous, [], []);
    return { record, before };
  }

  #apply(trigger: string, before: Config, restartNeeded: string[], shadowed: string[]): LoadRecord {
    const effective = applyOverrides(this.#fileConfig, this.#overrides);
    const changes = describeChanges(before, effective);
    const warnings = unexpectedMoves(before, effective);
    const { hash, tunnels } = this.app.applyConfig(effective, restartNeeded.length > 0 ? before : undefined);
    this.reloads.ok++;
    this.lastLoad = { ok: true, at: new Date().toISOString(), trigger, hash, errors: [], changes, restartNeeded };
    if (trigger.startsWith("control store")) this.remember({ who: trigger, action: "fleet change applied", changes, ok: true });
    else if (!trigger.startsWith("admin")) this.remember({ who: trigger === "api" ? "reload via API" : `config file (${trigger})`, action: "reload", changes, ok: true });
    const log = this.app.logger;
    log.info({ trigger, config_hash: hash, changes, tunnels_moved: tunnels }, changes.length > 0 ? `config applied: ${changes.join("; ")}` : "config applied: no routing change");
    for (const w of warnings) log.warn({ trigger, config_hash: hash }, `ROLLOUT WARNING ${w}`);
    if (restartNeeded.length > 0) log.warn({ trigger, settings: restartNeeded }, `config changes need a restart to take effect: ${restartNeeded.join(", ")}`);
    if (shadowed.length > 0) log.warn({ trigger, keys: shadowed }, `file changes shadowed by runtime overrides (clear them with DELETE /overrides/KEY): ${shadowed.join(", ")}`);
    return this.lastLoad;
  }

  #failed(trigger: string, errors: string[]): LoadRecord {
    this.reloads.failed++;
    this.lastLoad = { ok: false, at: new Date().toISOString(), trigger, hash: this.app.snapshot.hash, errors, changes: [], restartNeeded: [] };
    this.remember({ who: `config file (${trigger})`, action: "reload failed", changes: errors, ok: false });
    this.app.logger.error({ trigger, errors, config_hash: this.app.snapshot.hash }, `config reload failed, still serving ${this.app.snapshot.hash}: ${errors.length} error(s)`);
    return this.lastLoad;
  }

  #serial<T>(work: () => T | Promise<T>): Promise<T> {
    // With workers, a change is done when every worker runs it: the next request, wherever it lands, sees it.
    const run = this.#queue.then(work).then(async (result) => {
      await this.cluster?.settled();
      return result;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/** The shadow store of a config file: shadow.store.path relative to the file, or one in the state directory. */
export function shadowStoreFor(file: string, config: Config): string {
  const configured = config.shadow.store.path;
  return configured ? resolve(dirname(file), configured) : runtimeFileFor(file, ".shadow.db");
}

export class OverrideError extends Error {
  readonly status: number;
  constructor(message: string, status = 422) {
    super(message);
    this.name = "OverrideError";
    this.status = status;
  }
}

function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** rollout-diff's warnings, only when a change can reshuffle users (salt or identity sources). */
function unexpectedMoves(before: Config, after: Config): string[] {
  const reshuffles =
    before.routing.salt !== after.routing.salt ||
    JSON.stringify(before.routing.identity.sources) !== JSON.stringify(after.routing.identity.sources) ||
    Object.keys(after.features).some((n) => before.features[n] && before.features[n].salt !== after.features[n]!.salt);
  if (!reshuffles) return [];
  const rows = rolloutDiff(compileRoutingTable(before.routing, before.features), compileRoutingTable(after.routing, after.features), 10_000);
  return rows.filter((r) => r.flag !== null).map((r) => `${r.feature}: ${r.flag}`);
}
