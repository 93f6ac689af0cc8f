// The health of one backend as a pure state machine: outcomes of real exchanges (passive detection,
// like Envoy's outlier ejection and nginx's max_fails/fail_timeout) and of active checks go in, with
// the time passed in; whether the backend may take traffic comes out. No I/O, no clock of its own.
//
//   healthy --(consecutive failures within the window)--> ejected --(ejection over)--> half-open
//   half-open --(next outcome ok)--> healthy;  --(it fails)--> ejected again, for twice as long
//   any --(unhealthy_threshold failing checks)--> unhealthy --(healthy_threshold passing)--> healthy

export type HealthState = "healthy" | "ejected" | "half_open" | "unhealthy";
/** What went wrong with an exchange, for the ejection's reason and the metrics. */
export type FailureKind = "connect" | "reset" | "timeout" | "bad_response" | "5xx";

export interface PassiveRules {
  /** 0 = passive detection off. */
  consecutiveFailures: number;
  windowMs: number;
  ejectionMs: number;
  maxEjectionMs: number;
}

export interface ActiveRules {
  healthyThreshold: number;
  unhealthyThreshold: number;
}

/** An active check as the prober runs it. */
export interface ActiveCheck {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  jitterMs: number;
  /** Statuses and classes ("2xx") that pass. */
  expected: readonly (number | string)[];
}

export interface HealthSnapshot {
  state: HealthState;
  /** When the state began (epoch ms). */
  since: number;
  /** Why the backend is not healthy, in words; null when healthy. */
  reason: string | null;
  consecutive_failures: number;
  /** Ejections in a row without a stable recovery (they set the next ejection's length). */
  ejections: number;
  ejected_until: number | null;
  active: { consecutive_ok: number; consecutive_failed: number; last: { at: number; ok: boolean; detail: string } | null } | null;
}

export class BackendHealth {
  state: HealthState = "healthy";
  since: number;
  reason: string | null = null;
  #failures = 0;
  #lastFailureAt = 0;
  #ejections = 0;
  #ejectedUntil = 0;
  #okSince = 0;
  #activeOk = 0;
  #activeFailed = 0;
  #lastCheck: { at: number; ok: boolean; detail: string } | null = null;
  /** Times the backend was taken out of rotation, by cause, for the counter. */
  readonly ejectionCounts = { passive: 0, active_check: 0 };
  passive: PassiveRules;
  active: ActiveRules | null;

  constructor(passive: PassiveRules, active: ActiveRules | null, now: number) {
    this.passive = passive;
    this.active = active;
    this.since = now;
    this.#okSince = now;
  }

  /** Whether the backend may take requests now (a half-open backend takes them: they are its probe). */
  available(now: number): boolean {
    if (this.state === "ejected" && now >= this.#ejectedUntil) this.#become("half_open", now, `ejection over, the next exchange decides (${this.reason})`);
    return this.state === "healthy" || this.state === "half_open";
  }

  /** A real exchange answered (any status but a gateway failure). */
  succeeded(now: number): void {
    this.#failures = 0;
    if (this.state === "half_open") {
      this.#become("healthy", now, null);
      this.#okSince = now;
    }
    // Ejections are forgiven after a stable spell as long as the longest ejection.
    if (this.state === "healthy" && this.#ejections > 0 && now - this.#okSince >= this.passive.maxEjectionMs) this.#ejections = 0;
  }

  /** A real exchange failed; returns true when this ejected the backend. */
  failed(kind: FailureKind, now: number): boolean {
    if (this.state === "half_open") return this.#eject(now, `still failing when half-open (${kind})`, "passive");
    if (this.state !== "healthy" || this.passive.consecutiveFailures === 0) return false;
    if (now - this.#lastFailureAt > this.passive.windowMs) this.#failures = 0;
    this.#failures++;
    this.#lastFailureAt = now;
    if (this.#failures < this.passive.consecutiveFailures) return false;
    return this.#eject(now, `${this.#failures} failed exchanges in a row (last: ${kind})`, "passive");
  }

  /** An active check's result. */
  checked(ok: boolean, detail: string, now: number): void {
    this.#lastCheck = { at: now, ok, detail };
    const rules = this.active;
    if (rules === null) return;
    if (ok) {
      this.#activeOk++;
      this.#activeFailed = 0;
      if (this.state === "unhealthy" && this.#activeOk >= rules.healthyThreshold) {
        this.#become("healthy", now, null);
        this.#okSince = now;
      } else if (this.state === "half_open") {
        this.#become("healthy", now, null);
        this.#okSince = now;
      }
    } else {
      this.#activeOk = 0;
      this.#activeFailed++;
      if (this.state === "half_open") this.#eject(now, `active check failed when half-open (${detail})`, "active_check");
      else if (this.state !== "unhealthy" && this.#activeFailed >= rules.unhealthyThreshold) {
        this.ejectionCounts.active_check++;
        this.#become("unhealthy", now, `${this.#activeFailed} failed active checks in a row (last: ${detail})`);
      }
    }
  }

  #eject(now: number, why: string, cause: keyof BackendHealth["ejectionCounts"]): boolean {
    const p = this.passive;
    const length = Math.min(p.maxEjectionMs, p.ejectionMs * 2 ** this.#ejections);
    this.#ejections++;
    this.#ejectedUntil = now + length;
    this.#failures = 0;
    this.ejectionCounts[cause]++;
    this.#become("ejected", now, `${why}; ejected for ${Math.round(length / 1000)} s`);
    return true;
  }

  #become(state: HealthState, now: number, reason: string | null): void {
    this.state = state;
    this.since = now;
    this.reason = reason;
  }

  snapshot(now: number): HealthSnapshot {
    this.available(now);
    return {
      state: this.state,
      since: this.since,
      reason: this.reason,
      consecutive_failures: this.#failures,
      ejections: this.#ejections,
      ejected_until: this.state === "ejected" ? this.#ejectedUntil : null,
      active: this.active === null ? null : { consecutive_ok: this.#activeOk, consecutive_failed: this.#activeFailed, last: this.#lastCheck },
    };
  }
}
