// The guard's decision for one feature at one instant: a pure function of the window's numbers, the
// rules, the feature's guard state and the time. It says whether the new backend breaches its SLO,
// whether to roll back (or step down), and whether a progressive schedule may advance. The caller
// applies the action as a runtime override; nothing here reads a clock or touches the proxy.
import { mannWhitneyBinned, normalCdf } from "../shadow/report/stats.ts";

export interface SideNumbers {
  requests: number;
  errors: number;
  error_rate: number | null;
  p99_ms: number | null;
  /** Latency buckets over the window (for the significance of the p99 rule against legacy). */
  hist?: ArrayLike<number>;
}

export interface GuardRules {
  minRequests: number;
  consecutive: number;
  /** Fractions, not percents. */
  newErrorRateAbove: number;
  errorRateOverLegacy: number;
  /**
   * The rule relative to legacy breaches only when the excess is significant at this confidence
   * (one-sided two-proportion test, 0.95 = p < 0.05); 0 turns the test off.
   */
  confidence: number;
  /** 0 = off. */
  p99AboveMs: number;
  /** 0 = off. */
  p99RatioOverLegacy: number;
  /** The ratio rule needs new p99 at least this much above legacy's too (sub-millisecond jitter is not a regression). */
  p99RatioMinDiffMs: number;
  action: "rollback" | "step_down";
  cooldownMs: number;
  /** Shadow comparisons: breach when the mismatch rate is above this fraction (0 = off)... */
  shadowMismatchAbove: number;
  /** ... over at least this many compared pairs in the window. */
  shadowMinPairs: number;
}

/** Shadow comparisons of the feature in the window (mismatches exclude learned noise). */
export interface ShadowNumbers {
  pairs: number;
  mismatches: number;
}

export interface Schedule {
  steps: readonly number[];
  holdMs: number;
  approval: "auto" | "manual";
}

export interface GuardState {
  /** Breaching evaluations in a row. */
  breaches: number;
  /** Last rollback or step-down (the cool-down counts from it). */
  lastActionAt: number | null;
  /** When the current percent was reached (by the schedule or a guard action). */
  stepSince: number | null;
  paused: boolean;
  /** Manual approval: the gates passed and the schedule waits for an approval. */
  awaiting: boolean;
  /** An approval given for the next step. */
  approved: boolean;
}

export const initialState = (now: number): GuardState => ({ breaches: 0, lastActionAt: null, stepSince: now, paused: false, awaiting: false, approved: false });

export interface Action {
  kind: "rollback" | "step_down" | "advance";
  from: number;
  to: number;
  reason: string;
}

