import { describe, expect, it } from "vitest";
import { decide } from "../../../src/routing/decide.ts";
import { rolloutDiff } from "../../../src/routing/diff.ts";
import { explainDecision } from "../../../src/routing/explain.ts";
import { facts, tableFrom } from "../../helpers/routing.ts";

const reports = (routing: string, feature: string) =>
  tableFrom(`${routing ? `routing:\n${routing}` : ""}features:\n  reports:\n    routes: ['/api/1/reports/**']\n${feature}`);

const row = (rows: ReturnType<typeof rolloutDiff>, name: string) => rows.find((r) => r.feature === name)!;

describe("rolloutDiff", () => {
  it("raising a percent moves users legacy -> new only, by the difference", () => {
    const rows = rolloutDiff(reports("  salt: s\n", "    target: { percent: 10 }\n"), reports("  salt: s\n", "    target: { percent: 25 }\n"), 20_000);
    const r = row(rows, "reports");
    expect(r.toLegacy).toBe(0);
    expect(Math.abs(r.toNew - 0.15)).toBeLessThan(0.01);
    expect(r.flag).toBeNull();
  });

  it("lowering a percent moves users new -> legacy without a flag", () => {
    const r = row(rolloutDiff(reports("  salt: s\n", "    target: { percent: 50 }\n"), reports("  salt: s\n", "    target: { percent: 20 }\n"), 20_000), "reports");
    expect(r.toNew).toBe(0);
    expect(Math.abs(r.toLegacy - 0.3)).toBeLessThan(0.01);
    expect(r.flag).toBeNull();
  });

  it("flags a salt change, which moves users new -> legacy at the same percent", () => {
    const r = row(rolloutDiff(reports("  salt: a\n", "    target: { percent: 30 }\n"), reports("  salt: b\n", "    target: { percent: 30 }\n"), 20_000), "reports");
    expect(r.toLegacy).toBeGreaterThan(0.15);
    expect(r.flag).toMatch(/move new -> legacy although no percent went down/);
  });

  it("flags a reordered identity source", () => {
    const ids = (order: string) => `  identity:\n    sources: ${order}\n`;
    const r = row(
      rolloutDiff(reports(ids("[{header: X-User-Id}, {cookie: uid}]"), "    target: { percent: 40 }\n"), reports(ids("[{cookie: uid}, {header: X-User-Id}]"), "    target: { percent: 40 }\n"), 20_000),
      "reports",
    );
    expect(r.flag).not.toBeNull();
  });

  it("does not flag the kill switch or a disabled feature", () => {
    const before = reports("", "    target: new\n");
    expect(row(rolloutDiff(before, reports("  kill_switch: true\n", "    target: new\n"), 1000), "reports")).toMatchObject({ toLegacy: 1, flag: null });
    expect(row(rolloutDiff(before, reports("", "    enabled: false\n    target: new\n"), 1000), "reports")).toMatchObject({ toLegacy: 1, flag: null });
  });
});

describe("explainDecision", () => {
  it("walks the chain down to the bucket", () => {
    const t = reports("  salt: s\n", "    target: { percent: 25 }\n");
    const f = facts({ target: "/api/1/reports//x", user: "erin" });
    const lines = explainDecision(f, decide(f, t), t);
    expect(lines[0]).toBe("request    GET /api/1/reports//x (matched as /api/1/reports/x)");
    expect(lines).toContainEqual('feature    reports (route "/api/1/reports/**")');
    expect(lines).toContainEqual('identity   header x-user-id = "erin"');
    expect(lines.find((l) => l.startsWith("bucket"))).toMatch(/^bucket {5}murmur3\("s:erin"\) % 10000 = \d+ (<|>=) 2500 \(25%\)$/);
    expect(lines.at(-1)).toMatch(/^decision {3}(new|legacy) \(reason: user_bucket, feature reports\)$/);
  });

  it("stops at the kill switch", () => {
    const t = reports("  kill_switch: true\n", "    target: new\n");
    const f = facts({ target: "/api/1/reports/x" });
    expect(explainDecision(f, decide(f, t), t).slice(-2)).toEqual(["kill       ON: everything goes to legacy", "decision   legacy (reason: kill_switch)"]);
  });
});
