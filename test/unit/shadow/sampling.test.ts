// Which requests are mirrored, where to, and what reaches the store.
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/config/load.ts";
import type { Config } from "../../../src/config/schema.ts";
import { redactDiffs, redactTarget, redactValue, REDACTED } from "../../../src/shadow/redact.ts";
import { bucketOf } from "../../../src/routing/hash.ts";
import { chooseShadow, compileShadowPlan } from "../../../src/shadow/settings.ts";

const HEAD = `listeners: [{ port: 8080 }]
backends:
  legacy: { url: "http://127.0.0.1:5042" }
  new: { url: "http://127.0.0.1:5043" }
`;
function config(text: string): Config {
  const r = parseConfigText(`${HEAD}${text}`, "t.yaml", {});
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join("\n"));
  return r.config;
}
const errors = (text: string) => {
  const r = parseConfigText(`${HEAD}${text}`, "t.yaml", {});
  return r.ok ? [] : r.errors.map((e) => e.format());
};

const facts = (o: Partial<Parameters<typeof chooseShadow>[2]> = {}) => ({ method: "GET", bodyBytes: 0, requestId: "r-1", userKey: null, primary: "legacy" as const, ...o });

describe("shadow config", () => {
  it("refuses unsafe methods without the opt-in, globally and per feature", () => {
    expect(errors("shadow:\n  methods: [GET, POST]\n")).toEqual([expect.stringMatching(/shadow\.methods: only GET, HEAD and OPTIONS may be mirrored globally/)]);
    expect(errors("features:\n  f:\n    routes: [/f]\n    target: new\n    shadow:\n      methods: [POST]\n")).toEqual([expect.stringMatching(/features\.f\.shadow\.methods: POST may write: .*allow_unsafe: true/)]);
    expect(errors("features:\n  f:\n    routes: [/f]\n    target: new\n    shadow:\n      methods: [POST]\n      allow_unsafe: true\n")).toEqual([]);
    expect(errors("shadow:\n  compare:\n    ignore_paths: [generated_at]\n")).toEqual([expect.stringMatching(/expected a JSON path such as \$\.generated_at/)]);
    expect(errors("shadow:\n  compare:\n    presets: [django]\n")).toEqual([expect.stringMatching(/expected a preset: validation_status, .*flask_fastapi/)]);
    expect(errors("shadow:\n  percent: 101\n")).toHaveLength(1);
  });
});

