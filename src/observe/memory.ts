// Memory back to the system after startup. Loading and validating the config, compiling the
// snapshot and importing the modules leave V8's young generation grown to --max-semi-space-size and
// garbage in old space; V8 keeps both committed while the process idles (93 MiB idle, 79 MiB after
// one compacting collection, on the bench config). Once nothing has been in flight for
// `memory.idle_trim_after` after startup or a config reload, one "last resort" full GC (the one V8
// runs before giving up on an allocation: compacting, shrinking the young generation, releasing
// empty pages) hands that memory back. It runs once per start or reload, and only while nothing is
// being served. Not after ordinary traffic: V8's own memory reducer already shrinks the heap once a
// load ends (a trim then gave back 0.2 MiB), and a 30-50 ms pause each time traffic pauses would
// land on the next request of a quiet service.
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "./logger.ts";

type Gc = (opts: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;
let gcFn: Gc | null | undefined;

/**
 * V8's gc() without --expose-gc on the command line: the flag set at run time exposes it in new
 * contexts (Node's documented way for tools). null when this V8 refuses.
 */
function gc(): Gc | null {
  if (gcFn === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      const fn = runInNewContext("gc") as unknown;
      gcFn = typeof fn === "function" ? (fn as Gc) : null;
    } catch {
      gcFn = null;
    }
  }
  return gcFn;
}

/** What the trimmer watches: requests started so far and requests (and tunnels) in flight. */
export interface Activity {
  readonly started: number;
  readonly inflight: number;
}

export interface TrimResult {
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly ms: number;
}

/** One compacting GC now; null when gc() is not available. */
export function trimNow(): TrimResult | null {
  const run = gc();
  if (run === null) return null;
  const rssBefore = process.memoryUsage.rss();
  const t0 = performance.now();
  run({ type: "major", execution: "sync", flavor: "last-resort" });
  return { rssBefore, rssAfter: process.memoryUsage.rss(), ms: performance.now() - t0 };
}

/**
 * Checks a few times per period; trims once after startup (or a reload) when the activity counter
 * has not moved for `afterMs` and nothing is in flight.
 */
export class IdleTrimmer {
  readonly #activity: () => Activity;
  readonly #logger: Logger;
  #afterMs: number;
  #timer: NodeJS.Timeout | null = null;
  #lastStarted = -1;
  #quietSince = 0;
  /** Startup or a reload since the last trim (both leave garbage and a grown young generation). */
  #dirty = true;
  /** Trims done (for /metrics and tests). */
  trims = 0;

  constructor(activity: () => Activity, logger: Logger, afterMs: number) {
    this.#activity = activity;
    this.#logger = logger;
    this.#afterMs = afterMs;
    this.#schedule();
  }

  /** After a reload: trim again once quiet for afterMs (memory.idle_trim_after may change; 0: off). */
  reloaded(afterMs: number): void {
    this.#dirty = true;
    this.#afterMs = afterMs;
    this.#schedule();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Watches until the next trim (none while nothing is left to trim: the timer stops). */
  #schedule(): void {
    this.stop();
    this.#lastStarted = -1;
    if (this.#afterMs <= 0 || !this.#dirty) return;
    // Looks four times a period: a trim comes at most half a period later than idle_trim_after of quiet.
    this.#timer = setInterval(() => this.check(performance.now()), Math.max(50, this.#afterMs / 4));
    this.#timer.unref();
  }

  /** One look at the activity (the interval calls it; tests call it with their own clock). */
  check(now: number): void {
    const a = this.#activity();
    if (a.started !== this.#lastStarted || a.inflight > 0) {
      this.#lastStarted = a.started;
      this.#quietSince = now;
      return;
    }
    if (!this.#dirty || now - this.#quietSince < this.#afterMs) return;
    this.#dirty = false;
    this.stop();
    const r = trimNow();
    if (r === null) return;
    this.trims++;
    const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
    this.#logger.debug({ rss_before_mib: mib(r.rssBefore), rss_after_mib: mib(r.rssAfter), gc_ms: Math.round(r.ms * 10) / 10 }, "memory trimmed while idle");
  }
}

export type AllocatorName = "jemalloc" | "mimalloc" | "tcmalloc" | "system";
let allocator: AllocatorName | undefined;

/** The allocator a process's memory map (/proc/PID/maps) shows loaded. */
export function allocatorIn(maps: string): AllocatorName {
  return (/\/lib(jemalloc|mimalloc|tcmalloc)[^/\n]*\.so/.exec(maps)?.[1] as AllocatorName | undefined) ?? "system";
}

/** The allocator this process really runs on: what the loader mapped (src/cli/allocator.ts), not what was asked. */
export function runningAllocator(): AllocatorName {
  if (allocator === undefined) {
    try {
      allocator = allocatorIn(readFileSync("/proc/self/maps", "utf8"));
    } catch {
      allocator = "system"; // not Linux: the system's
    }
  }
  return allocator;
}
