// One structured line per request, whatever its fate, written in one place so nothing is logged twice.
//
// The lines have the shape pino gives every other log line ({"level","time","service",...,"msg"}),
// but are built here by a fixed-shape writer: pino's generic serialisation and an ISO timestamp per
// line cost about a third of a request's CPU in the bench. Each line is encoded straight into the
// log batch's buffer (logger.ts), so it is in order with pino's own lines and never exists as a
// string; strings are escaped only when they need it, and the timestamp's date and time are
// formatted once a second (the milliseconds appended).
import pino from "pino";
import { ERRORS, type ErrorCode } from "../errors/codes.ts";
import { LineBatch, type Encoding, type Logger } from "./logger.ts";

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

const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");
const NULL = latin1("null");
const EMPTY = Buffer.alloc(0) as Encoding;

/**
 * Writes one line's pieces straight into a buffer (the log batch's own, usually): constant pieces
 * copied from buffers made once, strings encoded in place, numbers written digit by digit. No string
 * is built for the line, so there is nothing to concatenate, flatten, encode a second time or collect.
 */
class LineEncoder {
  buf = EMPTY;
  pos = 0;

  bytes(b: Buffer): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  ascii(s: string): void {
    this.pos += this.buf.latin1Write(s, this.pos);
  }

  /** key, then s as a JSON string (quoted, escaped only when it needs it); nothing for undefined. */
  str(key: Buffer, s: string | undefined): void {
    if (s === undefined) return;
    this.bytes(key);
    if (NEEDS_ESCAPE.test(s)) {
      this.pos += this.buf.utf8Write(JSON.stringify(s), this.pos);
      return;
    }
    this.buf[this.pos++] = 0x22;
    this.pos += this.buf.utf8Write(s, this.pos);
    this.buf[this.pos++] = 0x22;
  }

  /** key, then s or null; nothing for undefined. */
  strOrNull(key: Buffer, s: string | null | undefined): void {
    if (s !== null) this.str(key, s);
    else {
      this.bytes(key);
      this.bytes(NULL);
    }
  }

  /** key, then a whole number as String(n) writes it. */
  int(key: Buffer, n: number): void {
    this.bytes(key);
    this.#digits(n);
  }

  /**
   * key, then a duration in ms rounded to the microsecond, as String(round3(ms)) writes it ("12",
   * "0.05", "3.142"), from integers: turning a double into its shortest decimal form stood out in
   * whole-process profiles of the access log.
   */
  ms(key: Buffer, ms: number | null): void {
    this.bytes(key);
    if (ms === null) return this.bytes(NULL);
    const us = Math.round(ms * 1000);
    if (!(us >= 0 && us < 1e15)) return this.ascii(String(round3(ms)));
    let frac = us % 1000;
    this.#digits((us - frac) / 1000);
    if (frac === 0) return;
    this.buf[this.pos++] = 0x2e;
    for (let unit = 100; frac > 0; unit /= 10) {
      const d = (frac - (frac % unit)) / unit;
      this.buf[this.pos++] = 0x30 + d;
      frac -= d * unit;
    }
  }

  #digits(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) return this.ascii(String(n));
    let digits = 1;
    for (let p = 10; p <= n; p *= 10) digits++;
    let at = this.pos + digits;
    this.pos = at;
    do {
      const d = n % 10;
      this.buf[--at] = 0x30 + d;
      n = (n - d) / 10;
    } while (n > 0);
  }
}

/** Room for a line's keys, time and numbers, besides its strings (at most 6 bytes a UTF-16 unit: a `\u001f` escape). */
const FIXED_BYTES = 1024;

/** Builds access lines for one logger's destination. */
class AccessLogWriter {
  readonly #logger: Logger;
  /** The log's batch (lines encoded straight into it), or another destination (tests): given strings. */
  readonly #batch: LineBatch | null;
  readonly #dest: { write(chunk: string): unknown };
  readonly #enc = new LineEncoder();
  readonly #time: Record<keyof typeof LEVEL_VALUE, Buffer>;
  /** `","service":"switchyard","req_id":` (the logger's own fields as pino writes them, a worker's id too). */
  readonly #afterTime: Buffer;
  #ms = -1;
  #iso = "";
  /** "2026-12-03T01:36:25." for the current second: toISOString once a second, not once a line. */
  #second = -1;
  #secondPrefix = "";

