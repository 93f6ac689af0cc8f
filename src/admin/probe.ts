// The async agent deployment guide's concurrency check, run by the proxy: is a backend serving requests in parallel, or one
// (or a few) at a time? Time one request alone, then N at once, and compare the batch's total time
// with the single one: about equal means concurrent, about N times means sequential.
import { connectOptions } from "../forward/pools.ts";
import { Pool } from "../forward/undici.ts";
import type { BackendTarget } from "../config/compile.ts";

export interface ProbeRequest {
  backend: "legacy" | "new";
  path: string;
  n: number;
  method: "GET" | "HEAD" | "POST";
  timeoutMs: number;
}

export interface ProbeResult {
  backend: string;
  url: string;
  method: string;
  n: number;
  single_seconds: number;
  total_seconds: number;
  slowest_seconds: number;
  fastest_seconds: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  errors: string[];
  /** About how many requests the backend served at once. */
  parallelism: number;
  verdict: "concurrent" | "sequential" | "limited" | "failed";
  explanation: string;
}

/** Refusals of a probe request, in words; null when it is fine. */
export function probeProblem(body: Record<string, unknown>): string | null {
  if (body.backend !== "legacy" && body.backend !== "new") return `backend must be legacy or new (got ${JSON.stringify(body.backend)})`;
  if (typeof body.path !== "string" || !body.path.startsWith("/")) return `path must start with "/" (got ${JSON.stringify(body.path)})`;
  if (!Number.isInteger(body.n) || (body.n as number) < 2 || (body.n as number) > 500) return `n must be a whole number from 2 to 500 (got ${JSON.stringify(body.n)})`;
  if (body.method !== undefined && !["GET", "HEAD", "POST"].includes(body.method as string)) return `method must be GET, HEAD or POST (got ${JSON.stringify(body.method)})`;
  if (body.timeout_ms !== undefined && (!Number.isInteger(body.timeout_ms) || (body.timeout_ms as number) < 100 || (body.timeout_ms as number) > 600_000)) return "timeout_ms must be 100..600000";
  return null;
}

/** Verdict from the timings (pure). */
export function judge(single: number, total: number, n: number): Pick<ProbeResult, "parallelism" | "verdict" | "explanation"> {
  const parallelism = Math.max(1, Math.min(n, Math.round((n * single) / Math.max(total, 1e-9))));
  const t = (s: number) => `${s.toFixed(2)} s`;
  if (total <= 2 * single) return { parallelism, verdict: "concurrent", explanation: `TRUE CONCURRENCY: ${n} requests processed in parallel (total ${t(total)} ≈ single ${t(single)})` };
  if (parallelism <= 1.5) return { parallelism, verdict: "sequential", explanation: `SEQUENTIAL PROCESSING: requests queued or blocked (total ${t(total)} >> single ${t(single)}; about one at a time)` };
  return { parallelism, verdict: "limited", explanation: `LIMITED CONCURRENCY: about ${parallelism} at a time (total ${t(total)} for ${n} requests of ${t(single)} each)` };
}

export async function probeConcurrency(target: BackendTarget, req: ProbeRequest): Promise<ProbeResult> {
  // A pool of its own with a connection per request, so the proxy's pool limit does not queue them.
  // Over HTTP/1.1 even to a backend spoken to over HTTP/2: one connection per request is what is measured.
  const pool = new Pool(target.origin, { connections: req.n, pipelining: 1, headersTimeout: req.timeoutMs, bodyTimeout: req.timeoutMs, ...connectOptions(target, target.connectTimeoutMs, false) });
  const once = async (): Promise<{ seconds: number; status: number | null; error?: string }> => {
    const start = performance.now();
    try {
      const res = await pool.request({ path: req.path, method: req.method, headers: { host: target.hostHeader, "x-switchyard-probe": "1", ...(req.method === "POST" && { "content-type": "application/json" }) }, body: req.method === "POST" ? "{}" : undefined });
      await res.body.dump({ limit: Infinity });
      return { seconds: (performance.now() - start) / 1000, status: res.statusCode };
    } catch (err) {
      return { seconds: (performance.now() - start) / 1000, status: null, error: (err as Error).message };
    }
  };
  try {
    await once(); // warm: a connection, caches
    const solo = [await once(), await once()];
    const single = Math.max(...solo.map((s) => s.seconds));
    const start = performance.now();
    const batch = await Promise.all(Array.from({ length: req.n }, once));
    const total = (performance.now() - start) / 1000;
    const statuses: Record<string, number> = {};
    for (const b of batch) if (b.status !== null) statuses[b.status] = (statuses[b.status] ?? 0) + 1;
    const errors = [...new Set(batch.flatMap((b) => (b.error ? [b.error] : [])))];
    const failed = batch.filter((b) => b.status === null || b.status >= 500).length;
    const base = {
      backend: target.name,
      url: `${target.origin}${req.path}`,
      method: req.method,
      n: req.n,
      single_seconds: round(single),
      total_seconds: round(total),
      slowest_seconds: round(Math.max(...batch.map((b) => b.seconds))),
      fastest_seconds: round(Math.min(...batch.map((b) => b.seconds))),
      ok: req.n - failed,
      failed,
      statuses,
      errors,
    };
    if (failed === req.n || solo.some((s) => s.status === null)) return { ...base, parallelism: 0, verdict: "failed", explanation: `the backend did not answer: ${errors[0] ?? solo.find((s) => s.error)?.error ?? "5xx"}` };
    return { ...base, ...judge(single, total, req.n) };
  } finally {
    await pool.destroy();
  }
}

const round = (s: number) => Math.round(s * 1000) / 1000;
