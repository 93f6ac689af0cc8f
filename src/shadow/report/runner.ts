// Reports for the admin API, built away from the proxy: in a child process at the lowest CPU priority
// (a worker thread would share the proxy's memory and compete with it for the same cores as an
// equal), one report at a time, and the last report per window kept for a few seconds, so a
// dashboard polling GET /shadow (or many people opening it during an incident) costs one build, not
// one each. The child exits once no report is waiting, so the memory a big report used goes back.
import { fork, type ChildProcess } from "node:child_process";
import { setPriority } from "node:os";
import type { Report, ReportOptions } from "./build.ts";
import type { ReportReply, ReportRequest } from "./worker.ts";
import { moduleBeside } from "../../runtime.ts";

export const REPORT_NODE_FLAGS = ["--max-semi-space-size=4"];

export interface ReportKey {
  /** Stores to read. */
  paths: string[];
  /** What identifies the window for the cache (e.g. "1h|feature"), independent of the clock. */
  window: string;
}

export class ReportRunner {
  readonly #ttlMs: number;
  #worker: ChildProcess | null = null;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve: (r: Report) => void; reject: (e: Error) => void }>();
  #queue: Promise<unknown> = Promise.resolve();
  #waiting = 0;
  readonly #cache = new Map<string, { at: number; report: Promise<Report> }>();

  constructor(ttlMs = 10_000) {
    this.#ttlMs = ttlMs;
  }

  /** The report for a window: a cached one younger than the TTL, or a new build after the ones queued. */
  get(key: ReportKey, opts: () => ReportOptions): Promise<Report> {
    const cacheKey = `${key.paths.join("\u0000")}\u0001${key.window}`;
    const now = Date.now();
    const hit = this.#cache.get(cacheKey);
    if (hit !== undefined && now - hit.at < this.#ttlMs) return hit.report;
    // Options are taken when the build starts, so a queued build still covers the latest pairs.
    const report = this.#serial(() => this.#build(key.paths, opts()));
    this.#cache.set(cacheKey, { at: now, report });
    report.catch(() => this.#cache.delete(cacheKey));
    for (const [k, v] of this.#cache) if (now - v.at >= this.#ttlMs) this.#cache.delete(k);
    return report;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    if (w === null || w.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
    w.disconnect();
    await exited;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    this.#waiting++;
    const run = this.#queue.then(work, work).finally(() => {
      if (--this.#waiting === 0) void this.close();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #build(paths: string[], opts: ReportOptions): Promise<Report> {
    const worker = this.#start();
    const id = this.#nextId++;
    return new Promise<Report>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.send({ id, paths, opts } satisfies ReportRequest);
    });
  }

  #start(): ChildProcess {
    if (this.#worker !== null) return this.#worker;
    // A small young generation: the report's garbage (rows, parsed diffs) dies young, and the process
    // stays under 200 MiB however many pairs it reads (REPORT_NODE_FLAGS, also used by bench:report).
    const w = fork(moduleBeside(import.meta.url, "worker"), [], { execArgv: REPORT_NODE_FLAGS, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    try {
      if (w.pid !== undefined) setPriority(w.pid, 19); // nice 19: the proxy always goes first
    } catch {
      // not permitted here: the report still runs apart from the event loop
    }
    w.on("message", (m: ReportReply) => {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if ("error" in m) p?.reject(new Error(m.error));
      else p?.resolve(m.report);
    });
    const fail = (err: Error) => {
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      if (this.#worker === w) this.#worker = null; // the next report starts a fresh process
    };
    w.on("error", fail);
    w.on("exit", (code, signal) => fail(new Error(`the report process exited (${signal ?? code})`)));
    this.#worker = w;
    return w;
  }
}