  constructor(logger: Logger) {
    this.#logger = logger;
    const internals = logger as unknown as Record<symbol, unknown>;
    const dest = internals[pino.symbols.streamSym] as { write(chunk: string): unknown };
    this.#batch = dest instanceof LineBatch ? dest : null;
    this.#dest = dest;
    const bindings = (internals[pino.symbols.chindingsSym] as string | undefined) ?? "";
    this.#time = { info: latin1('{"level":"info","time":"'), warn: latin1('{"level":"warn","time":"'), error: latin1('{"level":"error","time":"') };
    this.#afterTime = Buffer.from(`"${bindings},"req_id":`);
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
    const units =
      r.req_id.length + r.method.length + r.path.length + (r.upstream_path?.length ?? 0) + (r.backend?.length ?? 0) + (r.feature?.length ?? 0) + (r.reason?.length ?? 0) +
      r.client_ip.length + (r.failover?.length ?? 0) + (r.protocol?.length ?? 0) + (r.error === undefined ? 0 : r.error.length + (r.error_detail ?? ERRORS[r.error].message).length);
    const most = 6 * units + FIXED_BYTES + this.#afterTime.length;
    const enc = this.#enc;
    const batch = this.#batch;
    const into = batch?.reserve(most) ?? null;
    // Into the batch; a line longer than any batch, or for another destination, into a buffer of its own.
    enc.buf = (into ?? Buffer.allocUnsafe(most)) as Encoding;
    enc.pos = into !== null ? batch!.used : 0;
    enc.bytes(this.#time[level]);
    enc.ascii(this.#iso);
    enc.str(this.#afterTime, r.req_id);
    enc.str(K.method, r.method);
    enc.str(K.path, r.path);
    enc.str(K.upstream_path, r.upstream_path);
    enc.int(K.status, r.status);
    enc.strOrNull(K.backend, r.backend);
    enc.strOrNull(K.feature, r.feature);
    enc.strOrNull(K.reason, r.reason);
    enc.str(K.client_ip, r.client_ip);
    enc.ms(K.upstream_ms, r.upstream_ms);
    enc.ms(K.total_ms, r.total_ms);
    enc.int(K.bytes_in, r.bytes_in);
    enc.int(K.bytes_out, r.bytes_out);
    enc.str(K.failover, r.failover);
    enc.str(K.protocol, r.protocol);
    if (r.error !== undefined) {
      enc.str(K.error, r.error);
      enc.str(K.error_detail, r.error_detail ?? ERRORS[r.error].message);
    }
    enc.bytes(K.end);
    const end = enc.pos;
    const written = enc.buf;
    enc.buf = EMPTY; // the batch's buffer is not held past its line
    if (into !== null) batch!.commit(end);
    else if (batch !== null) batch.writeAlone(written.subarray(0, end));
    else this.#dest.write(written.toString("utf8", 0, end));
  }
}

/** Each field's key, with the comma before it. */
const K = {
  method: latin1(',"method":'),
  path: latin1(',"path":'),
  upstream_path: latin1(',"upstream_path":'),
  status: latin1(',"status":'),
  backend: latin1(',"backend":'),
  feature: latin1(',"feature":'),
  reason: latin1(',"reason":'),
  client_ip: latin1(',"client_ip":'),
  upstream_ms: latin1(',"upstream_ms":'),
  total_ms: latin1(',"total_ms":'),
  bytes_in: latin1(',"bytes_in":'),
  bytes_out: latin1(',"bytes_out":'),
  failover: latin1(',"failover":'),
  protocol: latin1(',"protocol":'),
  error: latin1(',"error":'),
  error_detail: latin1(',"error_detail":'),
  end: latin1(',"msg":"request"}\n'),
};

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
