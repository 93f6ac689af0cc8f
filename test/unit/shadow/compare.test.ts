// The comparison and the noise rule, densely: JSON structure, types, arrays, ignore paths, presets.
import { describe, expect, it } from "vitest";
import { PRESET_NAMES, type PresetName } from "../../../src/config/shadow-schema.ts";
import { compareAnswers, compilePaths, instant, normalizePath, type Answer, type CompareOptions } from "../../../src/shadow/compare.ts";
import { isRealDifference, NoiseModel } from "../../../src/shadow/noise.ts";

const jsonAnswer = (body: unknown, status = 200, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { "content-type": "application/json", ...headers },
  body: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)),
});
const opts = (o: Partial<CompareOptions> & { ignorePaths?: string[]; presetList?: PresetName[] } = {}): CompareOptions => ({
  headers: ["content-type", "location"],
  ignore: compilePaths(o.ignorePaths ?? []),
  arrayOrder: o.arrayOrder ?? "strict",
  presets: new Set(o.presetList ?? []),
});
const diff = (a: Answer, b: Answer, o = opts()) => compareAnswers(a, b, o).diffs.map((d) => `${d.kind} ${d.path}`);

describe("JSON structural diff", () => {
  it("treats key order and whitespace as equal", () => {
    expect(diff(jsonAnswer('{"a":1,"b":{"c":[1,2],"d":"x"}}'), jsonAnswer('{ "b" : { "d":"x", "c":[ 1, 2 ] },\n "a": 1 }'))).toEqual([]);
  });
  it("catches a type change, \"18\" vs 18", () => {
    const c = compareAnswers(jsonAnswer({ age: "18" }), jsonAnswer({ age: 18 }), opts());
    expect(c.diffs).toEqual([{ path: "$.age", kind: "type", a: "18", b: 18 }]);
  });
  it("catches value changes, missing and extra fields, nested", () => {
    expect(diff(jsonAnswer({ a: 1, b: { c: true, gone: 1 }, n: null }), jsonAnswer({ a: 2, b: { c: false, added: 1 }, n: 0 }))).toEqual([
      "value $.a", "value $.b.c", "missing $.b.gone", "extra $.b.added", "type $.n",
    ]);
  });
  it("catches array length and element changes in strict order", () => {
    expect(diff(jsonAnswer({ xs: [1, 2, 3] }), jsonAnswer({ xs: [1, 5] }))).toEqual(["length $.xs", "value $.xs[1]"]);
  });
  it("reports a reordered array once, as order, in strict mode; ignores order when asked", () => {
    const a = jsonAnswer({ xs: [{ id: 1 }, { id: 2 }, { id: 3 }] });
    const b = jsonAnswer({ xs: [{ id: 3 }, { id: 1 }, { id: 2 }] });
    expect(diff(a, b)).toEqual(["order $.xs"]);
    expect(diff(a, b, opts({ arrayOrder: "ignore" }))).toEqual([]);
    expect(diff(a, jsonAnswer({ xs: [{ id: 3 }, { id: 1 }, { id: 4 }] }), opts({ arrayOrder: "ignore" }))).toEqual(["missing $.xs[*]", "extra $.xs[*]"]);
  });
  it("skips ignore paths and their subtrees, at any depth with ..", () => {
    const a = jsonAnswer({ generated_at: "t1", meta: { x: 1 }, items: [{ id: 1, request_id: "r1" }], deep: { request_id: "q" } });
    const b = jsonAnswer({ generated_at: "t2", meta: { x: 2 }, items: [{ id: 1, request_id: "r2" }], deep: { request_id: "z" } });
    expect(diff(a, b)).toEqual(["value $.generated_at", "value $.meta.x", "value $.items[0].request_id", "value $.deep.request_id"]);
    expect(diff(a, b, opts({ ignorePaths: ["$.generated_at", "$.meta", "$..request_id"] }))).toEqual([]);
    expect(diff(a, b, opts({ ignorePaths: ["$.items[*].request_id"] }))).toEqual(["value $.generated_at", "value $.meta.x", "value $.deep.request_id"]);
  });
  it("names odd keys in bracket form and normalises indices", () => {
    expect(diff(jsonAnswer({ "a b": 1 }), jsonAnswer({ "a b": 2 }))).toEqual(['value $["a b"]']);
    expect(normalizePath("$.items[12].tags[0].name")).toBe("$.items[*].tags[*].name");
  });
  it("compares non-JSON bodies by bytes and flags JSON vs not", () => {
    const text = (s: string): Answer => ({ status: 200, headers: { "content-type": "text/plain" }, body: Buffer.from(s) });
    expect(diff(text("abc"), text("abc"))).toEqual([]);
    expect(compareAnswers(text("abc"), text("abcd"), opts()).diffs).toEqual([{ path: "$", kind: "bytes", a: "3 bytes", b: "4 bytes" }]);
    expect(diff(jsonAnswer({ a: 1 }), jsonAnswer("{broken"))).toEqual(["type $"]);
  });
  it("takes the same bytes as the same body without parsing them; a changed content type is still a header difference", () => {
    const same = '{"a":1,"b":[1,2]}';
    expect(compareAnswers(jsonAnswer(same), jsonAnswer(same), opts())).toMatchObject({ diffs: [], bodyCompared: true });
    expect(diff(jsonAnswer("{broken"), jsonAnswer("{broken"))).toEqual([]);
    expect(diff(jsonAnswer(same), { status: 200, headers: { "content-type": "text/plain" }, body: Buffer.from(same) })).toEqual(["header headers.content-type"]);
    // One byte apart: parsed and diffed as JSON.
    expect(diff(jsonAnswer(same), jsonAnswer('{"a":2,"b":[1,2]}'))).toEqual(["value $.a"]);
  });
  it("compares status first and bodies only for equal statuses; bodies over the limit are not compared", () => {
    const c = compareAnswers(jsonAnswer({ a: 1 }, 200), jsonAnswer({ a: 2 }, 500), opts());
    expect(c.diffs).toEqual([{ path: "status", kind: "status", a: 200, b: 500 }]);
    expect(c.bodyCompared).toBe(false);
    const big = compareAnswers({ ...jsonAnswer({ a: 1 }), body: null }, jsonAnswer({ a: 2 }), opts());
    expect(big).toMatchObject({ diffs: [], bodyCompared: false });
  });
  it("compares the chosen headers only", () => {
    expect(diff(jsonAnswer({}, 200, { location: "/a", date: "x" }), jsonAnswer({}, 200, { location: "/b", date: "y" }))).toEqual(["header headers.location"]);
    expect(diff(jsonAnswer({}), { ...jsonAnswer({}), headers: { "content-type": "application/json; charset=utf-8" } })).toEqual(["header headers.content-type"]);
  });
  it("caps the entries", () => {
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i]));
    const c = compareAnswers(jsonAnswer(many), jsonAnswer({}), { ...opts(), maxEntries: 50 });
    expect(c.diffs).toHaveLength(50);
    expect(c.truncated).toBe(true);
  });
});

