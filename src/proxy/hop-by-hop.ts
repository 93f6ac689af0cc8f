// Hop-by-hop headers (RFC 9110 7.6.1, plus the legacy ones Go's ReverseProxy also drops) never cross
// the proxy in either direction, and neither does any header a peer names in its Connection header.

const HOP_BY_HOP = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "te",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}

/** Bit n set: some hop-by-hop name is n characters long. */
const HOP_LENGTHS = [...HOP_BY_HOP].reduce((bits, name) => bits | (1 << name.length), 0);

/** False when no hop-by-hop name has this length (the name need not even be lowercased to know). */
export function mayBeHopByHop(length: number): boolean {
  return length < 32 && (HOP_LENGTHS & (1 << length)) !== 0;
}

/**
 * Header names listed in a Connection header value, lowercased, or null when it lists none besides the
 * usual `keep-alive` / `close` (the common case, answered without allocating).
 */
export function connectionListed(connection: string | undefined): Set<string> | null {
  if (connection === undefined) return null;
  const lower = connection.toLowerCase();
  if (lower === "keep-alive" || lower === "close") return null;
  let names: Set<string> | null = null;
  for (const token of lower.split(",")) {
    const name = token.trim();
    if (name === "" || name === "keep-alive" || name === "close") continue;
    (names ??= new Set()).add(name);
  }
  return names;
}