export interface Evaluation {
  state: GuardState;
  action: Action | null;
  /** Why the new backend breaches now (empty when it does not), for status and the audit log. */
  breaches: string[];
  /** Whether the window had enough new-backend traffic to judge. */
  judged: boolean;
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;

/**
 * One-sided p-value that new's error rate exceeds legacy's by more than `margin`: a two-proportion
 * z-test with unpooled (Wald) variance, which takes a non-zero margin. Small p: a real excess.
 */
export function excessPValue(newErrors: number, newRequests: number, legacyErrors: number, legacyRequests: number, margin: number): number {
  const pn = newErrors / newRequests;
  const pl = legacyErrors / legacyRequests;
  const d = pn - pl - margin;
  const se = Math.sqrt((pn * (1 - pn)) / newRequests + (pl * (1 - pl)) / legacyRequests);
  if (se === 0) return d > 0 ? 0 : 1;
  return 1 - normalCdf(d / se);
}

const formatP = (p: number) => (p < 0.0001 ? "p < 0.0001" : `p = ${p.toFixed(4)}`);

/** The rules the new backend breaks over this window (empty when fine or not enough traffic). */
export function breachesOf(legacy: SideNumbers, neu: SideNumbers, r: GuardRules, shadow: ShadowNumbers | null = null): string[] {
  const out: string[] = [];
  if (r.shadowMismatchAbove > 0 && shadow !== null && shadow.pairs >= r.shadowMinPairs && shadow.mismatches / shadow.pairs > r.shadowMismatchAbove) {
    out.push(`shadow mismatch rate ${pct(shadow.mismatches / shadow.pairs)} > ${pct(r.shadowMismatchAbove)} (${shadow.mismatches}/${shadow.pairs} pairs)`);
  }
  if (neu.requests < r.minRequests) return out;
  const ne = neu.error_rate ?? 0;
  const le = legacy.error_rate ?? 0;
  if (ne > r.newErrorRateAbove && ne - le > r.errorRateOverLegacy) {
    // With legacy traffic to compare, the excess must also be more than chance (both backends failing
    // a random 5 % is not a regression, whatever one window shows). Without it, the thresholds decide.
    if (r.confidence > 0 && legacy.requests > 0) {
      const p = excessPValue(neu.errors, neu.requests, legacy.errors, legacy.requests, r.errorRateOverLegacy);
      if (p < 1 - r.confidence) {
        out.push(`new error rate ${pct(ne)} > ${pct(r.newErrorRateAbove)} and > legacy ${pct(le)} + ${pct(r.errorRateOverLegacy)} (${neu.errors}/${neu.requests} vs ${legacy.errors}/${legacy.requests}, ${formatP(p)})`);
      }
    } else out.push(`new error rate ${pct(ne)} > ${pct(r.newErrorRateAbove)} and > legacy ${pct(le)} + ${pct(r.errorRateOverLegacy)} (${neu.errors}/${neu.requests})`);
  }
  if (r.p99AboveMs > 0 && neu.p99_ms !== null && neu.p99_ms > r.p99AboveMs) out.push(`new p99 ${neu.p99_ms} ms > ${r.p99AboveMs} ms`);
  if (r.p99RatioOverLegacy > 0 && neu.p99_ms !== null && legacy.p99_ms !== null && legacy.requests >= r.minRequests && neu.p99_ms > r.p99RatioOverLegacy * legacy.p99_ms && neu.p99_ms - legacy.p99_ms >= r.p99RatioMinDiffMs) {
    // ... and new's latencies as a whole significantly above legacy's (Mann-Whitney on the window's
    // buckets): a tail made of a few slow requests in one window is not a regression.
    const mw = r.confidence > 0 && neu.hist && legacy.hist ? mannWhitneyBinned(neu.hist, legacy.hist) : null;
    if (mw === null) out.push(`new p99 ${neu.p99_ms} ms > ${r.p99RatioOverLegacy} x legacy p99 ${legacy.p99_ms} ms`);
    else if (mw.greater < 1 - r.confidence) out.push(`new p99 ${neu.p99_ms} ms > ${r.p99RatioOverLegacy} x legacy p99 ${legacy.p99_ms} ms (Mann-Whitney: new slower, ${formatP(mw.greater)})`);
  }
  return out;
}

export function evaluate(input: { percent: number; legacy: SideNumbers; neu: SideNumbers; shadow?: ShadowNumbers | null; rules: GuardRules; schedule: Schedule | null; state: GuardState; now: number }): Evaluation {
  const { percent, rules: r, schedule, now } = input;
  const state = { ...input.state };
  const judged = input.neu.requests >= r.minRequests;
  const breaches = breachesOf(input.legacy, input.neu, r, input.shadow ?? null);
  state.breaches = breaches.length > 0 ? state.breaches + 1 : 0;
  const cooling = state.lastActionAt !== null && now - state.lastActionAt < r.cooldownMs;

  // Breach: act once, then hold still (percent 0 cannot go lower; the cool-down stops cascades).
  if (state.breaches >= r.consecutive && percent > 0 && !cooling) {
    const below = schedule ? [...schedule.steps].reverse().find((s) => s < percent) : undefined;
    const to = r.action === "step_down" && below !== undefined ? below : 0;
    state.breaches = 0;
    state.lastActionAt = now;
    state.stepSince = now;
    state.paused = schedule !== null; // a schedule waits for a person after a breach
    state.awaiting = false;
    state.approved = false;
    return { state, action: { kind: to === 0 ? "rollback" : "step_down", from: percent, to, reason: breaches.join("; ") }, breaches, judged };
  }

  // Schedule: advance after the hold, when the window had enough traffic and nothing breached.
  if (schedule && !state.paused && breaches.length === 0 && !cooling) {
    const next = schedule.steps.find((s) => s > percent);
    const held = state.stepSince !== null && now - state.stepSince >= schedule.holdMs;
    if (next !== undefined && held && judged) {
      if (schedule.approval === "manual" && !state.approved) {
        state.awaiting = true;
        return { state, action: null, breaches, judged };
      }
      state.stepSince = now; // (no cool-down after an advance: a breach at the new step acts at once)
      state.awaiting = false;
      state.approved = false;
      return { state, action: { kind: "advance", from: percent, to: next, reason: `held ${Math.round((now - (input.state.stepSince ?? now)) / 1000)} s at ${percent} % with ${input.neu.requests} new requests, error rate ${pct(input.neu.error_rate ?? 0)}, p99 ${input.neu.p99_ms ?? "n/a"} ms: gates passed` }, breaches, judged };
    }
  }
  return { state, action: null, breaches, judged };
}
