import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildUpstreamHeaders, isValidRequestId, readRequestHeaderFacts, type UpstreamHeaderContext } from "../../src/proxy/request-headers.ts";
import { buildClientHeaders, filterTrailers, rewriteLocation } from "../../src/proxy/response-headers.ts";

const ctx: UpstreamHeaderContext = {
  peerTrusted: false,
  peerIp: "203.0.113.7",
  clientIp: "203.0.113.7",
  clientHost: "shop.example",
  proto: "http",
  listenerPort: 8080,
  requestId: "rid-1",
  requestIdHeader: "X-Request-Id",
  requestIdLower: "x-request-id",
  hostOverride: undefined,
  drop: null,
};

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

function upstream(raw: string[], over: Partial<UpstreamHeaderContext> = {}) {
  const c = { ...ctx, ...over };
  const facts = readRequestHeaderFacts(raw, c.requestIdLower);
  return pairs(buildUpstreamHeaders(raw, facts, c));
}

const get = (p: [string, string][], name: string) => p.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

describe("request header facts", () => {
  it("counts Host headers and joins repeated list headers", () => {
    const f = readRequestHeaderFacts(["Host", "a", "host", "b", "X-Forwarded-For", "1.1.1.1", "x-forwarded-for", "2.2.2.2", "Transfer-Encoding", "chunked"], "x-request-id");
    expect(f.hostCount).toBe(2);
    expect(f.host).toBe("a");
    expect(f.forwardedFor).toBe("1.1.1.1, 2.2.2.2");
    expect(f.transferEncoding).toBe("chunked");
  });
});

