// IP addresses and CIDR ranges: the config's syntax check, and the compiled form the hot path checks.
import { BlockList, isIP } from "node:net";
import { z } from "zod";

/** "10.0.0.0/8", "::1/128" or a single address. */
export const cidr = z.string().superRefine((text, ctx) => {
  const [addr, bits, extra] = text.split("/");
  const family = isIP(addr ?? "");
  const max = family === 6 ? 128 : 32;
  const ok = family !== 0 && extra === undefined && (bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= max));
  if (!ok) ctx.addIssue({ code: "custom", message: `expected an IP address or CIDR such as 10.0.0.0/8 or ::1/128, got ${JSON.stringify(text)}` });
});

export type CidrSet = BlockList | null;

/** Compiled once per config; null for an empty list (nothing is ever in it). */
export function compileCidrs(cidrs: readonly string[]): CidrSet {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split("/") as [string, string | undefined];
    const family = isIP(addr) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(addr, family);
    else list.addSubnet(addr, Number(bits), family);
  }
  return list;
}

export function inCidrs(set: CidrSet, ip: string): boolean {
  if (set === null) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  return set.check(ip, family === 6 ? "ipv6" : "ipv4");
}
