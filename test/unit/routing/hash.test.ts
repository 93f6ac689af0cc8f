import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BUCKETS, bucketOf, murmur3, murmur3AsciiJoined, thresholdOf } from "../../../src/routing/hash.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const ids = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);

describe("murmur3_x86_32", () => {
  // Reference vectors of MurmurHash3_x86_32 (the same values mmh3/Guava give).
  it.each([
    ["", 0, 0],
    ["", 1, 0x514e28b7],
    ["a", 0, 0x3c2569b2],
    ["abc", 0, 0xb3dd93fa],
    ["abcd", 0, 0x43ed676a],
    ["hello", 0, 0x248bfa47],
    ["Hello, world!", 1234, 0xfaf6cdb3],
    ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
  ])("murmur3(%j, %d) = %d", (s, seed, want) => expect(murmur3(enc(s), seed)).toBe(want));

  it("hashes UTF-8 bytes", () => expect(murmur3(enc("ü"), 0)).toBe(murmur3(new Uint8Array([0xc3, 0xbc]), 0)));

  it("hashes two ASCII strings joined by a colon from their char codes exactly as the joined bytes, and declines anything else", () => {
    // Every split of every length class: the colon and the block boundary fall everywhere.
    const texts = ["", "a", "ab", "abc", "abcd", "abcde", "switchyard", "0b8f5c1e-8a3a-4a55-9a7e-3c9d2f1e6b7a", "x".repeat(257), "\u007f~ !"];
    for (const a of texts) for (const b of texts) expect(murmur3AsciiJoined(a, b), `${a}:${b}`).toBe(murmur3(enc(`${a}:${b}`), 0));
    for (const [a, b] of [["ü", "x"], ["x", "ü"], ["abc", "dü"], ["abcd", "ü"], ["üabcd", ""], ["", "a\u0080"], ["日本", "x"]]) expect(murmur3AsciiJoined(a!, b!), `${a}:${b}`).toBe(-1);
    // bucketOf takes the byte path for those: the same bucket as the UTF-8 bytes give.
    expect(bucketOf("s", "jürgen")).toBe(murmur3(enc("s:jürgen"), 0) % BUCKETS);
    expect(bucketOf("s", "erin")).toBe(murmur3(enc("s:erin"), 0) % BUCKETS);
  });

  it("agrees with the joined bytes for any two strings (fuzzed), and is -1 exactly when one is not ASCII", () => {
    const text = fc.oneof(fc.string({ unit: "binary-ascii", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 12 }));
    fc.assert(
      fc.property(text, text, (a, b) => {
        const ascii = /^[\x00-\x7f]*$/.test(a + b);
        expect(murmur3AsciiJoined(a, b)).toBe(ascii ? murmur3(enc(`${a}:${b}`), 0) : -1);
        expect(bucketOf(a, b)).toBe(murmur3(enc(`${a}:${b}`), 0) % BUCKETS);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("bucketing", () => {
  it("maps into 10,000 buckets", () => {
    for (const id of ids.slice(0, 1000)) {
      const b = bucketOf("s", id);
      expect(Number.isInteger(b) && b >= 0 && b < BUCKETS).toBe(true);
    }
  });

  it.each([1, 10, 25, 50, 99])("puts %d %% of 100k users on new, within 0.3 points", (pct) => {
    const t = thresholdOf(pct);
    const onNew = ids.filter((id) => bucketOf("switchyard", id) < t).length;
    const share = (100 * onNew) / ids.length;
    expect(Math.abs(share - pct)).toBeLessThanOrEqual(0.3);
  });

  it("honours 0.01 % steps", () => {
    expect(thresholdOf(0.01)).toBe(1);
    expect(thresholdOf(12.34)).toBe(1234);
    expect(thresholdOf(100)).toBe(BUCKETS);
  });

  it("raising 10 -> 25 moves no user new -> legacy, and lowering moves none legacy -> new", () => {
    const at10 = new Set(ids.filter((id) => bucketOf("switchyard", id) < thresholdOf(10)));
    const at25 = new Set(ids.filter((id) => bucketOf("switchyard", id) < thresholdOf(25)));
    expect([...at10].filter((id) => !at25.has(id))).toEqual([]);
    expect(at25.size).toBeGreaterThan(at10.size);
  });

  it("different salts split users independently", () => {
    const t = thresholdOf(50);
    const a = ids.slice(0, 20_000).map((id) => bucketOf("ping", id) < t);
    const b = ids.slice(0, 20_000).map((id) => bucketOf("reports", id) < t);
    const both = a.filter((x, i) => x && b[i]).length / a.length;
    expect(Math.abs(both - 0.25)).toBeLessThan(0.02); // independent halves overlap on a quarter
  });

  it("decides identically in two separate processes", () => {
    const script = `import { bucketOf } from ${JSON.stringify(new URL("../../../src/routing/hash.ts", import.meta.url).pathname)};
      import { createHash } from "node:crypto";
      const h = createHash("sha256");
      for (let i = 0; i < 100000; i++) h.update(String(bucketOf("switchyard", "user-" + i)) + ",");
      process.stdout.write(h.digest("hex"));`;
    const run = () => spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    const [a, b] = [run(), run()];
    expect(a.status).toBe(0);
    const local = createHash("sha256");
    for (let i = 0; i < 100_000; i++) local.update(`${bucketOf("switchyard", `user-${i}`)},`);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toBe(local.digest("hex"));
  });
});
