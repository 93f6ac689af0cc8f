// The battery's raw cases (RELIABILITY.md A1, B3, C1, P2): each request is aimed at a route that goes
// to one backend (`/public/...` -> legacy) and hides, in its body or after it, a request for a route
// the config sends to the other (`/internal/...` -> new). A proxy that reads the framing the way the
// backend does forwards nothing hidden; one that does not lets `/internal/smuggled` through.
// Shared by test/battery/*.test.ts and bench/battery.ts (the side-by-side table against nginx).
import type { Step } from "./wire.ts";

/** The request hidden in every case; its path must never reach a backend. */
export const SMUGGLED = "/internal/smuggled";
const HIDDEN = `GET ${SMUGGLED} HTTP/1.1\r\nHost: a\r\n\r\n`;

export interface RequestCase {
  readonly id: string;
  readonly name: string;
  readonly steps: Step[];
  /**
   * refuse: an error answer (4xx/5xx from the proxy) and nothing forwarded at all.
   * forward: the first request reaches the legacy backend; the hidden one never does.
   */
  readonly expect: "refuse" | "forward";
  /** A refused body that streams before the refusal: the backend saw an aborted, incomplete request. */
  readonly partial?: true;
}

/** A request line and header lines, CRLF-joined, then the body as given. */
const msg = (head: string[], body = ""): string => `${head.join("\r\n")}\r\n\r\n${body}`;
const post = (extra: string[], body: string): string => msg(["POST /public/form HTTP/1.1", "Host: a", ...extra], body);

