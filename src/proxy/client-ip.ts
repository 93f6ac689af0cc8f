// Who the client is: the socket peer, or, when the peer is a trusted proxy, the right-most address in
// X-Forwarded-For that is not itself trusted (nginx real_ip_recursive). Untrusted peers' headers are ignored.
import { isIP } from "node:net";
import { compileCidrs, inCidrs, type CidrSet } from "../config/cidr.ts";

export type TrustedProxies = CidrSet;
export const compileTrustedProxies = compileCidrs;

/** "::ffff:10.1.2.3" -> "10.1.2.3", so one CIDR list covers dual-stack sockets. */
export function normalizeIp(addr: string): string {
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

export function isTrusted(trusted: TrustedProxies, ip: string): boolean {
  return inCidrs(trusted, ip);
}

/** The client address to log, rate and route by. `peer` must already be normalised. */
export function resolveClientIp(peer: string, forwardedFor: string | undefined, trusted: TrustedProxies): string {
  if (forwardedFor === undefined || !isTrusted(trusted, peer)) return peer;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeIp(hops[i]!.trim());
    if (isIP(hop) === 0) return peer; // garbage in the chain: believe only what we saw
    if (!isTrusted(trusted, hop)) return hop;
  }
  return normalizeIp(hops[0]!.trim());
}
