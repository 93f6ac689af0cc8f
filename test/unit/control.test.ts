// The runtime layer's pure parts: which overrides are valid, how they lay over the file, what a change
// reads like in the log, what needs a restart, and the state file on a real disk.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { describeChanges, needsRestart } from "../../src/control/changes.ts";
import { applyOverrides, fileValue, overrideProblem, type OverrideEntry } from "../../src/control/overrides.ts";
import { readState, stateDir, stateFileFor, writeState } from "../../src/control/state-file.ts";

const BASE = `listeners:
  - port: 8080
backends:
  legacy: { url: "http://127.0.0.1:5042" }
  new: { url: "http://127.0.0.1:5043" }
routing:
  mode: mixed
features:
  ping:
    routes: [GET /api/1/ping]
    target: new
  reports:
    routes: [/api/1/reports/**]
    target: { percent: 25 }
  off:
    routes: [/api/1/off]
    enabled: false
    target: legacy
`;

function config(text = BASE): Config {
  const r = parseConfigText(text, "t.yaml", {});
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join("\n"));
  return r.config;
}

const entries = (o: Record<string, string | number | boolean>) => new Map(Object.entries(o).map(([k, value]) => [k, { value, by: "t", at: "now" } as OverrideEntry]));

describe("overrideProblem", () => {
  const c = config();
  it.each([
    ["routing.mode", "pilot"],
    ["routing.mode", "full"],
    ["routing.kill_switch", true],
    ["features.ping.enabled", false],
    ["features.reports.percent", 0],
    ["features.reports.percent", 100],
    ["features.reports.percent", 12.34],
    ["features.*.enabled", false],
    ["features.*.percent", 50],
    ["features.off.target", "new"],
  ])("accepts %s = %j", (key, value) => {
    expect(overrideProblem(c, key, value)).toBeNull();
  });

  it.each([
    ["routing.mode", "half", /one of disabled, pilot, mixed, full/],
    ["routing.mode", 1, /one of/],
    ["routing.kill_switch", "yes", /true or false/],
    ["features.nope.enabled", true, /no feature named "nope" \(known: ping, reports, off\)/],
    ["features.ping.enabled", "false", /true or false/],
    ["features.ping.percent", 101, /0 to 100/],
    ["features.ping.percent", -1, /0 to 100/],
    ["features.ping.percent", "10", /0 to 100/],
    ["features.ping.percent", Number.NaN, /0 to 100/],
    ["features.ping.percent", 1.234, /two decimals/],
    ["features.ping.target", "both", /legacy or new/],
    ["features.ping.weight", 1, /unknown override key/],
    ["routing.salt", "x", /unknown override key/],
    ["listeners", 1, /unknown override key/],
  ])("refuses %s = %j", (key, value, why) => {
    expect(overrideProblem(c, key, value)).toMatch(why);
  });
});

describe("applyOverrides", () => {
  const c = config();
  it("returns the file config untouched without overrides", () => {
    expect(applyOverrides(c, new Map())).toBe(c);
  });

  it("lays routing and feature keys over the file without touching it", () => {
    const out = applyOverrides(c, entries({ "routing.mode": "pilot", "routing.kill_switch": true, "features.reports.percent": 50, "features.ping.enabled": false }));
    expect(out.routing.mode).toBe("pilot");
    expect(out.routing.kill_switch).toBe(true);
    expect(out.features.reports!.target).toEqual({ percent: 50 });
    expect(out.features.ping!.enabled).toBe(false);
    expect(c.routing.mode).toBe("mixed");
    expect(c.features.reports!.target).toEqual({ percent: 25 });
    expect(c.features.ping!.enabled).toBe(true);
  });

  it("a * key reaches every feature; a feature's own key beats it", () => {
    const out = applyOverrides(c, entries({ "features.*.enabled": false, "features.ping.enabled": true, "features.*.percent": 0 }));
    expect(out.features.ping!.enabled).toBe(true);
    expect(out.features.reports!.enabled).toBe(false);
    expect(out.features.off!.enabled).toBe(false);
    expect(out.features.ping!.target).toEqual({ percent: 0 });
    expect(out.features.reports!.target).toEqual({ percent: 0 });
  });

  it("a feature's target beats the * percent, and its percent beats the * target", () => {
    const a = applyOverrides(c, entries({ "features.*.percent": 10, "features.ping.target": "legacy" }));
    expect(a.features.ping!.target).toBe("legacy");
    expect(a.features.reports!.target).toEqual({ percent: 10 });
    const b = applyOverrides(c, entries({ "features.*.target": "new", "features.reports.percent": 5 }));
    expect(b.features.reports!.target).toEqual({ percent: 5 });
    expect(b.features.ping!.target).toBe("new");
  });
});

