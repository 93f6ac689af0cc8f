// Bounded property-based fuzzing of request framing and of backend answers (RELIABILITY.md K1), with
// fast-check generating the inputs from a seed. The invariants:
// - every request a backend parsed is one the proxy decided on and logged, with that backend and
//   exactly the path it logged as sent (nothing reaches a backend behind the proxy's back);
// - after a refusal, nothing from that connection reaches a backend;
// - the proxy keeps answering (no crash, no unhandled rejection).
// Inputs run concurrently in small groups so hundreds fit in a test; bench/battery.ts runs thousands.
import fc from "fast-check";
import type { RecordingBackend } from "./backends.ts";
import { mapConcurrently, wire, type WireResult } from "./wire.ts";

const REFUSAL_STATUSES = new Set([400, 405, 408, 413, 417, 431, 501, 505]);

const eol = fc.oneof({ weight: 30, arbitrary: fc.constant("\r\n") }, { weight: 1, arbitrary: fc.constantFrom("\n", "\r", "\r\r\n", "\n\r") });
const method = fc.oneof({ weight: 20, arbitrary: fc.constantFrom("GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS") }, { weight: 1, arbitrary: fc.constantFrom("CONNECT", "get", "G\tET", "", "GET GET", "PRI", "TRACE") });
const target = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("/public/x", "/public/x?q=1", "/public/../internal/x", "/public/%2e%2e/internal/x", "/public/..%2finternal/x", "//internal/x", "http://a/public/x", "http://a/internal/x", "/public/\\..\\internal", "/internal/x") },
  { weight: 1, arbitrary: fc.constantFrom("/public/x#f", "*", "public/x", "/public/%zz", "/public/%00", "/public/a b") },
);
const version = fc.oneof({ weight: 30, arbitrary: fc.constant("HTTP/1.1") }, { weight: 1, arbitrary: fc.constantFrom("HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/1.1 ", "http/1.1", "HTTP/1.10", "") });
const knownHeader = fc.constantFrom<[string, string]>(
  ["Host", "a"], ["Host", "a b"], ["Host", ""], ["Host", "a/b"], ["Host", "b"],
  ["Transfer-Encoding", "chunked"], ["Transfer-Encoding", " chunked"], ["Transfer-Encoding", "chunked, identity"], ["Transfer-Encoding", "identity, chunked"], ["Transfer-Encoding", "gzip"], ["transfer-encoding", "CHUNKED"],
  ["Content-Length", "0"], ["Content-Length", "5"], ["Content-Length", "44"], ["Content-Length", "+5"], ["Content-Length", "-1"], ["Content-Length", "5, 5"], ["Content-Length", "0x5"],
  ["Connection", "close"], ["Connection", "keep-alive, Transfer-Encoding"], ["Connection", "Content-Length"], ["Expect", "100-continue"], ["Upgrade", "websocket"], ["Upgrade", "h2c"],
  ["X-Forwarded-For", "6.6.6.6"], ["Forwarded", "for=6.6.6.6"], ["X-Request-Id", "abc"],
);
const header = fc.oneof({ weight: 4, arbitrary: knownHeader }, { weight: 1, arbitrary: fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/), fc.string({ maxLength: 12 })) });
const sep = fc.oneof({ weight: 30, arbitrary: fc.constant(": ") }, { weight: 1, arbitrary: fc.constantFrom(":", " : ", ":\t", ":\r\n ", "\0: ", ":\v") });
const body = fc.constantFrom("", "", "0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", "hello", "+0\r\n\r\n", "2\r\nabcd\r\n0\r\n\r\n", "0\r\nContent-Length: 5\r\n\r\n", "ffffffffffffffff\r\n", "5\r\nhel");
const mutation = fc.tuple(fc.constantFrom("insert", "delete", "replace"), fc.nat(), fc.integer({ min: 0, max: 255 }));

/** Byte-level edits: insert, delete or replace one byte (as a latin1 character) at a position. */
function mutate(text: string, edits: readonly (readonly [string, number, number])[]): string {
  for (const [kind, at, byte] of edits) {
    const i = text.length === 0 ? 0 : at % text.length;
    const ch = String.fromCharCode(byte);
    text = kind === "insert" ? text.slice(0, i) + ch + text.slice(i) : kind === "delete" ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + ch + text.slice(i + 1);
  }
  return text;
}