describe("chooseShadow", () => {
  const plan = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 100\n  noise:\n    percent: 0\n"));
  it("samples by the bucket of \"shadow:req:<id>\" (or \"shadow:user:<key>\"), the same in every process and version", () => {
    const at = (percent: number, sampleBy = "request") => compileShadowPlan(config(`shadow:\n  enabled: true\n  percent: ${percent}\n  sample_by: ${sampleBy}\n  noise:\n    percent: 0\n`));
    const ten = at(10);
    const byUser = at(10, "user");
    const ids = Array.from({ length: 2000 }, (_, i) => `${i.toString(36)}-${(i * 7919).toString(16)}`);
    const mirrored = ids.filter((id) => chooseShadow(ten, ten.global, facts({ requestId: id })).mirror);
    expect(mirrored).toEqual(ids.filter((id) => bucketOf("shadow", `req:${id}`) < 1000));
    expect(mirrored.length).toBeGreaterThan(150);
    expect(mirrored.length).toBeLessThan(250);
    const users = ids.filter((id) => chooseShadow(byUser, byUser.global, facts({ userKey: id })).mirror);
    expect(users).toEqual(ids.filter((id) => bucketOf("shadow", `user:${id}`) < 1000));
    // The ends (decided without hashing) and the smallest step: 0 % none, 100 % all, 0.01 % bucket 0 only.
    const none = at(0);
    const all = at(100);
    const least = at(0.01);
    expect(ids.filter((id) => chooseShadow(none, none.global, facts({ requestId: id })).mirror)).toEqual([]);
    expect(chooseShadow(none, none.global, facts())).toEqual({ mirror: false, reason: "sample" });
    expect(ids.filter((id) => chooseShadow(all, all.global, facts({ requestId: id })).mirror)).toEqual(ids);
    const many = Array.from({ length: 40_000 }, (_, i) => `id-${i}`);
    const picked = many.filter((id) => chooseShadow(least, least.global, facts({ requestId: id })).mirror);
    expect(picked).toEqual(many.filter((id) => bucketOf("shadow", `req:${id}`) === 0));
    expect(picked.length).toBeGreaterThan(0);
  });
  it("mirrors to the backend that did not serve", () => {
    expect(chooseShadow(plan, plan.global, facts())).toEqual({ mirror: true, target: "new", replay: false });
    expect(chooseShadow(plan, plan.global, facts({ primary: "new" }))).toEqual({ mirror: true, target: "legacy", replay: false });
  });
  it("skips by method, body size and direction with the reason", () => {
    expect(chooseShadow(plan, plan.global, facts({ method: "POST", bodyBytes: 10 }))).toEqual({ mirror: false, reason: "method" });
    const big = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 100\n  max_body_size: 10\nfeatures:\n  f:\n    routes: [/f]\n    target: new\n    shadow:\n      methods: [POST]\n      allow_unsafe: true\n"));
    expect(chooseShadow(big, big.features.get("f")!, facts({ method: "POST", bodyBytes: 11 }))).toEqual({ mirror: false, reason: "body_too_large" });
    expect(chooseShadow(big, big.features.get("f")!, facts({ method: "POST", bodyBytes: 10 }))).toMatchObject({ mirror: true });
    const toNew = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 100\n  direction: to_new\n"));
    expect(chooseShadow(toNew, toNew.global, facts({ primary: "new" }))).toEqual({ mirror: false, reason: "direction" });
    expect(chooseShadow(toNew, toNew.global, facts({ primary: "legacy" }))).toMatchObject({ mirror: true, target: "new" });
  });
  it("is off (reason null, not counted) when disabled", () => {
    const off = compileShadowPlan(config(""));
    expect(off.enabled).toBe(false);
    expect(chooseShadow(off, off.global, facts())).toEqual({ mirror: false, reason: null });
  });
  it("samples about the configured share, deterministically per request id or per user", () => {
    const ten = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 10\n"));
    let n = 0;
    for (let i = 0; i < 20_000; i++) if (chooseShadow(ten, ten.global, facts({ requestId: `req-${i}` })).mirror) n++;
    expect(n / 20_000).toBeGreaterThan(0.09);
    expect(n / 20_000).toBeLessThan(0.11);
    expect(chooseShadow(ten, ten.global, facts({ requestId: "req-7" }))).toEqual(chooseShadow(ten, ten.global, facts({ requestId: "req-7" })));
    const byUser = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 50\n  sample_by: user\n"));
    for (const user of ["alice", "bob", "carol", "dave"]) {
      const first = chooseShadow(byUser, byUser.global, facts({ userKey: user, requestId: "a" })).mirror;
      for (let i = 0; i < 20; i++) expect(chooseShadow(byUser, byUser.global, facts({ userKey: user, requestId: `x${i}` })).mirror).toBe(first);
    }
  });
  it("replays a share of safe requests to learn noise", () => {
    const p = compileShadowPlan(config("shadow:\n  enabled: true\n  percent: 100\n  noise:\n    percent: 25\n"));
    let replays = 0;
    for (let i = 0; i < 8000; i++) if ((chooseShadow(p, p.global, facts({ requestId: `q${i}` })) as { replay?: boolean }).replay) replays++;
    expect(replays / 8000).toBeGreaterThan(0.23);
    expect(replays / 8000).toBeLessThan(0.27);
  });
  it("lets a feature override the global settings and merge ignore paths", () => {
    const p = compileShadowPlan(config("shadow:\n  enabled: false\n  compare:\n    ignore_paths: [$.a]\nfeatures:\n  f:\n    routes: [/f]\n    target: new\n    shadow:\n      enabled: true\n      percent: 100\n      compare:\n        ignore_paths: [$.b]\n        presets: [flask_fastapi]\n"));
    const f = p.features.get("f")!;
    expect(p.enabled).toBe(true);
    expect(f.enabled).toBe(true);
    expect(p.global.enabled).toBe(false);
    expect(f.compare.ignore("$.a")).toBe(true);
    expect(f.compare.ignore("$.b.c")).toBe(true);
    expect(f.compare.ignore("$.c")).toBe(false);
    expect(f.presets).toHaveLength(7);
  });
});

describe("redaction", () => {
  const fields = new Set(["password", "token"]);
  it("keeps query parameter names, never values", () => {
    expect(redactTarget("/a/b?token=s3cret&page=2&flag")).toBe("/a/b?token=…&page=…&flag=…");
    expect(redactTarget("/plain")).toBe("/plain");
  });
  it("redacts secret keys at any depth and secret headers always", () => {
    expect(redactValue({ user: "a", password: "p", nested: [{ token: "t", ok: 1 }] }, fields)).toEqual({ user: "a", password: REDACTED, nested: [{ token: REDACTED, ok: 1 }] });
    const out = redactDiffs(
      [
        { path: "$.password", kind: "value", a: "x", b: "y" },
        { path: "$.user.Token", kind: "value", a: "x", b: "y" },
        { path: "$.profile", kind: "value", a: { password: "p" }, b: null },
        { path: "headers.set-cookie", kind: "header", a: "sid=1", b: "sid=2" },
        { path: "$.name", kind: "value", a: "x".repeat(500), b: undefined },
      ],
      fields,
    );
    expect(out[0]).toEqual({ path: "$.password", kind: "value", legacy: REDACTED, new: REDACTED });
    expect(out[1]).toMatchObject({ legacy: REDACTED, new: REDACTED });
    expect(out[2]).toEqual({ path: "$.profile", kind: "value", legacy: { password: REDACTED }, new: null });
    expect(out[3]).toMatchObject({ legacy: REDACTED, new: REDACTED });
    expect(String(out[4]!.legacy)).toMatch(/^x{200}… \(500 chars\)$/);
    expect(out[4]!.new).toBeNull();
  });
});
