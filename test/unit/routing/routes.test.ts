import { describe, expect, it } from "vitest";
import { compareSpecificity, findTies, parseRoute, routeMatches, sortBySpecificity, splitPath, type CompiledRoute } from "../../../src/routing/routes.ts";
import { configErrors } from "../../helpers/routing.ts";

const match = (route: string | { path: string; methods?: string[]; host?: string }, method: string, path: string, host?: string) =>
  routeMatches(parseRoute(route), method, host, splitPath(path));

describe("route patterns", () => {
  it.each([
    ["GET /api/1/ping", "GET", "/api/1/ping", true],
    ["GET /api/1/ping", "POST", "/api/1/ping", false],
    ["GET /api/1/ping", "GET", "/api/1/ping/x", false],
    ["GET,HEAD /api/1/ping", "HEAD", "/api/1/ping", true],
    ["/api/1/ping", "DELETE", "/api/1/ping", true],
    ["* /api/1/ping", "PATCH", "/api/1/ping", true],
    ["/api/1/*/info", "GET", "/api/1/x/info", true],
    ["/api/1/*/info", "GET", "/api/1/info", false],
    ["/users/:id/settings", "GET", "/users/42/settings", true],
    ["/users/:id/settings", "GET", "/users/settings", false],
    ["/api/1/history/**", "GET", "/api/1/history", true],
    ["/api/1/history/**", "GET", "/api/1/history/events/2", true],
    ["/api/1/history/**", "GET", "/api/1/historyx", false],
    ["/**", "GET", "/", true],
    ["/api/", "GET", "/api", true],
    ["/", "GET", "/", true],
    ["/", "GET", "/x", false],
  ])("%s vs %s %s -> %s", (route, method, path, want) => expect(match(route, method, path)).toBe(want));

  it("matches hosts exactly or by wildcard, ignoring port and case", () => {
    expect(match({ path: "/x", host: "api.example.com" }, "GET", "/x", "API.example.com:8443")).toBe(true);
    expect(match({ path: "/x", host: "api.example.com" }, "GET", "/x", "www.example.com")).toBe(false);
    expect(match({ path: "/x", host: "*.example.com" }, "GET", "/x", "eu.api.example.com")).toBe(true);
    expect(match({ path: "/x", host: "*.example.com" }, "GET", "/x", "example.com")).toBe(false);
    expect(match({ path: "/x", host: "api.example.com" }, "GET", "/x", undefined)).toBe(false);
  });

  it.each([
    ["api/1", /must start with "\/"/],
    ["GET /a /b", /expected "METHOD \/path"/],
    ["get /a", /upper-case HTTP method/],
    ["/a/**/b", /may only end/],
    ["/a/:1x", /parameter such as :id/],
    ["/a?x=1", /query or fragment/],
    ["/a/b*", /unsupported segment/],
  ])("rejects %j", (route, message) => expect(() => parseRoute(route)).toThrow(message));
});

