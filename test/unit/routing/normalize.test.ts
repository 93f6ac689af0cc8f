import { describe, expect, it } from "vitest";
import { normalizePath } from "../../../src/routing/normalize.ts";

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
