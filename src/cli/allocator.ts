// The memory allocator a serving process runs on. With glibc's malloc, what V8's compiler and GC
// threads free after a load stays in their per-thread arenas: RSS was still 80-115 % above its idle
// level 60 s after load. jemalloc, with a background thread that hands freed pages back after a
// second, came back to within 6-9 % at no measurable CPU cost (bench/README.md, "memory"). So
// `switchyard start` and `demo` re-execute themselves with jemalloc preloaded when the library is
// installed (the same process id, arguments and stdio: execve, not a child), as Envoy links tcmalloc.
// SWITCHYARD_ALLOCATOR chooses: auto (default), jemalloc (required), system, or a library's path.
import { existsSync } from "node:fs";

/** Where Debian/Ubuntu (libjemalloc2), Fedora/RHEL (jemalloc) and source builds put it. */
export const JEMALLOC_CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
  "/usr/lib64/libjemalloc.so.2",
  "/usr/lib/libjemalloc.so.2",
  "/usr/local/lib/libjemalloc.so.2",
];

/**
 * Freed pages go back to the system after ~1 s, from jemalloc's own thread (without it jemalloc
 * purges only when the process allocates again: never, once idle). A MALLOC_CONF of yours wins.
 */
export const JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

const INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install libjemalloc2; Fedora/RHEL: dnf install jemalloc)";

export type AllocatorPlan =
  /** Re-execute with this environment added (LD_PRELOAD, MALLOC_CONF). */
  | { kind: "exec"; library: string; env: Record<string, string> }
  /** Run on as we are; `note` says why, for the start-up log line. */
  | { kind: "stay"; note: string };

export class AllocatorError extends Error {}

/** What SWITCHYARD_ALLOCATOR and the environment ask for (pure: the caller gives platform, files, execve). */
export function planAllocator(env: NodeJS.ProcessEnv, platform: string, exists: (path: string) => boolean, canExec: boolean): AllocatorPlan {
  const asked = (env.SWITCHYARD_ALLOCATOR ?? "").trim() || "auto";
  if (asked === "system") return { kind: "stay", note: "SWITCHYARD_ALLOCATOR=system" };
  const explicit = asked !== "auto";
  if (explicit && asked !== "jemalloc" && !asked.startsWith("/")) {
    throw new AllocatorError(`SWITCHYARD_ALLOCATOR must be auto, jemalloc, system or the absolute path of libjemalloc.so.2, got "${asked}"`);
  }
  const unavailable = (why: string): AllocatorPlan => {
    if (explicit) throw new AllocatorError(`SWITCHYARD_ALLOCATOR=${asked}: ${why}; set SWITCHYARD_ALLOCATOR=system to run on the system allocator`);
    return { kind: "stay", note: why };
  };
  if (platform !== "linux") return unavailable(`jemalloc is preloaded on Linux only (this is ${platform})`);
  let library: string | undefined;
  if (asked.startsWith("/")) {
    if (!exists(asked)) return unavailable(`${asked} does not exist`);
    library = asked;
  } else {
    library = JEMALLOC_CANDIDATES.find(exists);
    if (library === undefined) return unavailable(`jemalloc is not installed (looked in ${JEMALLOC_CANDIDATES.join(", ")}); ${INSTALL_HINT}`);
  }
  const preload = (env.LD_PRELOAD ?? "").split(/[:\s]+/).filter((p) => p !== "");
  // Already preloaded (by the re-execution, or by you): nothing to do. This is also what stops a loop.
  if (preload.some((p) => p === library || /libjemalloc\.so/.test(p))) return { kind: "stay", note: "LD_PRELOAD has jemalloc" };
  // Something else preloaded (another allocator, a tracer): yours to choose, unless you asked for jemalloc.
  if (preload.length > 0 && !explicit) return { kind: "stay", note: `LD_PRELOAD is set (${preload.join(":")}): left as it is` };
  if (!canExec) return unavailable("this Node cannot re-execute itself (process.execve)");
  return { kind: "exec", library, env: { LD_PRELOAD: [library, ...preload].join(":"), MALLOC_CONF: env.MALLOC_CONF || JEMALLOC_CONF } };
}

/**
 * Re-execute this process with jemalloc preloaded when the plan says so (does not return then); else
 * the note for the log. Call before anything starts: whatever is pending is dropped.
 */
export function useJemalloc(): string {
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  const plan = planAllocator(process.env, process.platform, existsSync, typeof execve === "function");
  if (plan.kind === "stay") return plan.note;
  return execve!(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, ...plan.env });
}