/** A1: malformed and smuggling requests. Every one is refused, and nothing reaches a backend. */
export const A1: RequestCase[] = [
  ["CL.TE: Content-Length and Transfer-Encoding", post(["Content-Length: 6", "Transfer-Encoding: chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["TE.CL: Transfer-Encoding before Content-Length", post(["Transfer-Encoding: chunked", "Content-Length: 4"], `5c\r\n${HIDDEN}\r\n0\r\n\r\n`)],
  ["space before the colon of Transfer-Encoding", post(["Transfer-Encoding : chunked", "Content-Length: 4"], `0\r\n\r\n${HIDDEN}`)],
  ["two Transfer-Encoding headers", post(["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: chunked, chunked", post(["Transfer-Encoding: chunked, chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: identity, chunked", post(["Transfer-Encoding: identity, chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: gzip, chunked", post(["Transfer-Encoding: gzip, chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: chunked, identity", post(["Transfer-Encoding: chunked, identity"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: xchunked", post(["Transfer-Encoding: xchunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding: gzip alone", post(["Transfer-Encoding: gzip"], HIDDEN)],
  ["Transfer-Encoding folded onto the next line", post(["Transfer-Encoding:", " chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding with a vertical tab", post(["Transfer-Encoding:\x0bchunked"], `0\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding on HTTP/1.0", msg(["POST /public/form HTTP/1.0", "Host: a", "Transfer-Encoding: chunked"], `0\r\n\r\n${HIDDEN}`)],
  ["two different Content-Lengths", post(["Content-Length: 0", "Content-Length: 44"], HIDDEN)],
  ["two equal Content-Lengths", post(["Content-Length: 0", "Content-Length: 0"], HIDDEN)],
  ["Content-Length: +4", post(["Content-Length: +4"], `abcd${HIDDEN}`)],
  ["Content-Length: 0x4", post(["Content-Length: 0x4"], `abcd${HIDDEN}`)],
  ["Content-Length: 4, 4", post(["Content-Length: 4, 4"], `abcd${HIDDEN}`)],
  ["Content-Length: -1", post(["Content-Length: -1"], HIDDEN)],
  ["Content-Length: 4a", post(["Content-Length: 4a"], `abcd${HIDDEN}`)],
  ["Content-Length: 1e1", post(["Content-Length: 1e1"], HIDDEN)],
  ["Content-Length past 2^64", post(["Content-Length: 99999999999999999999999"], HIDDEN)],
  ["chunk size +0", post(["Transfer-Encoding: chunked"], `+0\r\n\r\n${HIDDEN}`)],
  ["chunk size 0x0", post(["Transfer-Encoding: chunked"], `0x0\r\n\r\n${HIDDEN}`)],
  ["chunk size with a leading space", post(["Transfer-Encoding: chunked"], ` 0\r\n\r\n${HIDDEN}`)],
  ["chunk size -1", post(["Transfer-Encoding: chunked"], `-1\r\n\r\n${HIDDEN}`)],
  ["chunk size over 64 bits", post(["Transfer-Encoding: chunked"], `fffffffffffffffff\r\n${HIDDEN}`)],
  ["chunk data longer than its size", post(["Transfer-Encoding: chunked"], `2\r\nabcd\r\n0\r\n\r\n${HIDDEN}`)],
  ["chunk data without its CRLF", post(["Transfer-Encoding: chunked"], `2\r\nab0\r\n\r\n${HIDDEN}`)],
  ["chunk lines ended by bare LF", post(["Transfer-Encoding: chunked"], `2\nab\n0\n\n${HIDDEN}`)],
  ["Content-Length in the trailer", post(["Transfer-Encoding: chunked"], `0\r\nContent-Length: 44\r\n\r\n${HIDDEN}`)],
  ["Transfer-Encoding in the trailer", post(["Transfer-Encoding: chunked"], `0\r\nTransfer-Encoding: chunked\r\n\r\n${HIDDEN}`)],
  ["trailer line without a colon", post(["Transfer-Encoding: chunked"], `0\r\nbroken trailer\r\n\r\n${HIDDEN}`)],
  ["header lines ended by bare LF", `GET /public/x HTTP/1.1\nHost: a\nContent-Length: 44\n\n${HIDDEN}`],
  ["a bare CR inside a header line", post(["X-A: b\rContent-Length: 44", "Content-Length: 0"], HIDDEN)],
  ["NUL in a header value", post(["X-A: b\0c", "Content-Length: 0"], HIDDEN)],
  ["space in a header name", post(["Content Length: 44", "Content-Length: 0"], HIDDEN)],
  ["header line without a colon", post(["Content-Length 44", "Content-Length: 0"], HIDDEN)],
  ["obs-fold in an ordinary header", post(["X-A: b", " c", "Content-Length: 0"], HIDDEN)],
  ["header name with a non-token character", post(["X(A): b", "Content-Length: 0"], HIDDEN)],
  ["request line with a trailing word", msg(["GET /public/x HTTP/1.1 extra", "Host: a"]) + HIDDEN],
  ["request line split by tabs", msg(["GET\t/public/x\tHTTP/1.1", "Host: a"]) + HIDDEN],
  ["lower-case method", msg(["get /public/x HTTP/1.1", "Host: a"]) + HIDDEN],
  ["method with a non-token character", msg(["GE(T /public/x HTTP/1.1", "Host: a"]) + HIDDEN],
  ["NUL in the request target", msg(["GET /public/x\0 HTTP/1.1", "Host: a"]) + HIDDEN],
  ["HTTP/1.1 without Host", msg(["GET /public/x HTTP/1.1"]) + HIDDEN],
  ["two Host headers", msg(["GET /public/x HTTP/1.1", "Host: a", "Host: b"]) + HIDDEN],
  ["Host with a space", msg(["GET /public/x HTTP/1.1", "Host: a b"]) + HIDDEN],
  ["Host with a path", msg(["GET /public/x HTTP/1.1", "Host: a/internal"]) + HIDDEN],
  ["Host with userinfo", msg(["GET /public/x HTTP/1.1", "Host: user@a"]) + HIDDEN],
  ["Host with a backslash", msg(["GET /public/x HTTP/1.1", "Host: a\\b"]) + HIDDEN],
  ["empty Host", msg(["GET /public/x HTTP/1.1", "Host: "]) + HIDDEN],
  ["Host with empty labels", msg(["GET /public/x HTTP/1.1", "Host: a..b"]) + HIDDEN],
  ["request target *", msg(["GET * HTTP/1.1", "Host: a"]) + HIDDEN],
  ["request target without a leading /", msg(["GET public/x HTTP/1.1", "Host: a"]) + HIDDEN],
  ["request target with a fragment", msg(["GET /public/x#frag HTTP/1.1", "Host: a"]) + HIDDEN],
  ["absolute-form with userinfo", msg(["GET http://u@a/public/x HTTP/1.1", "Host: a"]) + HIDDEN],
  ["absolute-form with another scheme", msg(["GET ftp://a/public/x HTTP/1.1", "Host: a"]) + HIDDEN],
  ["CONNECT", msg(["CONNECT a:443 HTTP/1.1", "Host: a:443"]) + HIDDEN],
  ["an Expect other than 100-continue", msg(["GET /public/x HTTP/1.1", "Host: a", "Expect: 200-ok"]) + HIDDEN],
  ["HTTP/2.0 request line", msg(["GET /public/x HTTP/2.0", "Host: a"]) + HIDDEN],
  ["HTTP/1.2 request line", msg(["GET /public/x HTTP/1.2", "Host: a"]) + HIDDEN],
  ["HTTP/0.9 request line", `GET /public/x\r\n\r\n${HIDDEN}`],
  ["broken percent-escape in the path", msg(["GET /public/%zz HTTP/1.1", "Host: a"]) + HIDDEN],
  ["encoded NUL in the path", msg(["GET /public/%00 HTTP/1.1", "Host: a"]) + HIDDEN],
  ["header block over 16 KiB", msg(["GET /public/x HTTP/1.1", "Host: a", `X-Big: ${"x".repeat(17_000)}`]) + HIDDEN],
  ["body over limits.max_body_size by Content-Length", post(["Content-Length: 2000000"], HIDDEN)],
  ["body over limits.max_body_size, chunked", post(["Transfer-Encoding: chunked"], `${(1_100_000).toString(16)}\r\n${"x".repeat(1_100_000)}\r\n0\r\n\r\n${HIDDEN}`)],
].map(([name, payload], i) => ({ id: `A1.${String(i + 1).padStart(2, "0")}`, name: name!, steps: [payload!], expect: "refuse" as const, ...(name!.includes("chunked") && name!.includes("max_body_size") && { partial: true as const }) }));

/** Requests a strict proxy still forwards: the legitimate neighbours of the A1 cases. */
export const LEGIT: RequestCase[] = [
  ["chunked body with a chunk extension", post(["Transfer-Encoding: chunked"], "4;ext=1\r\nabcd\r\n0\r\n\r\n")],
  ["chunked body with a trailer", post(["Transfer-Encoding: chunked"], "4\r\nabcd\r\n0\r\nX-Checksum: 1\r\n\r\n")],
  ["Transfer-Encoding: Chunked (case-insensitive)", post(["Transfer-Encoding: Chunked"], "0\r\n\r\n")],
  ["Content-Length with surrounding spaces", post(["Content-Length:  4 "], "abcd")],
  ["GET with a Content-Length body", msg(["GET /public/x HTTP/1.1", "Host: a", "Content-Length: 4"], "abcd")],
  ["HTTP/1.0 without Host", `GET /public/x HTTP/1.0\r\n\r\n`],
  ["Host with a port and a trailing dot", msg(["GET /public/x HTTP/1.1", "Host: a.example.:8080"])],
  ["IPv6 Host", msg(["GET /public/x HTTP/1.1", "Host: [::1]:8080"])],
  ["absolute-form target (its authority replaces Host)", msg(["GET http://a.example/public/x HTTP/1.1", "Host: b"])],
  ["Upgrade: h2c (served as plain HTTP)", msg(["GET /public/x HTTP/1.1", "Host: a", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"])],
  ["double space before the target (nginx accepts it too)", msg(["GET  /public/x HTTP/1.1", "Host: a"])],
].map(([name, payload], i) => ({ id: `L.${String(i + 1).padStart(2, "0")}`, name: name!, steps: [payload!], expect: "forward" as const }));

/**
 * P2: a refusal followed on the same connection by a pipelined request for another route. The
 * refusal closes the connection and the pipelined request is never forwarded, whatever the timing.
 */
export const P2: RequestCase[] = [
  ["501 (Transfer-Encoding: gzip, chunked) then a pipelined request", [post(["Transfer-Encoding: gzip, chunked"], "0\r\n\r\n") + HIDDEN]],
  ["400 (TE on HTTP/1.0) then a pipelined request", [msg(["POST /public/form HTTP/1.0", "Host: a", "Transfer-Encoding: chunked"], "0\r\n\r\n") + HIDDEN]],
  ["400 (GET *) then a pipelined request", [msg(["GET * HTTP/1.1", "Host: a"]) + HIDDEN]],
  ["400 (two Hosts) then a pipelined request", [msg(["GET /public/x HTTP/1.1", "Host: a", "Host: b"]) + HIDDEN]],
  ["400 (bad Host) then a pipelined request", [msg(["GET /public/x HTTP/1.1", "Host: a/b"]) + HIDDEN]],
  ["413 (Content-Length) then a pipelined request", [post(["Content-Length: 2000000"], "") + HIDDEN]],
  ["505 (HTTP/2.0) then a pipelined request", [msg(["GET /public/x HTTP/2.0", "Host: a"]) + HIDDEN]],
  ["400 (HTTP/1.1 without Host) then a pipelined request", [msg(["GET /public/x HTTP/1.1"]) + HIDDEN]],
  ["417 (Expect: 200-ok) then a pipelined request", [msg(["GET /public/x HTTP/1.1", "Host: a", "Expect: 200-ok"]) + HIDDEN]],
  ["refusal, pause, then the pipelined request", [msg(["GET * HTTP/1.1", "Host: a"]), { pauseMs: 30 }, HIDDEN]],
  ["refusal sent byte by byte with the pipelined request", [...(msg(["GET * HTTP/1.1", "Host: a"]) + HIDDEN).split("")]],
].map(([name, steps], i) => ({ id: `P2.${String(i + 1).padStart(2, "0")}`, name: name as string, steps: steps as Step[], expect: "refuse" as const }));

/**
 * C1: spellings of a path under `/api/1/assets/**` (routed to new) and of paths that leave it, each
 * with the exact canonical path the backend must receive (written out here, not computed).
 * `legacy` / `new` is where that canonical path routes.
 */
export const C1: { raw: string; canonical: string; backend: "legacy" | "new" }[] = [
  { raw: "/api/1/assets/x/../../ping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/x/%2e%2e/%2e%2e/ping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/x/%2E%2E/%2E%2E/ping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/x/.%2e/%2e./ping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/x/..%2f..%2fping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/x/..%2F..%2Fping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets%2fx", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/assets%2Fx%2F..%2F..%2Fping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/./assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/%2e/assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api//1///assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "//api/1/assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/%61ssets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/%41ssets/x", canonical: "/api/1/Assets/x", backend: "legacy" },
  { raw: "/api/%31/assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/assets/%7Euser", canonical: "/api/1/assets/~user", backend: "new" },
  { raw: "/api/1/assets/x/..", canonical: "/api/1/assets/", backend: "new" },
  { raw: "/api/1/assets/..", canonical: "/api/1/", backend: "legacy" },
  { raw: "/api/1/assets/x/.", canonical: "/api/1/assets/x/", backend: "new" },
  { raw: "/../../../api/1/assets/x", canonical: "/api/1/assets/x", backend: "new" },
  { raw: "/api/1/assets/x/../../../../etc/passwd", canonical: "/etc/passwd", backend: "legacy" },
  { raw: "/api/1/assets\\..\\..\\ping", canonical: "/api/1/assets%5C..%5C..%5Cping", backend: "legacy" },
  { raw: "/api/1/assets/x\\..\\..\\..\\ping", canonical: "/api/1/assets/x%5C..%5C..%5C..%5Cping", backend: "new" },
  { raw: "/api/1/assets/x%5c..%5c..%5cping", canonical: "/api/1/assets/x%5C..%5C..%5Cping", backend: "new" },
  { raw: "/api/1/assets/x%252e%252e/ping", canonical: "/api/1/assets/x%252e%252e/ping", backend: "new" },
  { raw: "/api/1/assets/%252e%252e/%252e%252e/ping", canonical: "/api/1/assets/%252e%252e/%252e%252e/ping", backend: "new" },
  { raw: "/api/1/assets/x%25%32%65", canonical: "/api/1/assets/x%252e", backend: "new" },
  { raw: "/api/1/assets;x/../../ping", canonical: "/api/ping", backend: "legacy" },
  { raw: "/api/1/assets;x", canonical: "/api/1/assets;x", backend: "legacy" },
  { raw: "/api/1/assets/x;y=../../ping", canonical: "/api/1/assets/ping", backend: "new" },
  { raw: "/api/1/ASSETS/x", canonical: "/api/1/ASSETS/x", backend: "legacy" },
  { raw: "/api/1/assets/x%2f%2e%2e%2f%2e%2e%2fping", canonical: "/api/1/ping", backend: "legacy" },
  { raw: "/api/1/assets/%7e%75ser", canonical: "/api/1/assets/~user", backend: "new" },
  { raw: "/api/1/assets/a%c3%a9", canonical: "/api/1/assets/a%C3%A9", backend: "new" },
  { raw: "/api/1/assets/x?y=/../../ping", canonical: "/api/1/assets/x?y=/../../ping", backend: "new" },
  { raw: "/api/1/assets/x/?q=%2e%2e", canonical: "/api/1/assets/x/?q=%2e%2e", backend: "new" },
  { raw: "/api/1/assets/<x>", canonical: "/api/1/assets/%3Cx%3E", backend: "new" },
  { raw: "/api/1/assets/x|y^z`", canonical: "/api/1/assets/x%7Cy%5Ez%60", backend: "new" },
];

/** The battery's proxy config: /internal/** and /api/1/assets/** go to new, everything else to legacy. */
export function batteryYaml(legacyUrl: string, newUrl: string, extra = "", limits: Record<string, string | number> = {}): string {
  const all: Record<string, string | number> = { max_body_size: "1MiB", header_timeout: "2s", body_timeout: "500ms", ...limits };
  return `listeners:
  - host: 127.0.0.1
    port: 0
backends:
  legacy:
    url: ${legacyUrl}
    pool: { connections: 8, queue_timeout: 1s }
    timeouts: { response_header: 2s }
  new:
    url: ${newUrl}
    pool: { connections: 8, queue_timeout: 1s }
    timeouts: { response_header: 2s }
admin:
  port: 0
limits:
${Object.entries(all).map(([k, v]) => `  ${k}: ${v}`).join("\n")}
features:
  internal:
    routes: ["/internal/**"]
    target: new
  assets:
    routes: ["/api/1/assets/**"]
    target: new
${extra}`;
}

/**
 * A2: backend answers (to `GET /rogue/<id>`). `bad`: the client gets 502 and the connection that
 * carried it is never used again; `cut`: the headers were sound and already on their way when the
 * body broke, so the client's response is cut short (no complete answer), and that connection too is
 * never used again; a number: relayed with this status. `<close>` ends the connection.
 */
export const A2: { id: string; name: string; reply: string; expect: "bad" | "cut" | number }[] = [
  ["101 without Upgrade to a plain GET", "HTTP/1.1 101 Switching Protocols\r\n\r\nRAW-BYTES"],
  ["unsolicited 101 with Upgrade: websocket", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW-BYTES"],
  ["status 600", "HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok"],
  ["status 999", "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"],
  ["status 099", "HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"],
  ["two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"],
  ["Transfer-Encoding: chunked, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
  ["two Transfer-Encoding headers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
  ["Transfer-Encoding: gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nokok<close>"],
  ["Transfer-Encoding: identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok"],
  ["Transfer-Encoding and Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
  ["two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"],
  ["Content-Length: +2", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"],
  ["bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", "cut"],
  ["body shorter than Content-Length, then close", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok<close>", "cut"],
  ["space in a header name", "HTTP/1.1 200 OK\r\nX Bad: 1\r\nContent-Length: 2\r\n\r\nok"],
  ["NUL in a header value", "HTTP/1.1 200 OK\r\nX-Bad: a\0b\r\nContent-Length: 2\r\n\r\nok"],
  ["control character in a header value", "HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok"],
  ["obs-fold in a header", "HTTP/1.1 200 OK\r\nX-Bad: a\r\n b\r\nContent-Length: 2\r\n\r\nok"],
  ["garbage instead of a status line", "HELLO\r\n\r\n"],
  ["closed before any byte", "<close>"],
  ["closed mid-headers", "HTTP/1.1 200 OK\r\nContent-Len<close>"],
  ["unsolicited 100 Continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
  ["response headers over 16 KiB", `HTTP/1.1 200 OK\r\nX-Big: ${"x".repeat(20_000)}\r\nContent-Length: 2\r\n\r\nok`],
  ["103 Early Hints, then 200", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200],
  ["102 Processing, then 200", "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200],
  ["status line without a reason phrase", "HTTP/1.1 204\r\n\r\n", 204],
  ["HTTP/1.0 answer read until close", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close<close>", 200],
  ["status 599", "HTTP/1.1 599 Custom\r\nContent-Length: 2\r\n\r\nok", 599],
].map(([name, reply, expect], i) => ({ id: `A2.${String(i + 1).padStart(2, "0")}`, name: name as string, reply: reply as string, expect: (expect as number | "cut" | undefined) ?? ("bad" as const) }));
