// Who the client is: the socket peer, or, when the peer is a trusted proxy, the right-most address in
// X-Forwarded-For that is not itself trusted (nginx real_ip_recursive). Untrusted peers' headers are ignored.
import { BlockList, isIP } from "node:net";

export type TrustedProxies = BlockList | null;

export function compileTrustedProxies(cidrs: readonly string[]): TrustedProxies {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr, bits] = cidr.split("/") as [string, string | undefined];
    const family = isIP(addr) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(bits), family);
  }
  return list;
}

/** "::ffff:10.1.2.3" -> "10.1.2.3", so one CIDR list covers dual-stack sockets. */
export function normalizeIp(addr: string): string {
  return addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr;
}

export function isTrusted(trusted: TrustedProxies, ip: string): boolean {
  if (trusted === null) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  return trusted.check(ip, family === 6 ? "ipv6" : "ipv4");
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
