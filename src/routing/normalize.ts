// The one canonical form of a request path, used both to match routes and as the path sent upstream,
// so a request cannot dodge a route with `/api/1/./ping`, `/api//1/ping`, `/api/1/x/../ping`,
// `/api/1/%2e%2e/ping` or `/api/1/%70ing` and then reach the backend in its raw form.
//
// Canonical form (RFC 3986 6.2.2, the parts that cannot change what a backend means):
// - percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) and of "/" are decoded (Werkzeug
//   and Starlette both decode %2F before routing, so the backend sees a slash either way);
// - other escapes are kept with upper-case hex (%5c -> %5C); characters that are not allowed raw in a
//   path (`\`, `"`, `<`, `>`, `^`, backtick, `{`, `|`, `}`, bytes >= 0x80) are percent-encoded;
// - runs of "/" collapse to one; "." and ".." segments are resolved, never above the root;
// - a trailing "/" is kept (Flask and FastAPI tell `/users` from `/users/`).
// A path with a broken escape (`%4`, `%zz`) or an encoded NUL has no canonical form.
// Routes are matched on the canonical form without its trailing "/".

const HEX = "0123456789ABCDEF";

/** Characters allowed raw in a canonical path: unreserved, sub-delims, ":", "@" and "/". */
const SAFE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") SAFE[c.charCodeAt(0)] = 1;
/** Escapes decoded in the canonical form: unreserved characters and "/". */
const DECODE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/") DECODE[c.charCodeAt(0)] = 1;

/** True when the path needs no work: only safe characters, no escapes, no empty or dot segments. */
function isCanonicalFast(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c > 255 || SAFE[c] === 0) return false;
    // "/" followed by "/" or "." starts an empty or (maybe) dot segment.
    if (c === 47 && i + 1 < path.length) {
      const n = path.charCodeAt(i + 1);
      if (n === 47 || n === 46) return false;
    }
  }
  return true;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * The canonical form of a path (no query), or null when it has none (broken escape, encoded NUL).
 * Returns the input itself when it already is canonical (the common case, without allocating).
 */
export function canonicalPath(path: string): string | null {
  if (isCanonicalFast(path)) return path;
  // 1. Escapes and raw characters to their canonical spelling.
  let text = "";
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = i + 2 < path.length ? hexValue(path.charCodeAt(i + 1)) : -1;
      const lo = hi === -1 ? -1 : hexValue(path.charCodeAt(i + 2));
      if (lo === -1) return null;
      const byte = hi * 16 + lo;
      if (byte === 0) return null;
      text += DECODE[byte] === 1 ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    } else if (c < 256 && SAFE[c] === 1) text += path[i];
    else if (c < 256) text += `%${HEX[c >> 4]}${HEX[c & 15]}`;
    else for (const b of Buffer.from(path[i]!, "utf8")) text += `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  // 2. Empty and dot segments (RFC 3986 5.2.4), never above the root.
  const out: string[] = [];
  const segments = text.split("/");
  let trailing = false;
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === "" || seg === ".") trailing = last;
    else if (seg === "..") {
      out.pop();
      trailing = last;
    } else {
      out.push(seg);
      trailing = false;
    }
  }
  if (out.length === 0) return "/";
  return `/${out.join("/")}${trailing ? "/" : ""}`;
}

/**
 * The path routes are matched against: the canonical path without query and trailing "/". A path
 * with no canonical form (the proxy refuses those before routing) is matched as written.
 */
export function normalizePath(target: string): string {
  const q = target.indexOf("?");
  const path = q === -1 ? target : target.slice(0, q);
  const canonical = canonicalPath(path) ?? path;
  return canonical.length > 1 && canonical.endsWith("/") ? canonical.slice(0, -1) : canonical;
}