describe("upstream headers", () => {
  it("keeps end-to-end headers with their case and order", () => {
    const h = upstream(["Host", "shop.example", "Accept", "text/html", "X-Custom-Case", "v", "Cookie", "a=1", "Cookie", "b=2"]);
    expect(h.slice(0, 5)).toEqual([["Host", "shop.example"], ["Accept", "text/html"], ["X-Custom-Case", "v"], ["Cookie", "a=1"], ["Cookie", "b=2"]]);
  });

  it("drops hop-by-hop headers and Expect", () => {
    const h = upstream(["Host", "h", "Connection", "keep-alive", "Keep-Alive", "timeout=5", "TE", "trailers", "Transfer-Encoding", "chunked",
      "Upgrade", "h2c", "Proxy-Connection", "x", "Proxy-Authorization", "Basic x", "Expect", "100-continue"]);
    expect(h.map(([k]) => k.toLowerCase()).filter((k) => !k.startsWith("x-"))).toEqual(["host"]);
  });

  it("drops headers named in Connection, but never lets the client remove the proxy's own", () => {
    const h = upstream(["Host", "h", "Connection", "X-Secret, X-Forwarded-For, X-Request-Id, X-Real-IP", "X-Secret", "s"]);
    expect(get(h, "x-secret")).toEqual([]);
    expect(get(h, "x-forwarded-for")).toEqual(["203.0.113.7"]);
    expect(get(h, "x-request-id")).toEqual(["rid-1"]);
    expect(get(h, "x-real-ip")).toEqual(["203.0.113.7"]);
  });

  it("replaces X-Forwarded-* from an untrusted client", () => {
    const h = upstream(["Host", "shop.example", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil", "X-Forwarded-Port", "1", "X-Real-IP", "6.6.6.6"]);
    expect(get(h, "x-forwarded-for")).toEqual(["203.0.113.7"]);
    expect(get(h, "x-forwarded-proto")).toEqual(["http"]);
    expect(get(h, "x-forwarded-host")).toEqual(["shop.example"]);
    expect(get(h, "x-forwarded-port")).toEqual(["8080"]);
    expect(get(h, "x-real-ip")).toEqual(["203.0.113.7"]);
  });

  it("extends X-Forwarded-* from a trusted proxy", () => {
    const h = upstream(
      ["Host", "internal", "X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example", "X-Forwarded-Port", "443"],
      { peerTrusted: true, peerIp: "10.0.0.2", clientIp: "1.2.3.4" },
    );
    expect(get(h, "x-forwarded-for")).toEqual(["1.2.3.4, 10.0.0.2"]);
    expect(get(h, "x-forwarded-proto")).toEqual(["https"]);
    expect(get(h, "x-forwarded-host")).toEqual(["shop.example"]);
    expect(get(h, "x-forwarded-port")).toEqual(["443"]);
    expect(get(h, "x-real-ip")).toEqual(["1.2.3.4"]);
  });

  it("fills X-Forwarded-* for a trusted proxy that sent none", () => {
    const h = upstream(["Host", "h"], { peerTrusted: true, peerIp: "10.0.0.2", clientIp: "10.0.0.2", proto: "https", listenerPort: 443 });
    expect(get(h, "x-forwarded-for")).toEqual(["10.0.0.2"]);
    expect(get(h, "x-forwarded-proto")).toEqual(["https"]);
    expect(get(h, "x-forwarded-port")).toEqual(["443"]);
  });

  it("overrides Host when asked (preserve_host off or absolute-form)", () => {
    const h = upstream(["Host", "shop.example", "Accept", "*/*"], { hostOverride: "127.0.0.1:5042" });
    expect(get(h, "host")).toEqual(["127.0.0.1:5042"]);
    expect(get(h, "x-forwarded-host")).toEqual(["shop.example"]);
  });

  it("replaces the client's request id with the chosen one, exactly once", () => {
    const h = upstream(["Host", "h", "x-request-id", "client-id", "X-Request-ID", "other"], { requestId: "client-id" });
    expect(get(h, "x-request-id")).toEqual(["client-id"]);
  });
});

describe("proxy-only headers", () => {
  it("never forwards the force-backend header or its secret", () => {
    const h = upstream(["Host", "h", "X-Switchyard-Backend", "new", "X-Switchyard-Secret", "s3cret", "X-Kept", "1"], { drop: new Set(["x-switchyard-backend", "x-switchyard-secret"]) });
    expect(h.map(([k]) => k).filter((k) => k.startsWith("X-S"))).toEqual([]);
    expect(get(h, "x-kept")).toEqual(["1"]);
  });
});

describe("request ids", () => {
  it.each(["abc", "9f05c304-197f-4e58-a976-9454199ec3b1", "trace:1/2+3=4@x", "a".repeat(200)])("accepts %j", (id) => expect(isValidRequestId(id)).toBe(true));
  it.each(["", "a b", "a\r\nX-Injected: 1", "a\"b", "a".repeat(201), "é"])("rejects %j", (id) => expect(isValidRequestId(id)).toBe(false));
});

describe("client headers", () => {
  const base = { requestIdHeader: "X-Request-Id", requestIdLower: "x-request-id", requestId: "rid", backendOrigin: "http://127.0.0.1:5043", publicOrigin: "https://shop.example", close: false, extra: null };

  it("keeps duplicates such as Set-Cookie, drops hop-by-hop and Connection-listed, sets the request id", () => {
    const raw = ["Content-Type", "text/plain", "Set-Cookie", "a=1", "Set-Cookie", "b=2", "Connection", "keep-alive, X-Internal", "X-Internal", "secret",
      "Keep-Alive", "timeout=4", "Transfer-Encoding", "chunked", "X-Request-Id", "backend-id", "Trailer", "X-Checksum"].map((s) => Buffer.from(s, "latin1"));
    expect(pairs(buildClientHeaders(raw, base))).toEqual([
      ["Content-Type", "text/plain"], ["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"], ["Trailer", "X-Checksum"], ["X-Request-Id", "rid"],
    ]);
  });

  it("drops exactly what the rule says for any header list, any case (property)", () => {
    // The rule written plainly (the builder skips lowercasing names no rule can match, so it is
    // checked against this on random lists mixing every name it acts on with ordinary ones).
    const hop = ["connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"];
    const reference = (raw: string[], requestIdLower: string): string[] => {
      const listed = new Set<string>();
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.toLowerCase() !== "connection") continue;
        for (const t of raw[i + 1]!.toLowerCase().split(",")) if (t.trim() !== "" && t.trim() !== "keep-alive" && t.trim() !== "close") listed.add(t.trim());
      }
      const out: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const lower = raw[i]!.toLowerCase();
        if (hop.includes(lower) || lower === requestIdLower || listed.has(lower)) continue;
        out.push(raw[i]!, lower === "location" ? rewriteLocation(raw[i + 1]!, base.backendOrigin, base.publicOrigin) : raw[i + 1]!);
      }
      return out;
    };
    const names = fc.constantFrom(...hop, "location", "x-request-id", "x-trace", "x-internal", "content-type", "set-cookie", "date", "server", "etag", "x-a", "x-listed-by-name");
    const anyCase = (n: string) => fc.array(fc.boolean(), { minLength: n.length, maxLength: n.length }).map((up) => [...n].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(""));
    const value = fc.oneof(fc.constantFrom("keep-alive", "close", "X-Internal", "keep-alive, x-listed-by-name", "x-trace ,, Etag", "http://127.0.0.1:5043/a", "v"), fc.string({ maxLength: 8 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(names.chain(anyCase), value), { maxLength: 12 }), fc.constantFrom("x-request-id", "x-trace", "request-id"), (list, requestIdLower) => {
        const raw = list.flat();
        const got = buildClientHeaders(raw.map((x) => Buffer.from(x, "latin1")), { ...base, requestIdLower });
        expect(got).toEqual([...reference(raw, requestIdLower), base.requestIdHeader, base.requestId]);
      }),
      { numRuns: 3000 },
    );
  });

  it("asks the client to close while draining", () => {
    expect(pairs(buildClientHeaders([], { ...base, close: true }))).toContainEqual(["connection", "close"]);
  });

  it("rewrites Location on the backend's origin only", () => {
    const raw = ["Location", "http://127.0.0.1:5043/login?next=/a"];
    expect(get(pairs(buildClientHeaders(raw, base)), "location")).toEqual(["https://shop.example/login?next=/a"]);
    expect(get(pairs(buildClientHeaders(raw, { ...base, backendOrigin: null })), "location")).toEqual(["http://127.0.0.1:5043/login?next=/a"]);
  });

  it.each([
    ["http://127.0.0.1:5043", "https://shop.example"],
    ["http://127.0.0.1:5043/", "https://shop.example/"],
    ["http://127.0.0.1:5043?x=1", "https://shop.example?x=1"],
    ["http://127.0.0.1:50430/x", "http://127.0.0.1:50430/x"],
    ["/relative", "/relative"],
    ["https://other.example/", "https://other.example/"],
  ])("rewriteLocation(%j) = %j", (loc, want) => expect(rewriteLocation(loc, "http://127.0.0.1:5043", "https://shop.example")).toBe(want));

  it("filters trailers", () => {
    expect(filterTrailers({ "x-checksum": "abc", connection: "close", "server-timing": ["a", "b"] })).toEqual([["x-checksum", "abc"], ["server-timing", "a"], ["server-timing", "b"]]);
  });
});
