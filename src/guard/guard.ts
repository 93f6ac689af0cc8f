// The guard at run time: every guard.interval, for each guarded feature, read the sliding-window
// numbers of both backends, run the pure evaluator, and apply its action as a runtime override (the
// same path as an admin change: validated, persisted, audit-logged), then notify the webhooks.
import type { Config } from "../config/schema.ts";
import { parseDuration } from "../config/units.ts";
import type { ControlPlane } from "../control/control-plane.ts";
import type { WindowName } from "../observe/window.ts";
import { evaluate, initialState, type Evaluation, type GuardRules, type GuardState, type Schedule, type SideNumbers } from "./evaluate.ts";
import { notify } from "./webhook.ts";
import { PrometheusSource, type FeatureNumbers } from "./prometheus.ts";

type Feature = Config["features"][string];

export interface GuardHooks {
  /** Persist the states (with the overrides) after a change worth keeping across a restart. */
  persist(): void;
}

const KINDS = ["rollback", "step_down", "advance"] as const;

export class Guard {
  readonly states: Map<string, GuardState>;
  readonly #cp: ControlPlane;
  readonly #hooks: GuardHooks;
  readonly #last = new Map<string, { at: number; evaluation: Evaluation; legacy: SideNumbers; neu: SideNumbers; window: WindowName }>();
  readonly #actions = new Map<string, Float64Array>();
  #timer: NodeJS.Timeout | null = null;
  #prometheus: { key: string; source: PrometheusSource } | null = null;
  /** Whether the guard's source of numbers answered at the last evaluation (Prometheus; always up for its own windows). */
  sourceStatus: { up: boolean; error: string | null; last_ok: string | null } = { up: true, error: null, last_ok: null };
  #running: Promise<void> | null = null;
  /** Webhook deliveries in flight (tests wait for them). */
  readonly deliveries = new Set<Promise<void>>();
  webhookBackoffMs = 1000;

