import { describe, expect, it } from "vitest";
import { canonicalPath, normalizePath } from "../../../src/routing/normalize.ts";

describe("normalizePath", () => {
  it.each([
    ["/", "/"],
    ["/api/1/ping", "/api/1/ping"],
    ["/api/1/ping?x=1", "/api/1/ping"],
    ["/api/1/./ping", "/api/1/ping"],
    ["/api//1///ping", "/api/1/ping"],
    ["/api/1/x/../ping", "/api/1/ping"],
    ["/api/1/%2e%2e/1/ping", "/api/1/ping"],
    ["/api/1/%2E/ping", "/api/1/ping"],
    ["/api/1/%70ing", "/api/1/ping"],
    ["/api/1/ping/", "/api/1/ping"],
    ["/api%2F1%2fping", "/api/1/ping"],
    ["/%7Euser", "/~user"],
    ["/../../etc/passwd", "/etc/passwd"],
    ["/a/b/../../..", "/"],
    ["//api/1/ping", "/api/1/ping"],
    ["/a%20b", "/a%20b"],
    ["/a%3Fb", "/a%3Fb"],
    ["/caf%C3%A9", "/caf%C3%A9"],
    ["/a%2", "/a%2"],
    ["/.hidden/x", "/.hidden/x"],
  ])("%s -> %s", (input, want) => expect(normalizePath(input)).toBe(want));
});

describe("canonicalPath", () => {
  it.each([
    ["/", "/"],
    ["/api/1/ping", "/api/1/ping"],
    ["/api/1/ping/", "/api/1/ping/"],
    ["/a/./b", "/a/b"],
    ["/a/b/.", "/a/b/"],
    ["/a/b/..", "/a/"],
    ["/a/b/../", "/a/"],
    ["/..", "/"],
    ["/../a", "/a"],
    ["//a///b", "/a/b"],
    ["/a%2Fb", "/a/b"],
    ["/a%2fb%2f..%2fc", "/a/c"],
    ["/%2e%2e/%2E%2e/x", "/x"],
    ["/%7euser", "/~user"],
    ["/a%5cb", "/a%5Cb"],
    ["/a\\b", "/a%5Cb"],
    ["/a%20b", "/a%20b"],
    ["/a%3fb", "/a%3Fb"],
    ["/a%252e", "/a%252e"],
    ["/a<b>", "/a%3Cb%3E"],
    ["/a\"b", "/a%22b"],
    ["/a{b}|c^d`", "/a%7Bb%7D%7Cc%5Ed%60"],
    ["/caf\u00e9", "/caf%E9"],
    ["/caf\u20ac", "/caf%E2%82%AC"],
    ["/a;b=c/d", "/a;b=c/d"],
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="],
    ["/.hidden", "/.hidden"],
    ["/a/..b", "/a/..b"],
    ["/a/...", "/a/..."],
  ])("%s -> %s", (input, want) => expect(canonicalPath(input)).toBe(want));

  it.each(["/a%", "/a%2", "/a%zz", "/a%g0", "/a%00", "/%0"])("%s has no canonical form", (input) => expect(canonicalPath(input)).toBeNull());

  it("returns the very same string when the path already is canonical (no allocation)", () => {
    const path = "/api/1/users/42/orders";
    expect(canonicalPath(path)).toBe(path);
  });

  it("is idempotent", () => {
    for (const p of ["/a/../b/%2e/c%2f%2e%2e/d\\e", "//x/./y/%7E/<z>", "/%41%2f%61/.."]) {
      const once = canonicalPath(p)!;
      expect(canonicalPath(once)).toBe(once);
    }
  });
});