describe("fileValue", () => {
  const c = config();
  it("reads what an override shadows", () => {
    expect(fileValue(c, "routing.mode")).toBe("mixed");
    expect(fileValue(c, "routing.kill_switch")).toBe(false);
    expect(fileValue(c, "features.reports.percent")).toBe(25);
    expect(fileValue(c, "features.ping.percent")).toBe(100);
    expect(fileValue(c, "features.off.percent")).toBe(0);
    expect(fileValue(c, "features.ping.target")).toBe("new");
    expect(fileValue(c, "features.reports.target")).toBe("percent 25");
    expect(fileValue(c, "features.off.enabled")).toBe(false);
    expect(fileValue(c, "features.*.enabled")).toBeNull();
    expect(fileValue(c, "features.gone.enabled")).toBeNull();
  });
});

describe("describeChanges and needsRestart", () => {
  it("says what changed in operator words", () => {
    const before = config();
    const after = config(
      BASE.replace("mode: mixed", "mode: pilot\n  kill_switch: true\n  salt: s2")
        .replace("percent: 25", "percent: 50")
        .replace("    routes: [/api/1/off]\n    enabled: false", "    routes: [/api/1/off]\n    enabled: true")
        .replace("5043", "5044")
        .replace("  ping:\n    routes: [GET /api/1/ping]\n    target: new\n", "  info:\n    routes: [GET /api/1/info]\n    target: new\n"),
    );
    expect(describeChanges(before, after)).toEqual([
      "mode mixed -> pilot",
      "kill switch off -> ON (everything to legacy)",
      'salt "switchyard" -> "s2" (users are reshuffled)',
      "feature ping removed",
      "feature reports 25% -> 50%",
      "feature off enabled",
      "feature info added (new)",
      "backend new http://127.0.0.1:5043 -> http://127.0.0.1:5044 (pool settings changed; old pool drains)",
    ]);
    expect(describeChanges(before, config())).toEqual([]);
  });

  it("lists settings a running process cannot take", () => {
    const before = config();
    expect(needsRestart(before, config(BASE.replace("port: 8080", "port: 8081")))).toEqual(["listeners (addresses, ports, TLS files)"]);
    expect(needsRestart(before, config(`${BASE}admin:\n  port: 9999\nlimits:\n  max_header_size: 32KiB\n`))).toEqual(["admin listener", "limits.max_header_size"]);
    expect(needsRestart(before, config(BASE.replace("percent: 25", "percent: 30")))).toEqual([]);
  });
});

describe("state file", () => {
  it("sits in the state directory, never next to the config, one per config path", () => {
    const env = { SWITCHYARD_STATE_DIR: "/var/tmp/sy" };
    expect(stateFileFor("/etc/switchyard/switchyard.yaml", env)).toMatch(/^\/var\/tmp\/sy\/switchyard-[0-9a-f]{8}\.state\.json$/);
    expect(stateFileFor("/etc/switchyard/switchyard.yaml", env)).toBe(stateFileFor("/etc/switchyard/switchyard.yaml", env));
    expect(stateFileFor("/srv/b/switchyard.yaml", env)).not.toBe(stateFileFor("/etc/switchyard/switchyard.yaml", env));
    expect(stateFileFor("conf/prod.yml", env)).toBe(stateFileFor(join(process.cwd(), "conf/prod.yml"), env));
    expect(stateDir({ STATE_DIRECTORY: "/var/lib/a:/var/lib/b" })).toBe("/var/lib/a"); // systemd StateDirectory=
    expect(stateDir({ XDG_STATE_HOME: "/home/u/.st" })).toBe(process.getuid?.() === 0 ? "/var/lib/switchyard" : "/home/u/.st/switchyard");
  });

  it("round-trips through an atomic write and leaves no temp file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-state-"));
    const file = join(dir, "s.state.json");
    expect(readState(file).size).toBe(0); // absent = no overrides
    const overrides = entries({ "routing.mode": "pilot", "features.reports.percent": 12.5 });
    writeState(file, overrides);
    expect(readState(file)).toEqual(overrides);
    writeState(file, new Map());
    expect(readState(file).size).toBe(0);
    expect(readdirSync(dir)).toEqual(["s.state.json"]);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ version: 1, overrides: {} });
  });

  it("refuses a torn or foreign file with a way out", () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-state-"));
    const file = join(dir, "s.state.json");
    writeFileSync(file, '{"version":1,"overrides":');
    expect(() => readState(file)).toThrow(/not valid JSON .*fix or remove it/);
    writeFileSync(file, '{"overrides":{}}');
    expect(() => readState(file)).toThrow(/unknown format/);
  });
});
