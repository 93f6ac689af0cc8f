import { describe, expect, it } from "vitest";
import { decide, describeDecision, stickyCookie } from "../../../src/routing/decide.ts";
import { bucketOf } from "../../../src/routing/hash.ts";
import { cookieValue, jwtClaim, queryValue } from "../../../src/routing/identity.ts";
import { facts, tableFrom } from "../../helpers/routing.ts";

const FEATURES = `features:
  ping:
    routes: [GET /api/1/ping]
    pilot: true
    target: new
  settings:
    routes: [/api/1/settings/**]
    target: new
  reports:
    routes: [/api/1/reports/**]
    target: { percent: 25 }
    users:
      allow: [alice]
      deny: [bob]
  off:
    routes: [/api/1/off]
    enabled: false
    target: new
`;

const jwt = (payload: object) => `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;

describe("decide: modes and switches", () => {
  const t = (routing = "") => tableFrom(`${routing ? `routing:\n${routing}` : ""}${FEATURES}`);

  it("mixed: every feature follows its settings; unmatched goes to the default", () => {
    expect(decide(facts({ target: "/api/1/ping" }), t())).toMatchObject({ backend: "new", feature: "ping", reason: "feature_target", route: "GET /api/1/ping" });
    expect(decide(facts({ target: "/api/1/settings/x" }), t())).toMatchObject({ backend: "new", feature: "settings" });
    expect(decide(facts({ target: "/elsewhere" }), t())).toMatchObject({ backend: "legacy", feature: null, reason: "no_feature" });
    expect(decide(facts({ target: "/elsewhere" }), t("  default_backend: new\n"))).toMatchObject({ backend: "new", reason: "no_feature" });
  });

  it("pilot: only pilot features leave legacy", () => {
    const table = t("  mode: pilot\n");
    expect(decide(facts({ target: "/api/1/ping" }), table)).toMatchObject({ backend: "new", reason: "feature_target" });
    expect(decide(facts({ target: "/api/1/settings/x" }), table)).toMatchObject({ backend: "legacy", feature: "settings", reason: "not_in_pilot" });
  });

  it("disabled sends everything legacy, full everything new", () => {
    expect(decide(facts({ target: "/api/1/ping" }), t("  mode: disabled\n"))).toMatchObject({ backend: "legacy", reason: "mode_disabled", feature: null });
    expect(decide(facts({ target: "/elsewhere" }), t("  mode: full\n"))).toMatchObject({ backend: "new", reason: "mode_full" });
  });

  it("the kill switch beats everything, even mode full and a forced backend", () => {
    const table = t("  mode: full\n  kill_switch: true\n  force:\n    enabled: true\n    trusted_cidrs: [0.0.0.0/0]\n");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "new" } }), table)).toMatchObject({ backend: "legacy", reason: "kill_switch" });
  });

  it("a disabled feature goes legacy", () => {
    expect(decide(facts({ target: "/api/1/off" }), t())).toMatchObject({ backend: "legacy", feature: "off", reason: "feature_disabled" });
  });

  it("matches on the normalised path, so /./, // and %2e%2e cannot dodge a route", () => {
    for (const target of ["/api/1/./ping", "/api//1/ping", "/api/1/x/%2e%2e/ping", "/api/1/%70ing?x=1", "/api/1/ping/"]) {
      expect(decide(facts({ target }), t()).feature, target).toBe("ping");
    }
  });

  it("method and most-specific route decide between features", () => {
    const table = tableFrom("features:\n  all:\n    routes: ['/api/**']\n    target: legacy\n  one:\n    routes: ['POST /api/1/jobs']\n    target: new\n");
    expect(decide(facts({ method: "POST", target: "/api/1/jobs" }), table).feature).toBe("one");
    expect(decide(facts({ method: "GET", target: "/api/1/jobs" }), table).feature).toBe("all");
  });
});

describe("decide: users", () => {
  const table = tableFrom(FEATURES);
  const reports = (over: Parameters<typeof facts>[0]) => decide(facts({ target: "/api/1/reports/daily", ...over }), table);

  it("buckets a user by salt and key: new iff bucket < percent x 100", () => {
    for (const user of ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]) {
      const d = reports({ user });
      const bucket = bucketOf("switchyard", user);
      expect(d).toMatchObject({ reason: "user_bucket", bucket, threshold: 2500, backend: bucket < 2500 ? "new" : "legacy" });
      expect(d.identity).toEqual({ source: "header x-user-id", key: user, minted: false });
    }
  });

  it("is sticky: the same user always gets the same answer", () => {
    const first = reports({ user: "carol" }).backend;
    for (let i = 0; i < 20; i++) expect(reports({ user: "carol", requestId: `r${i}` }).backend).toBe(first);
  });

  it("deny beats allow beats the bucket", () => {
    expect(reports({ user: "bob" })).toMatchObject({ backend: "legacy", reason: "user_denied" });
    expect(reports({ user: "alice" })).toMatchObject({ backend: "new", reason: "user_allowed" });
  });

  it("mints a sticky id for an anonymous client and hashes it like a user id", () => {
    const d = reports({ mintId: () => "fresh-id" });
    expect(d.identity).toEqual({ source: "sticky cookie sy_uid", key: "fresh-id", minted: true });
    expect(d.bucket).toBe(bucketOf("switchyard", "fresh-id"));
    expect(stickyCookie(table, "fresh-id", false)).toBe("sy_uid=fresh-id; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly");
    expect(stickyCookie(table, "fresh-id", true)).toMatch(/; Secure$/);
  });

  it("uses a returning client's sticky cookie and mints nothing", () => {
    let minted = 0;
    const d = reports({ headers: { cookie: "theme=dark; sy_uid=abc-123" }, mintId: () => `m${++minted}` });
    expect(d.identity).toEqual({ source: "sticky cookie sy_uid", key: "abc-123", minted: false });
    expect(minted).toBe(0);
  });

  it("does not mint an id for features that need none", () => {
    let minted = 0;
    decide(facts({ target: "/api/1/ping", mintId: () => `m${++minted}` }), table);
    expect(minted).toBe(0);
  });
});

describe("decide: identity sources, first match wins", () => {
  const table = tableFrom(`routing:
  identity:
    sources:
      - header: X-User-Id
      - jwt: { header: Authorization, claim: uid }
      - jwt: { cookie: token }
      - cookie: session_user
      - query: user_id
      - client_ip