  constructor(cp: ControlPlane, states: Map<string, GuardState>, hooks: GuardHooks) {
    this.#cp = cp;
    this.states = states;
    this.#hooks = hooks;
    const m = cp.app.metrics;
    m.collect("switchyard_guard_actions_total", "counter", "Guard and schedule actions by feature and kind: rollback, step_down, advance.", () =>
      [...this.#actions].flatMap(([feature, c]) => KINDS.map((kind, i) => ({ labels: { feature, kind }, value: c[i]! }))),
    );
    m.collect("switchyard_guard_breaching", "gauge", "1 while the feature's new backend breaches a guard rule at the last evaluation.", () =>
      [...this.#last].map(([feature, l]) => ({ labels: { feature }, value: l.evaluation.breaches.length > 0 ? 1 : 0 })),
    );
    m.collect("switchyard_guard_source_up", "gauge", "1 while the guard's source of numbers answers (guard.source: prometheus; always 1 on Switchyard's own windows), 0 while the guard holds still for want of it.", () =>
      cp.app.snapshot.config.guard.enabled ? [{ labels: { source: cp.app.snapshot.config.guard.source }, value: this.sourceStatus.up ? 1 : 0 }] : [],
    );
    m.collect("switchyard_schedule_paused", "gauge", "1 while the feature's rollout schedule is paused.", () => [...this.states].map(([feature, s]) => ({ labels: { feature }, value: s.paused ? 1 : 0 })));
    m.collect("switchyard_schedule_awaiting_approval", "gauge", "1 while the feature's schedule waits for an approval to advance.", () => [...this.states].map(([feature, s]) => ({ labels: { feature }, value: s.awaiting ? 1 : 0 })));
  }

  start(): void {
    const arm = () => {
      const interval = this.#cp.app.snapshot.config.guard.interval || 5000;
      this.#timer = setTimeout(() => {
        this.#running = this.tick().finally(() => {
          this.#running = null;
          if (this.#timer !== null) arm();
        });
      }, interval);
      this.#timer.unref();
    };
    arm();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One evaluation of every guarded feature. */
  async tick(now = Date.now()): Promise<void> {
    const cfg = this.#cp.app.snapshot.config;
    if (!cfg.guard.enabled) return;
    // In a fleet, one replica (the lease holder) judges the fleet's windows and acts, once.
    if (!this.#cp.actsForFleet) return;
    const guarded = Object.entries(cfg.features).filter(([, f]) => f.guard?.enabled !== false && f.enabled);
    const windowOf = (f: Feature) => (f.guard?.window ?? cfg.guard.window ?? "1m") as WindowName;
    if (cfg.guard.source !== "prometheus") this.sourceStatus = { up: true, error: null, last_ok: null };
    const fromPrometheus = cfg.guard.source === "prometheus" ? await this.#fromPrometheus(new Set(guarded.map(([, f]) => windowOf(f)))) : null;
    if (fromPrometheus === undefined) return; // Prometheus did not answer: hold still (said in the log and /status)
    for (const [name, f] of guarded) {
      const rules = rulesOf(cfg.guard, f);
      const window = windowOf(f);
      const numbers = fromPrometheus ? (fromPrometheus.get(window)!.get(name) ?? { legacy: noTraffic(), neu: noTraffic(), shadow: { pairs: 0, mismatches: 0 } }) : this.#own(name, window, now);
      const { legacy, neu, shadow } = numbers;
      const schedule = scheduleOf(f);
      const state = this.states.get(name) ?? initialState(now);
      const before = JSON.stringify({ paused: state.paused, awaiting: state.awaiting });
      const percent = typeof f.target === "string" ? (f.target === "new" ? 100 : 0) : f.target.percent;
      const evaluation = evaluate({ percent, legacy, neu, shadow, rules, schedule, state, now });
      this.states.set(name, evaluation.state);
      this.#last.set(name, { at: now, evaluation, legacy, neu, window });
      if (evaluation.action) await this.#apply(name, evaluation, legacy, neu, window, now);
      else if (JSON.stringify({ paused: evaluation.state.paused, awaiting: evaluation.state.awaiting }) !== before) this.#hooks.persist();
    }
  }

  async #apply(feature: string, e: Evaluation, legacy: SideNumbers, neu: SideNumbers, window: WindowName, now: number): Promise<void> {
    const a = e.action!;
    const who = a.kind === "advance" ? "schedule" : "guard";
    const numbers = { window, source: this.#sourceName(), legacy: figures(legacy), new: figures(neu) };
    const cp = this.#cp;
    try {
      const { record } = await cp.set([{ key: `features.${feature}.percent`, value: a.to }], who);
      const action = `${a.kind} ${feature} ${a.from}% -> ${a.to}%`;
      cp.app.logger.warn({ audit: { who, action, before: { [`features.${feature}.percent`]: a.from }, after: { [`features.${feature}.percent`]: a.to }, reason: a.reason, numbers }, config_hash: record.hash }, `${who}: ${action}: ${a.reason}`);
      cp.remember({ who, action, before: a.from, after: a.to, changes: [...record.changes, `why: ${a.reason}`], ok: true });
      let c = this.#actions.get(feature);
      if (!c) this.#actions.set(feature, (c = new Float64Array(KINDS.length)));
      c[KINDS.indexOf(a.kind)]!++;
      const g = cp.app.snapshot.config.guard;
      if (g.webhooks.length > 0) {
        const d = notify({ event: `switchyard.${a.kind}`, feature, from_percent: a.from, to_percent: a.to, reason: a.reason, numbers, at: new Date(now).toISOString(), config_hash: record.hash, by: who }, { urls: g.webhooks, timeoutMs: g.webhook_timeout, retries: g.webhook_retries, logger: cp.app.logger, backoffMs: this.webhookBackoffMs });
        this.deliveries.add(d);
        void d.finally(() => this.deliveries.delete(d));
      }
    } catch (err) {
      cp.app.logger.error({ err, feature, action: a }, `guard could not apply ${a.kind} on ${feature}: ${(err as Error).message}`);
    }
  }

  /** The feature's numbers from Switchyard's own windows: the fleet's with a shared store, else this process's (its workers' included). */
  #own(feature: string, window: WindowName, now: number): FeatureNumbers {
    const side = (backend: "legacy" | "new"): SideNumbers => {
      const stats = (this.#cp.fleetMetrics ?? this.#cp.app.metrics).series(feature, backend).window;
      const w = stats.summary(window, now);
      return { requests: w.requests, errors: w.errors, error_rate: w.error_rate, p99_ms: w.p99_ms, hist: stats.histogram(window, now).hist };
    };
    const compared = this.#cp.fleetComparisons ? this.#cp.fleetComparisons.get(feature) : this.#cp.app.shadow.comparisons(feature);
    const w = compared?.summary(window, now);
    return { legacy: side("legacy"), neu: side("new"), shadow: { pairs: w?.requests ?? 0, mismatches: w?.errors ?? 0 } };
  }

  /** Each window's numbers from Prometheus, or undefined when it did not answer (logged once per outage). */
  async #fromPrometheus(windows: Set<WindowName>): Promise<Map<WindowName, Map<string, FeatureNumbers>> | undefined> {
    const p = this.#cp.app.snapshot.config.guard.prometheus!;
    const key = JSON.stringify(p);
    if (this.#prometheus?.key !== key) this.#prometheus = { key, source: new PrometheusSource({ url: p.url, selector: p.selector, timeoutMs: p.timeout || 2000 }) };
    const log = this.#cp.app.logger;
    try {
      const out = new Map<WindowName, Map<string, FeatureNumbers>>();
      for (const w of windows) out.set(w, await this.#prometheus.source.numbers(w));
      if (this.sourceStatus.error !== null) log.info({ prometheus: p.url }, "guard: Prometheus answers again; judging on its numbers");
      this.sourceStatus = { up: true, error: null, last_ok: new Date().toISOString() };
      return out;
    } catch (err) {
      const message = (err as Error).message;
      if (this.sourceStatus.error === null) log.warn({ prometheus: p.url, error: message }, `guard holds still: ${message}`);
      this.sourceStatus = { up: false, error: message, last_ok: this.sourceStatus.last_ok };
      return undefined;
    }
  }

  /** Pause, resume or approve a feature's schedule (admin API). */
  control(feature: string, what: "pause" | "resume" | "approve"): GuardState {
    if (!this.#cp.actsForFleet) throw new GuardError(`this replica does not run the schedules: the fleet's leader does (control_store.replicas in GET /status, the one with leader: true); send ${what} to its admin API`, 409);
    const f = this.#cp.app.snapshot.config.features[feature];
    if (!f) throw new GuardError(`no feature named "${feature}"`, 404);
    if (!f.schedule) throw new GuardError(`feature ${feature} has no schedule (features.${feature}.schedule)`, 409);
    const s = { ...(this.states.get(feature) ?? initialState(Date.now())) };
    if (what === "pause") s.paused = true;
    else if (what === "resume") {
      s.paused = false;
      s.breaches = 0;
      s.stepSince = Date.now(); // a fresh hold from now
    } else {
      if (s.paused) throw new GuardError(`the schedule of ${feature} is paused; resume it first`, 409);
      s.approved = true;
    }
    this.states.set(feature, s);
    this.#hooks.persist();
    return s;
  }

  /** Where the numbers come from, as the audit and /status say it. */
  #sourceName(): string {
    const g = this.#cp.app.snapshot.config.guard;
    if (g.source === "prometheus") return `prometheus ${g.prometheus!.url}`;
    return this.#cp.fleetMetrics ? "switchyard windows of every replica" : "switchyard windows of this process";
  }

  /** For /status: the source of the numbers and whether it answers. */
  sourceView(): Record<string, unknown> {
    const g = this.#cp.app.snapshot.config.guard;
    return { kind: g.source, from: this.#sourceName(), ...this.sourceStatus, ...(g.source === "prometheus" && { selector: g.prometheus!.selector }) };
  }

  /** For GET /guard and /status. */
  status(): Record<string, unknown> {
    const cfg = this.#cp.app.snapshot.config;
    const out: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(cfg.features)) {
      if (!cfg.guard.enabled || f.guard?.enabled === false) continue;
      const last = this.#last.get(name);
      const s = this.states.get(name);
      const sched = scheduleOf(f);
      const percent = typeof f.target === "string" ? (f.target === "new" ? 100 : 0) : f.target.percent;
      out[name] = {
        percent,
        rules: rulesOf(cfg.guard, f),
        state: s ?? null,
        last_evaluation: last ? { at: new Date(last.at).toISOString(), window: last.window, judged: last.evaluation.judged, breaches: last.evaluation.breaches, legacy: figures(last.legacy), new: figures(last.neu) } : null,
        schedule: sched
          ? { steps: sched.steps, approval: sched.approval, hold_seconds: sched.holdMs / 1000, next: sched.steps.find((x) => x > percent) ?? null, paused: s?.paused ?? false, awaiting_approval: s?.awaiting ?? false, step_since: s?.stepSince ? new Date(s.stepSince).toISOString() : null }
          : null,
      };
    }
    return out;
  }
}

export class GuardError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

const noTraffic = (): SideNumbers => ({ requests: 0, errors: 0, error_rate: null, p99_ms: null });

/** A side's numbers for status, audit and webhooks (without the latency buckets). */
function figures(s: SideNumbers): Omit<SideNumbers, "hist"> {
  return { requests: s.requests, errors: s.errors, error_rate: s.error_rate, p99_ms: s.p99_ms };
}

export function rulesOf(g: Config["guard"], f: Feature): GuardRules {
  const r = { ...g, ...Object.fromEntries(Object.entries(f.guard ?? {}).filter(([, v]) => v !== undefined)) } as Config["guard"] & NonNullable<Feature["guard"]>;
  const p99 = r.p99_above ?? "2s";
  return {
    minRequests: r.min_requests ?? 100,
    consecutive: r.consecutive ?? 2,
    newErrorRateAbove: (r.new_error_rate_above ?? 1) / 100,
    errorRateOverLegacy: (r.error_rate_over_legacy ?? 0.5) / 100,
    confidence: (r.confidence ?? 95) / 100,
    p99AboveMs: p99 === 0 ? 0 : parseDuration(p99)!,
    p99RatioOverLegacy: r.p99_ratio_over_legacy ?? 1.5,
    p99RatioMinDiffMs: r.p99_ratio_min_difference === undefined ? 50 : parseDuration(String(r.p99_ratio_min_difference)) ?? 50,
    action: r.action ?? "rollback",
    cooldownMs: g.cooldown,
    shadowMismatchAbove: (r.shadow_mismatch_above ?? 0) / 100,
    shadowMinPairs: r.shadow_min_pairs ?? 50,
  };
}

function scheduleOf(f: Feature): Schedule | null {
  return f.schedule ? { steps: f.schedule.steps, holdMs: f.schedule.hold, approval: f.schedule.approval } : null;
}