describe("framework presets", () => {
  const all = opts({ presetList: PRESET_NAMES });
  it("400 vs 422 validation envelopes", () => {
    const flask = jsonAnswer({ message: "bad", errors: { age: ["required"] } }, 400);
    const fastapi = jsonAnswer({ detail: [{ loc: ["body", "age"], msg: "field required" }] }, 422);
    expect(diff(flask, fastapi)).toEqual(["status status"]);
    expect(compareAnswers(flask, fastapi, all)).toMatchObject({ diffs: [], presetsUsed: ["validation_status"] });
  });
  it("307 vs 308 redirects, Location still compared", () => {
    const r = (status: number, location: string): Answer => ({ status, headers: { location }, body: Buffer.alloc(0) });
    expect(compareAnswers(r(308, "/items/"), r(307, "/items/"), all)).toMatchObject({ diffs: [], presetsUsed: ["redirect_status"] });
    expect(diff(r(308, "/items/"), r(307, "/other/"), all)).toEqual(["header headers.location"]);
  });
  it("float formatting, date spellings, header case, charset", () => {
    expect(diff(jsonAnswer({ x: 0.1 + 0.2 }), jsonAnswer({ x: 0.3 }), all)).toEqual([]);
    expect(diff(jsonAnswer({ x: 0.1 + 0.2 }), jsonAnswer({ x: 0.3 }))).toEqual(["value $.x"]);
    expect(diff(jsonAnswer({ x: 1.5 }), jsonAnswer({ x: 1.6 }), all)).toEqual(["value $.x"]);
    const dates = ["2026-11-24T10:00:00Z", "2026-11-24T10:00:00+00:00", "2026-11-24T10:00:00.000000Z", "2026-11-24 10:00:00Z", "Tue, 24 Nov 2026 10:00:00 GMT"];
    for (const d of dates) expect(diff(jsonAnswer({ t: dates[0] }), jsonAnswer({ t: d }), all), d).toEqual([]);
    expect(diff(jsonAnswer({ t: "2026-11-24T10:00:00Z" }), jsonAnswer({ t: "2026-11-24T10:00:01Z" }), all)).toEqual(["value $.t"]);
    expect(diff(jsonAnswer({ t: "2026-11-24T10:00:00.123456Z" }), jsonAnswer({ t: "2026-11-24T10:00:00.123457Z" }), all)).toEqual(["value $.t"]);
    expect(diff(jsonAnswer({ t: "not a date" }), jsonAnswer({ t: "not a date!" }), all)).toEqual(["value $.t"]);
    expect(compareAnswers(jsonAnswer({}), { ...jsonAnswer({}), headers: { "content-type": "application/json; charset=utf-8" } }, all)).toMatchObject({ diffs: [], presetsUsed: ["charset"] });
    expect(compareAnswers(jsonAnswer({}, 200, { location: "/A" }), jsonAnswer({}, 200, { location: "/a" }), all)).toMatchObject({ diffs: [], presetsUsed: ["header_case"] });
  });
  it("parses instants to the microsecond", () => {
    expect(instant("2026-11-24T10:00:00.5+01:00")).toBe(Date.UTC(2026, 10, 24, 9, 0, 0) * 1000 + 500_000);
    expect(instant("2026-11-24")).toBeNull();
    expect(instant("yesterday")).toBeNull();
  });
});

