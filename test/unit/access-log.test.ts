// The access line is built by hand for speed; it must be the line pino would have written for the
// same record: valid JSON, same keys in the same order, same escaping, one line per record.
import { Writable } from "node:stream";
import fc from "fast-check";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { logAccess, round3, type AccessRecord } from "../../src/observe/access-log.ts";
import { createLogger } from "../../src/observe/logger.ts";

function capture(level = "info"): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  let buf = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      cb();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

const base: AccessRecord = {
  req_id: "r-1",
  method: "GET",
  path: "/api/1/ping",
  status: 200,
  backend: "legacy",
  client_ip: "127.0.0.1",
  upstream_ms: 1.25,
  total_ms: 1.5,
  bytes_in: 0,
  bytes_out: 42,
};

/** What pino itself writes for the record (the reference the fixed-shape writer replaces). */
function pinoLine(level: "info" | "warn" | "error", rec: AccessRecord): Record<string, unknown> {
  const { logger, lines } = capture();
  logger[level](rec, "request");
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

const withoutTime = (o: Record<string, unknown>): Record<string, unknown> => {
  const { time, ...rest } = o;
  expect(typeof time).toBe("string");
  expect(new Date(time as string).toISOString()).toBe(time);
  return rest;
};

describe("access log line", () => {
  it("has pino's shape and key order for a plain request", () => {
    const { logger, lines } = capture();
    logAccess(logger, true, base);
    expect(lines).toHaveLength(1);
    const got = JSON.parse(lines[0]!) as Record<string, unknown>;
    const want = pinoLine("info", base);
    expect(Object.keys(got)).toEqual(Object.keys(want));
    expect(withoutTime(got)).toEqual(withoutTime(want));
  });

  it("carries optional fields, the error code and its level", () => {
    const { logger, lines } = capture();
    const rec: AccessRecord = {
      ...base,
      upstream_path: "/api/1/x",
      feature: "assets",
      reason: "route",
      status: 502,
      backend: "new",
      upstream_ms: null,
      failover: "new->legacy (connect)",
      error: "SY_UPSTREAM_CONNECT_REFUSED",
      error_detail: 'connect ECONNREFUSED "x"',
    };
    logAccess(logger, false, rec);
    expect(lines).toHaveLength(1);
    const got = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(got.level).toBe("error");
    expect(withoutTime(got)).toEqual(withoutTime(pinoLine("error", rec)));
  });

  it("writes nothing for a success with the access log off, and honours the level", () => {
    const off = capture();
    logAccess(off.logger, false, base);
    expect(off.lines).toHaveLength(0);
    const quiet = capture("warn");
    logAccess(quiet.logger, true, base);
    expect(quiet.lines).toHaveLength(0);
  });

  it("escapes any string exactly as JSON.stringify does (quotes, controls, separators, lone surrogates)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }), (path, feature) => {
        const { logger, lines } = capture();
        const rec = { ...base, path, feature, req_id: `${path}\u2028"\\` };
        logAccess(logger, true, rec);
        expect(lines).toHaveLength(1);
        const got = JSON.parse(lines[0]!) as Record<string, unknown>;
        expect(got.path).toBe(path.isWellFormed() ? path : JSON.parse(JSON.stringify(path)));
        expect(got.feature).toBe(feature);
        expect(got.req_id).toBe(rec.req_id.isWellFormed() ? rec.req_id : JSON.parse(JSON.stringify(rec.req_id)));
      }),
      { numRuns: 300 },
    );
  });

  it("writes lines of any length whole, and the ones after them too", () => {
    const { logger, lines } = capture();
    const paths = ["/a", `/${"é€\u0001".repeat(20_000)}`, "/b", `/${"x".repeat(5_000)}`, "/c"];
    for (const path of paths) logAccess(logger, true, { ...base, path });
    expect(lines.map((l) => (JSON.parse(l) as { path: string }).path)).toEqual(paths);
  });

  describe("durations", () => {
    /** The text a line gives its two durations and byte counts. */
    const numbers = (upstream: number | null, total: number, bytesIn: number, bytesOut: number): string => {
      const { logger, lines } = capture();
      logAccess(logger, true, { ...base, upstream_ms: upstream, total_ms: total, bytes_in: bytesIn, bytes_out: bytesOut });
      return /"upstream_ms":(.*),"msg"/.exec(lines[0]!)![1]!;
    };
    const want = (upstream: number | null, total: number, bytesIn: number, bytesOut: number) =>
      `${upstream === null ? "null" : String(round3(upstream))},"total_ms":${String(round3(total))},"bytes_in":${bytesIn},"bytes_out":${bytesOut}`;

    it("are written to the microsecond exactly as String(round3(ms)) would write them, byte counts as String(n) (property)", () => {
      for (const x of [0, 0.0004, 0.0005, 0.001, 0.01, 0.05, 0.1, 0.105, 0.12, 1, 1.5, 2.25, 3.14159, 9.999, 10, 12, 999.9995, 1000, 86_400_000.123])
        expect(numbers(x, x, 0, 0)).toBe(want(x, x, 0, 0));
      fc.assert(
        fc.property(fc.double({ min: 0, max: 1e9, noNaN: true }), fc.integer({ min: 0, max: 10 ** 12 }), fc.maxSafeNat(), fc.nat(), (x, us, a, b) => {
          expect(numbers(x, us / 1000, a, b)).toBe(want(x, us / 1000, a, b));
        }),
        { numRuns: 5000 },
      );
      // Outside the integer path (negative, huge, not finite): String() itself.
      for (const x of [-1.5, 1e16, Infinity, NaN]) expect(numbers(x, x, 0, 0)).toBe(want(x, x, 0, 0));
      expect(numbers(null, 1, 0, 0)).toBe(want(null, 1, 0, 0));
      for (const n of [1, 9, 10, 99, 100, 101, 999_999, 1_000_000, Number.MAX_SAFE_INTEGER, -1, 2 ** 60]) expect(numbers(1, 1, n, n)).toBe(want(1, 1, n, n));
    });

    it("in a line are rounded to the microsecond, as pino's line of the rounded record", () => {
      const { logger, lines } = capture();
      logAccess(logger, true, { ...base, upstream_ms: 1.23456, total_ms: 7.0000004 });
      const got = JSON.parse(lines[0]!) as Record<string, unknown>;
      expect(got.upstream_ms).toBe(1.235);
      expect(got.total_ms).toBe(7);
      expect(lines[0]).toContain('"upstream_ms":1.235,"total_ms":7,');
    });
  });

  describe("time", () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("is the clock's ISO time for each line, across milliseconds, seconds, days and years", () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      const { logger, lines } = capture();
      // The date and time are cached per second, the milliseconds appended: every padding width,
      // the same millisecond twice, each boundary, and a clock that steps back.
      const instants = ["2026-12-03T01:36:25.000Z", "2026-12-03T01:36:25.007Z", "2026-12-03T01:36:25.007Z", "2026-12-03T01:36:25.042Z", "2026-12-03T01:36:25.999Z", "2026-12-03T01:36:26.000Z", "2026-12-03T23:59:59.999Z", "2026-12-04T00:00:00.001Z", "2026-12-31T23:59:59.500Z", "2027-01-01T00:00:00.100Z", "2026-12-03T01:36:25.123Z"];
      for (const t of instants) {
        vi.setSystemTime(new Date(t));
        logAccess(logger, true, base);
      }
      expect(lines.map((l) => (JSON.parse(l) as { time: string }).time)).toEqual(instants);
    });

    it("matches toISOString for any millisecond (property)", () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      const { logger, lines } = capture();
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 4_102_444_800_000 }), (ms) => {
          vi.setSystemTime(ms);
          logAccess(logger, true, base);
          return (JSON.parse(lines.at(-1)!) as { time: string }).time === new Date(ms).toISOString();
        }),
        { numRuns: 2000 },
      );
    });
  });
});
