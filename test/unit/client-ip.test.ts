import { describe, expect, it } from "vitest";
import { compileTrustedProxies, isTrusted, normalizeIp, resolveClientIp } from "../../src/proxy/client-ip.ts";

const trusted = compileTrustedProxies(["10.0.0.0/8", "192.168.1.1", "fd00::/8"]);

describe("client ip", () => {
  it("normalises IPv4-mapped IPv6", () => {
    expect(normalizeIp("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(normalizeIp("::1")).toBe("::1");
  });
  it("checks CIDRs and single addresses of both families", () => {
    expect(isTrusted(trusted, "10.200.0.1")).toBe(true);
    expect(isTrusted(trusted, "11.0.0.1")).toBe(false);
    expect(isTrusted(trusted, "192.168.1.1")).toBe(true);
    expect(isTrusted(trusted, "192.168.1.2")).toBe(false);
    expect(isTrusted(trusted, "fd12::1")).toBe(true);
    expect(isTrusted(trusted, "::1")).toBe(false);
    expect(isTrusted(trusted, "garbage")).toBe(false);
    expect(isTrusted(null, "10.0.0.1")).toBe(false);
  });
  it("ignores X-Forwarded-For from an untrusted peer", () => {
    expect(resolveClientIp("203.0.113.9", "1.2.3.4", trusted)).toBe("203.0.113.9");
  });
  it("takes the right-most untrusted hop from a trusted peer", () => {
    expect(resolveClientIp("10.0.0.5", "1.2.3.4", trusted)).toBe("1.2.3.4");
    expect(resolveClientIp("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.9.9.9", trusted)).toBe("1.2.3.4");
  });
  it("falls back to the left-most hop when every hop is trusted", () => {
    expect(resolveClientIp("10.0.0.5", "10.1.1.1, 10.2.2.2", trusted)).toBe("10.1.1.1");
  });
  it("believes nothing past garbage in the chain", () => {
    expect(resolveClientIp("10.0.0.5", "1.2.3.4, not-an-ip", trusted)).toBe("10.0.0.5");
  });
  it("uses the peer when there is no header", () => {
    expect(resolveClientIp("10.0.0.5", undefined, trusted)).toBe("10.0.0.5");
  });
});