features:
  r:
    routes: ["/**"]
    target: { percent: 50 }
`);
  const who = (over: Parameters<typeof facts>[0]) => decide(facts(over), table).identity;

  it.each([
    ["header", { headers: { "x-user-id": "h1", authorization: `Bearer ${jwt({ uid: "j1" })}` } }, "header x-user-id", "h1"],
    ["jwt header claim", { headers: { authorization: `Bearer ${jwt({ uid: 77, sub: "x" })}` } }, "jwt uid from header authorization", "77"],
    ["jwt cookie", { headers: { cookie: `token=${jwt({ sub: "s9" })}` } }, "jwt sub from cookie token", "s9"],
    ["cookie", { headers: { cookie: "a=1; session_user=c1" } }, "cookie session_user", "c1"],
    ["query", { target: "/x?a=1&user_id=q%201" }, "query user_id", "q 1"],
    ["client ip", {}, "client ip", "203.0.113.9"],
  ])("%s", (_name, over, source, key) => expect(who(over as Parameters<typeof facts>[0])).toMatchObject({ source, key }));

  it("skips a malformed JWT and an empty header", () => {
    expect(who({ headers: { "x-user-id": "  ", authorization: "Bearer not.a.jwt" } })).toMatchObject({ source: "client ip" });
  });

  it("unidentified traffic follows the unidentified policy", () => {
    const t2 = tableFrom("routing:\n  identity:\n    sources: [{header: X-User-Id}]\nfeatures:\n  r:\n    routes: ['/**']\n    target: { percent: 50 }\n    unidentified: new\n");
    expect(decide(facts({}), t2)).toMatchObject({ backend: "new", reason: "unidentified", identity: null });
  });

  it("weights split unidentified traffic per request, replayably", () => {
    const t3 = tableFrom("routing:\n  identity:\n    sources: []\nfeatures:\n  r:\n    routes: ['/**']\n    target: { percent: 30 }\n    unidentified: { legacy: 70, new: 30 }\n");
    const n = 20_000;
    let onNew = 0;
    for (let i = 0; i < n; i++) {
      const d = decide(facts({ requestId: `req-${i}` }), t3);
      expect(d.reason).toBe("weighted");
      if (d.backend === "new") onNew++;
    }
    expect(Math.abs((100 * onNew) / n - 30)).toBeLessThan(1);
    expect(decide(facts({ requestId: "req-5" }), t3)).toEqual(decide(facts({ requestId: "req-5" }), t3));
  });
});

describe("identity helpers", () => {
  it("reads cookies", () => {
    expect(cookieValue("a=1; b=2;c=3", "c")).toBe("3");
    expect(cookieValue('a="quoted"', "a")).toBe("quoted");
    expect(cookieValue("ab=1", "a")).toBeUndefined();
    expect(cookieValue("a=", "a")).toBeUndefined();
    expect(cookieValue(undefined, "a")).toBeUndefined();
  });
  it("reads query parameters", () => {
    expect(queryValue("/x?a=1&b=%41+b", "b")).toBe("A b");
    expect(queryValue("/x?a", "a")).toBeUndefined();
    expect(queryValue("/x", "a")).toBeUndefined();
    expect(queryValue("/x?a=%E0%A4%A", "a")).toBe("%E0%A4%A");
  });
  it("reads JWT claims without verifying", () => {
    expect(jwtClaim(jwt({ sub: "u" }), "sub")).toBe("u");
    expect(jwtClaim(jwt({ sub: { nested: 1 } }), "sub")).toBeUndefined();
    expect(jwtClaim("a.b", "sub")).toBeUndefined();
    expect(jwtClaim("a.!!!.c", "sub")).toBeUndefined();
  });
});

describe("decide: force override", () => {
  const withForce = (force: string) => tableFrom(`routing:\n  force:\n${force}${FEATURES}`);

  it("is ignored unless enabled", () => {
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "legacy" } }), tableFrom(FEATURES)).backend).toBe("new");
  });

  it("is honoured from a trusted CIDR, by header or cookie", () => {
    const table = withForce("    enabled: true\n    trusted_cidrs: [203.0.113.0/24]\n");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "legacy" } }), table)).toMatchObject({ backend: "legacy", reason: "forced" });
    expect(decide(facts({ target: "/elsewhere", headers: { cookie: "sy_backend=new" } }), table)).toMatchObject({ backend: "new", reason: "forced" });
  });

  it("is refused from elsewhere without the secret, and accepted with it", () => {
    const table = withForce("    enabled: true\n    trusted_cidrs: [10.0.0.0/8]\n    secret: s3cret\n");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "legacy" } }), table).reason).toBe("feature_target");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "legacy", "x-switchyard-secret": "wrong!" } }), table).reason).toBe("feature_target");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "legacy", "x-switchyard-secret": "s3cret" } }), table)).toMatchObject({ backend: "legacy", reason: "forced" });
  });

  it("ignores values other than legacy and new", () => {
    const table = withForce("    enabled: true\n    trusted_cidrs: [0.0.0.0/0]\n");
    expect(decide(facts({ target: "/api/1/ping", headers: { "x-switchyard-backend": "canary" } }), table).reason).toBe("feature_target");
  });
});

describe("describeDecision", () => {
  it("names backend, reason, feature and bucket", () => {
    const d = decide(facts({ target: "/api/1/reports/x", user: "dave" }), tableFrom(FEATURES));
    expect(describeDecision(d)).toMatch(/^backend=(new|legacy); reason=user_bucket; feature=reports; bucket=\d+\/2500$/);
  });
});