describe("noise (Diffy's rule)", () => {
  const rule = { relative: 0.2, absolute: 0.0003 };
  it("applies both margins", () => {
    expect(isRealDifference(0.5, 0, rule)).toBe(true);
    expect(isRealDifference(1, 1, rule)).toBe(false); // a timestamp: differs always, between backends and within one
    expect(isRealDifference(0.59, 0.5, rule)).toBe(false); // under the relative margin
    expect(isRealDifference(0.61, 0.5, rule)).toBe(true);
    expect(isRealDifference(0.0002, 0, rule)).toBe(false); // under the absolute margin
  });
  it("learns noisy paths from replays and keeps real ones", () => {
    const m = new NoiseModel();
    for (let i = 0; i < 100; i++) m.addPair(["$.generated_at", "$.id", ...(i < 30 ? ["$.age"] : [])]);
    for (let i = 0; i < 20; i++) m.addReplay(["$.generated_at", "$.id"]);
    expect(m.isNoise("$.generated_at", rule)).toBe(true);
    expect(m.isNoise("$.id", rule)).toBe(true);
    expect(m.isNoise("$.age", rule)).toBe(false);
    expect(m.verdicts(rule).map((v) => [v.path, v.rate, v.noiseRate, v.noise])).toEqual([
      ["$.generated_at", 1, 1, true],
      ["$.id", 1, 1, true],
      ["$.age", 0.3, 0, false],
    ]);
  });
  it("calls nothing noise without replays", () => {
    const m = new NoiseModel();
    m.addPair(["$.t"]);
    expect(m.verdict("$.t", rule)).toMatchObject({ noise: false, noiseRate: null });
  });
});
