// One structured line per request, whatever its fate, written in one place so nothing is logged twice.
//
// The lines have the shape pino gives every other log line ({"level","time","service",...,"msg"}),
// but are built here by a fixed-shape writer: pino's generic serialisation and an ISO timestamp per
// line cost about a third of a request's CPU in the bench. Strings are escaped only when they need
// it, and the timestamp's date and time are formatted once a second (the milliseconds appended). Each line goes straight to the logger's
// destination (which batches write(2) itself), so it is in order with pino's own lines.
import pino from "pino";
import { ERRORS, type ErrorCode } from "../errors/codes.ts";
import type { Logger } from "./logger.ts";

export interface AccessRecord {
  req_id: string;
  method: string;
  path: string;
  /** The path sent upstream when it differs from `path` (the canonical form that was matched). */
  upstream_path?: string;
  status: number;
  backend: string | null;
  /** Feature that claimed the request and why the backend was chosen (routing decision). */
  feature?: string | null;
  reason?: string | null;
  client_ip: string;
  /** From sending upstream to the end of the upstream response (nginx $upstream_response_time), ms (written to the µs). */
  upstream_ms: number | null;
  /** From the request's arrival to the last byte to the client, ms (written to the µs). */
  total_ms: number;
  bytes_in: number;
  bytes_out: number;
  /** "new->legacy (connect)": the request went to the other backend, and why. */
  failover?: string;
  /** "HTTP/2.0" for requests that came over HTTP/2 (absent for HTTP/1.x, the common case). */
  protocol?: string;
  error?: ErrorCode;
  error_detail?: string;
}

const LEVEL_VALUE = { info: 30, warn: 40, error: 50 } as const;
/** Characters that JSON must escape (and the separators JavaScript treats as line ends). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/;

const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);
const qn = (s: string | null): string => (s === null ? "null" : q(s));

/**
 * A duration in ms, rounded to the microsecond, as String(round3(ms)) writes it ("12", "0.05",
 * "3.142"), from integers: turning a double into its shortest decimal form stood out in
 * whole-process profiles of the access log.
 */
export function ms3(ms: number | null): string {
  if (ms === null) return "null";
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us < 1e15)) return String(round3(ms));
  const frac = us % 1000;
  const whole = (us - frac) / 1000;
  if (frac === 0) return `${whole}`;
  if (frac % 100 === 0) return `${whole}.${frac / 100}`;
  if (frac % 10 === 0) return `${whole}.${frac < 100 ? "0" : ""}${frac / 10}`;
  return `${whole}.${frac < 10 ? "00" : frac < 100 ? "0" : ""}${frac}`;
}

/** Builds access lines for one logger's destination. */
class AccessLogWriter {
  readonly #logger: Logger;
  readonly #dest: { write(chunk: string): unknown };
  /** The logger's own fields as pino writes them (`,"service":"switchyard"`, and a worker's id). */
  readonly #bindings: string;
  #ms = -1;
  #iso = "";
  /** "2026-12-03T01:36:25." for the current second: toISOString once a second, not once a line. */
  #second = -1;
  #secondPrefix = "";

  constructor(logger: Logger) {
    this.#logger = logger;
    const internals = logger as unknown as Record<symbol, unknown>;
    this.#dest = internals[pino.symbols.streamSym] as { write(chunk: string): unknown };
    this.#bindings = (internals[pino.symbols.chindingsSym] as string | undefined) ?? "";
  }

  write(level: keyof typeof LEVEL_VALUE, r: AccessRecord): void {
    if (LEVEL_VALUE[level] < this.#logger.levelVal) return;
    const now = Date.now();
    if (now !== this.#ms) {
      this.#ms = now;
      const ms = now % 1000;
      if (now - ms !== this.#second) {
        this.#second = now - ms;
        this.#secondPrefix = new Date(this.#second).toISOString().slice(0, 20);
      }
      this.#iso = `${this.#secondPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
    }
    let line = `{"level":"${level}","time":"${this.#iso}"${this.#bindings},"req_id":${q(r.req_id)},"method":${q(r.method)},"path":${q(r.path)}`;
    if (r.upstream_path !== undefined) line += `,"upstream_path":${q(r.upstream_path)}`;
    line += `,"status":${r.status},"backend":${qn(r.backend)}`;
    if (r.feature !== undefined) line += `,"feature":${qn(r.feature)}`;
    if (r.reason !== undefined) line += `,"reason":${qn(r.reason)}`;
    line += `,"client_ip":${q(r.client_ip)},"upstream_ms":${ms3(r.upstream_ms)},"total_ms":${ms3(r.total_ms)},"bytes_in":${r.bytes_in},"bytes_out":${r.bytes_out}`;
    if (r.failover !== undefined) line += `,"failover":${q(r.failover)}`;
    if (r.protocol !== undefined) line += `,"protocol":${q(r.protocol)}`;
    if (r.error !== undefined) line += `,"error":"${r.error}","error_detail":${q(r.error_detail ?? ERRORS[r.error].message)}`;
    this.#dest.write(`${line},"msg":"request"}\n`);
  }
}

const writers = new WeakMap<Logger, AccessLogWriter>();

function writerFor(logger: Logger): AccessLogWriter {
  let w = writers.get(logger);
  if (w === undefined) writers.set(logger, (w = new AccessLogWriter(logger)));
  return w;
}

export function logAccess(logger: Logger, accessLog: boolean, rec: AccessRecord): void {
  if (rec.error === undefined) {
    if (accessLog) writerFor(logger).write("info", rec);
    return;
  }
  // Error lines are written even with the access log off: every failure leaves exactly one line.
  writerFor(logger).write(ERRORS[rec.error].level, rec);
}

export const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;
