import { describe, expect, it } from "vitest";
import { connectionListed, isHopByHop } from "../../src/proxy/hop-by-hop.ts";

describe("hop-by-hop", () => {
  it.each(["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate"])(
    "%s is hop-by-hop",
    (h) => expect(isHopByHop(h)).toBe(true),
  );
  it.each(["host", "trailer", "content-length", "cookie", "x-forwarded-for"])("%s is end-to-end", (h) => expect(isHopByHop(h)).toBe(false));

  it("lists nothing for the common Connection values", () => {
    expect(connectionListed(undefined)).toBeNull();
    expect(connectionListed("keep-alive")).toBeNull();
    expect(connectionListed("Close")).toBeNull();
  });
  it("lists every other token, lowercased and trimmed", () => {
    expect(connectionListed("keep-alive, X-Secret ,  X-Other,close")).toEqual(new Set(["x-secret", "x-other"]));
    expect(connectionListed(",,")).toBeNull();
  });
});