/** A request as raw text (latin1 bytes), mutated at the byte level now and then. */
export const requestBytes = fc
  .record({ method, target, version, eol, headers: fc.array(fc.tuple(header, sep), { maxLength: 4 }), hostFirst: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), body, mutations: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) }) })
  .map((r) => {
    const lines = [`${r.method} ${r.target} ${r.version}`];
    if (r.hostFirst) lines.push("Host: a");
    for (const [[name, value], s] of r.headers) lines.push(`${name}${s}${value}`);
    return mutate(`${lines.join(r.eol)}${r.eol}${r.eol}${r.body}`, r.mutations);
  });

/** The hidden request each fuzz case carries after its own (case index in the path). */
export const hiddenRequest = (i: number) => `GET /internal/hidden/${i} HTTP/1.1\r\nHost: a\r\n\r\n`;

export interface LogLine {
  backend?: string | null;
  path?: string;
  upstream_path?: string;
  upstream_ms?: number | null;
}

export interface FuzzOutcome {
  results: WireResult[];
  /** Backend requests with no matching access-log decision. */
  unaccounted: string[];
  /** Cases refused by the proxy whose hidden request still reached a backend. */
  leakedAfterRefusal: number[];
}

/**
 * Send each payload on its own connection (`concurrency` at a time), wait until the proxy is idle,
 * and check the invariants against what the backends parsed and what the proxy logged.
 */
export async function runRequestFuzz(
  port: number,
  payloads: readonly string[],
  backends: readonly RecordingBackend[],
  logs: () => LogLine[],
  idle: () => Promise<void>,
  concurrency = 25,
): Promise<FuzzOutcome> {
  const results = await mapConcurrently(payloads, concurrency, (p, i) => wire(port, p + hiddenRequest(i), { idleMs: 200, maxMs: 5000 }));
  await idle();
  // Every request a backend parsed must match one decision the proxy logged (backend and path sent).
  const decided = logs().filter((l) => l.backend && l.upstream_ms !== null && l.upstream_ms !== undefined).map((l) => `${l.backend} ${l.upstream_path ?? l.path}`);
  const pool = new Map<string, number>();
  for (const d of decided) pool.set(d, (pool.get(d) ?? 0) + 1);
  const unaccounted: string[] = [];
  for (const b of backends) {
    for (const r of b.seen) {
      const key = `${b.name} ${r.url}`;
      const n = pool.get(key) ?? 0;
      if (n === 0) unaccounted.push(key);
      else pool.set(key, n - 1);
    }
  }
  const leakedAfterRefusal: number[] = [];
  results.forEach((r, i) => {
    if (r.statuses.length > 0 && REFUSAL_STATUSES.has(r.statuses[0]!) && backends.some((b) => b.seen.some((s) => s.url === `/internal/hidden/${i}`))) leakedAfterRefusal.push(i);
  });
  return { results, unaccounted, leakedAfterRefusal };
}

const status = fc.oneof({ weight: 6, arbitrary: fc.constantFrom("200 OK", "204 No Content", "301 Moved", "404 Not Found", "500 Oops") }, { weight: 1, arbitrary: fc.constantFrom("101 Switching Protocols", "100 Continue", "103 Hints", "600 Odd", "99 X", "2000 OK", "200", "", "abc") });
const respHeader = fc.constantFrom<string>(
  "Content-Length: 2", "Content-Length: 0", "Content-Length: 10", "Content-Length: +2", "Content-Length: 2, 2", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked, chunked",
  "Transfer-Encoding: gzip", "Connection: close", "Connection: keep-alive, X-A", "X-A: b", "Upgrade: websocket", "Set-Cookie: a=b", "Location: http://127.0.0.1/x", "X Bad: 1", "X-Bad: a\u0001b", "Keep-Alive: timeout=1",
);
const respBody = fc.constantFrom("", "ok", "2\r\nok\r\n0\r\n\r\n", "zz\r\nok\r\n", "0\r\n\r\n", "okokokokok", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");

/** A backend answer as raw text; sometimes it closes the connection after (the `<close>` marker). */
export const responseBytes = fc
  .record({ version: fc.constantFrom("HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"), status, headers: fc.array(respHeader, { maxLength: 4 }), eol, body: respBody, close: fc.boolean(), mutations: fc.array(mutation, { maxLength: 2 }) })
  .map((r) => {
    const text = mutate(`${r.version} ${r.status}${r.eol}${r.headers.map((h) => `${h}${r.eol}`).join("")}${r.eol}${r.body}`, r.mutations);
    return r.close ? `${text}<close>` : text;
  });
