// The HTTP/1.1 header list an HTTP/2 request becomes at the downgrade (pure): pseudo-headers mapped,
// Cookie joined, and everything that could be read two ways refused with the reason.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { http1View } from "../../src/proxy/http2.ts";

const req = (...extra: string[]) => [":method", "GET", ":scheme", "https", ":authority", "shop.example", ":path", "/a?b=1", ...extra];

describe("http1View", () => {
  it("drops pseudo-headers, takes :authority as Host (first), keeps the rest in order", () => {
    expect(http1View(req("accept", "*/*", "x-a", "1", "x-a", "2"))).toEqual({ raw: ["host", "shop.example", "accept", "*/*", "x-a", "1", "x-a", "2"], problem: null });
  });

  it("keeps a Host that agrees with :authority (case aside) and does not add another", () => {
    expect(http1View(req("host", "SHOP.example"))).toEqual({ raw: ["host", "SHOP.example"], problem: null });
    expect(http1View([":method", "GET", ":scheme", "https", ":path", "/", "host", "h.example"])).toEqual({ raw: ["host", "h.example"], problem: null });
  });

  it("joins split Cookie fields into one, as HTTP/1.1 wants (RFC 9113 8.2.3)", () => {
    expect(http1View(req("cookie", "a=1", "x", "y", "cookie", "b=2")).raw).toEqual(["host", "shop.example", "x", "y", "cookie", "a=1; b=2"]);
  });

  it("allows TE: trailers and nothing else", () => {
    expect(http1View(req("te", "trailers")).problem).toBeNull();
    expect(http1View(req("te", "gzip")).problem).toBe('TE "gzip": HTTP/2 allows only "trailers"');
  });

  it.each([
    [["connection", "close"], 'connection-specific field "connection" is not allowed in HTTP/2 (RFC 9113 8.2.2)'],
    [["transfer-encoding", "chunked"], 'connection-specific field "transfer-encoding" is not allowed in HTTP/2 (RFC 9113 8.2.2)'],
    [["upgrade", "websocket"], 'connection-specific field "upgrade" is not allowed in HTTP/2 (RFC 9113 8.2.2)'],
    [["keep-alive", "5"], 'connection-specific field "keep-alive" is not allowed in HTTP/2 (RFC 9113 8.2.2)'],
    [["proxy-connection", "x"], 'connection-specific field "proxy-connection" is not allowed in HTTP/2 (RFC 9113 8.2.2)'],
    [["X-Up", "1"], 'field name "X-Up" is not a lowercase token (RFC 9113 8.2.1)'],
    [["x:y", "1"], 'field name "x:y" is not a lowercase token (RFC 9113 8.2.1)'],
    [["x y", "1"], 'field name "x y" is not a lowercase token (RFC 9113 8.2.1)'],
    [["x-a", "1\r\nx-b: 2"], 'the value of "x-a" holds CR, LF or NUL'],
    [["x-a", "1\n"], 'the value of "x-a" holds CR, LF or NUL'],
    [["x-a", "\u0000"], 'the value of "x-a" holds CR, LF or NUL'],
    [["host", "evil.example"], 'Host "evil.example" disagrees with :authority "shop.example"'],
    [[":status", "200"], 'unknown pseudo-header ":status"'],
  ])("refuses %j", (extra, problem) => {
    expect(http1View(req(...extra))).toEqual({ raw: [], problem });
  });

  it("refuses two Host fields and a request naming no host at all", () => {
    expect(http1View([":method", "GET", ":path", "/", "host", "a", "host", "a"]).problem).toBe("more than one Host field");
    expect(http1View([":method", "GET", ":scheme", "https", ":path", "/"]).problem).toBe("neither :authority nor Host says which host the request is for");
  });

  it("never lets CR, LF or NUL through, whatever the fields (property)", () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
    const value = fc.string({ maxLength: 20 });
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 6 }), (fields) => {
        const v = http1View(req(...fields.flat()));
        if (v.problem === null) for (let i = 0; i < v.raw.length; i++) expect(v.raw[i]).not.toMatch(/[\r\n\0]/);
        if (fields.some(([, x]) => /[\r\n\0]/.test(x))) expect(v.problem).not.toBeNull();
      }),
    );
  });
});
