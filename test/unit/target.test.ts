import { describe, expect, it } from "vitest";
import { classifyUpstreamError, tlsFailureDetail } from "../../src/forward/classify.ts";
import { ProxyError } from "../../src/errors/codes.ts";
import { parseTarget } from "../../src/proxy/handler.ts";

describe("parseTarget", () => {
  it.each([
    ["/", "/"], ["/a/b?c=%41&d", "/a/b?c=%41&d"], ["//double", "//double"], ["/a/../b", "/a/../b"], ["/%2e%2e/x", "/%2e%2e/x"],
  ])("keeps origin-form %j byte for byte", (url, path) => expect(parseTarget(url)).toEqual({ path, authority: undefined }));

  it.each([
    ["http://shop.example/a?b", "/a?b", "shop.example"],
    ["HTTP://shop.example:8080", "/", "shop.example:8080"],
    ["https://shop.example?x=1", "/?x=1", "shop.example"],
  ])("turns absolute-form %j into origin-form", (url, path, authority) => expect(parseTarget(url)).toEqual({ path, authority }));

  it.each(["*", "", "a/b", "/a#frag", "ftp://x/", "http://user@evil/x", "http:///x"])("refuses %j", (url) => expect(parseTarget(url)).toBeNull());
});

describe("classifyUpstreamError", () => {
  const err = (code: string, cause?: string) => Object.assign(new Error(code), { code, ...(cause && { cause: { code: cause } }) });
  it.each([
    ["ECONNREFUSED", "SY_UPSTREAM_CONNECT_REFUSED"],
    ["ECONNRESET", "SY_UPSTREAM_RESET"],
    ["UND_ERR_SOCKET", "SY_UPSTREAM_RESET"],
    ["UND_ERR_CONNECT_TIMEOUT", "SY_UPSTREAM_CONNECT_TIMEOUT"],
    ["UND_ERR_HEADERS_TIMEOUT", "SY_UPSTREAM_HEADERS_TIMEOUT"],
    ["UND_ERR_BODY_TIMEOUT", "SY_UPSTREAM_BODY_TIMEOUT"],
    ["HPE_INVALID_CONSTANT", "SY_UPSTREAM_BAD_RESPONSE"],
    ["HPE_SOMETHING_NEW", "SY_UPSTREAM_BAD_RESPONSE"],
    ["ENOTFOUND", "SY_UPSTREAM_UNREACHABLE"],
    ["EWHATEVER", "SY_UPSTREAM_RESET"],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", "SY_UPSTREAM_TLS"],
    ["SELF_SIGNED_CERT_IN_CHAIN", "SY_UPSTREAM_TLS"],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "SY_UPSTREAM_TLS"],
    ["CERT_HAS_EXPIRED", "SY_UPSTREAM_TLS"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "SY_UPSTREAM_TLS"],
    ["ERR_SSL_WRONG_VERSION_NUMBER", "SY_UPSTREAM_TLS"],
    ["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "SY_UPSTREAM_TLS"],
    ["ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC", "SY_UPSTREAM_RESET"],
  ])("%s -> %s", (code, want) => expect(classifyUpstreamError(err(code))).toBe(want));

  it.each([
    ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "trust the CA that signed the backend's certificate with backends.new.tls.ca"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "set backends.new.tls.server_name to a name the certificate is issued to"],
    ["CERT_HAS_EXPIRED", "renew it on the backend"],
    ["ERR_SSL_WRONG_VERSION_NUMBER", "use http:// in backends.new.url"],
    ["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "backends.new.tls.cert and key"],
  ])("a TLS failure %s names the setting to change", (code, hint) => expect(tlsFailureDetail(err(code), "new")).toContain(hint));

  it("looks at the cause", () => expect(classifyUpstreamError(err("UND_ERR_X_WRAPPED", "ECONNREFUSED"))).toBe("SY_UPSTREAM_CONNECT_REFUSED"));
  it("keeps our own codes", () => expect(classifyUpstreamError(new ProxyError("SY_BODY_TOO_LARGE"))).toBe("SY_BODY_TOO_LARGE"));
  it("knows undici's parser errors without a code", () => {
    expect(classifyUpstreamError(Object.assign(new Error("Response does not match the HTTP/1.1 protocol"), { name: "HTTPParserError" }))).toBe("SY_UPSTREAM_BAD_RESPONSE");
  });
  it("calls a bug a bug", () => expect(classifyUpstreamError(new TypeError("x is undefined"))).toBe("SY_INTERNAL"));
});
