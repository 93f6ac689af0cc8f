import { describe, expect, it } from "vitest";
import { formatDuration, formatSize, parseDuration, parseSize } from "../../src/config/units.ts";

describe("parseDuration", () => {
  it.each([
    ["0", 0], ["250ms", 250], ["1s", 1000], ["1.5s", 1500], ["30s", 30_000], ["5m", 300_000], ["2h", 7_200_000], ["0.5ms", 1], ["7d", 604_800_000],
  ])("%s -> %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "5", "5 sec", "-1s", "1w", "s", "1.s", "ms"])("rejects %j", (text) => expect(parseDuration(text)).toBeUndefined());
});

describe("parseSize", () => {
  it.each([
    [0, 0], [1024, 1024], ["1024", 1024], ["16KiB", 16384], ["16k", 16384], ["1m", 1048576], ["10MiB", 10485760],
    ["5MB", 5_000_000], ["1GiB", 1073741824], ["1g", 1073741824], ["512b", 512], ["2kb", 2000],
  ])("%j -> %d bytes", (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(["", "ten", "1TiB", "-1", "1.5.5k", -1, 1.5])("rejects %j", (text) => expect(parseSize(text)).toBeUndefined());
});

describe("format", () => {
  it("round-trips durations", () => {
    for (const ms of [0, 250, 1000, 30_000, 300_000, 3_600_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
  it("round-trips sizes", () => {
    for (const b of [1, 1024, 16384, 10485760, 1073741824, 1500]) expect(parseSize(formatSize(b))).toBe(b);
  });
});