describe("specificity", () => {
  const order = (...routes: string[]) => {
    const compiled: CompiledRoute<string>[] = routes.map((r, i) => ({ ...parseRoute(r), target: r, order: i }));
    return sortBySpecificity(compiled).map((r) => r.target);
  };

  it("literal beats param beats rest, longer beats its prefix, methods beat any", () => {
    expect(order("/**", "/api/**", "/api/1/*", "/api/1/ping", "GET /api/1/ping", "/api/:v/ping")).toEqual([
      "GET /api/1/ping", "/api/1/ping", "/api/1/*", "/api/:v/ping", "/api/**", "/**",
    ]);
  });

  it("a host beats no host; an exact host beats a wildcard", () => {
    const a = parseRoute({ path: "/**", host: "api.example.com" });
    const b = parseRoute({ path: "/**", host: "*.example.com" });
    const c = parseRoute("GET /api/1/ping");
    expect(compareSpecificity(a, b)).toBeLessThan(0);
    expect(compareSpecificity(b, c)).toBeLessThan(0);
  });

  it("finds ties only where both routes can match one request", () => {
    const compiled = (rs: string[]) => rs.map((r, i) => ({ ...parseRoute(r), target: r, order: i }));
    expect(findTies(compiled(["/a/*", "/a/:id"]))).toHaveLength(1);
    expect(findTies(compiled(["GET /a", "GET,POST /a"]))).toHaveLength(1);
    expect(findTies(compiled(["GET /a", "POST /a"]))).toHaveLength(0);
    expect(findTies(compiled(["/a/x", "/a/y"]))).toHaveLength(0);
    expect(findTies(compiled(["/a/*", "/a/**"]))).toHaveLength(0);
  });

  it("reports a tie across features at check time with file, line and field", () => {
    const errors = configErrors("features:\n  one:\n    routes: ['/api/:v/ping']\n    target: new\n  two:\n    routes:\n      - GET /x\n      - /api/*/ping\n    target: legacy\n");
    expect(errors).toEqual([
      'routing-test.yaml:15:9: features.two.routes[1]: route "/api/*/ping" is as specific as "/api/:v/ping" (feature one) and both match the same requests; make one more specific or merge them',
    ]);
  });

  it("workers: auto or 1..256, anything else located with the fix", () => {
    expect(configErrors("workers: auto\n")).toEqual([]);
    expect(configErrors("workers: 4\n")).toEqual([]);
    for (const bad of ["0", "1.5", "all", "257"]) {
      expect(configErrors(`workers: ${bad}\n`), bad).toEqual([`routing-test.yaml:8:10: workers: expected "auto" (one per CPU core) or a whole number of workers from 1 to 256 (got ${bad === "all" ? '"all"' : bad})`]);
    }
  });

  it("control.store: file or a Redis URL, located errors otherwise", () => {
    expect(configErrors("control:\n  store: redis://redis:6379/0\n")).toEqual([]);
    expect(configErrors("control:\n  store: rediss://user:pw@redis.example:6380\n  prefix: fleet-a\n")).toEqual([]);
    expect(configErrors("control:\n  store: mysql://x\n")).toEqual(['routing-test.yaml:9:10: control.store: expected "file" or a Redis URL such as redis://redis:6379/0 (got "mysql://x")']);
    expect(configErrors("control:\n  prefix: 'a b'\n")).toEqual(['routing-test.yaml:9:11: control.prefix: expected letters, digits, : _ or - (got "a b")']);
  });

  it("reports bad routes and targets with their field path", () => {
    const errors = configErrors("features:\n  Bad-Name:\n    routes: ['/x']\n    target: new\n  empty:\n    routes: []\n    target: maybe\n  ok:\n    routes: ['api']\n    target: { percent: 12.345 }\n");
    expect(errors.map((e) => e.replace(/^routing-test.yaml:\d+:\d+: /, ""))).toEqual([
      'features.Bad-Name: expected a feature name of lowercase letters, digits, _ or - (got "Bad-Name")',
      "features.empty.routes: a feature needs at least one route (got [])",
      'features.empty.target: expected legacy, new, or { percent: N } (got "maybe")',
      'features.ok.routes[0]: a route path must start with "/", got "api"',
      "features.ok.target.percent: a percentage has at most two decimals (0.01 % steps)",
    ]);
  });
});

describe("route index (trie) agrees with the sorted list", () => {
  it("finds the same route as a linear scan for many requests", async () => {
    const { buildRouteIndex } = await import("../../../src/routing/route-index.ts");
    const patterns = [
      "/**", "/api/**", "GET /api/1/ping", "/api/1/ping", "/api/1/*", "/api/:v/ping", "/api/1/*/info", "POST /api/1/:id/run",
      "/api/1/history/**", "GET,HEAD /api/1/history/events", { path: "/**", host: "admin.example.com" }, { path: "/api/**", host: "*.example.com" }, "/",
    ];
    const compiled = sortBySpecificity(patterns.map((p, i) => ({ ...parseRoute(p), target: i, order: i })));
    const index = buildRouteIndex(compiled);
    const paths = ["/", "/x", "/api", "/api/1", "/api/1/ping", "/api/2/ping", "/api/1/x/info", "/api/1/7/run", "/api/1/history", "/api/1/history/events", "/api/1/history/events/9", "/api/1/a/b/c"];
    for (const method of ["GET", "POST", "HEAD", "DELETE"]) {
      for (const host of [undefined, "admin.example.com", "eu.example.com", "other.org"]) {
        for (const path of paths) {
          const segs = splitPath(path);
          const linear = compiled.find((r) => routeMatches(r, method, host, segs)) ?? null;
          expect(index.find(method, host, segs)?.target ?? null, `${method} ${host} ${path}`).toBe(linear?.target ?? null);
        }
      }
    }
  });
});
