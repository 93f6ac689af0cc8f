// Bucketing: a user is on `new` iff bucketOf(salt, key) < percent x 100.
//
// bucketOf = murmur3_x86_32(utf8(salt + ":" + key), seed 0) mod 10000, i.e. 10,000 buckets of
// 0.01 % each. MurmurHash3 is the hash Unleash uses for the same purpose; it is reproducible in any
// language (Python: `mmh3.hash(f"{salt}:{key}", 0, signed=False) % 10000`). Because the bucket does
// not depend on the percent, raising a percent only moves users legacy -> new, lowering it only new
// -> legacy; changing the salt reshuffles everyone (rollout-diff flags it).

export const BUCKETS = 10_000;

const encoder = new TextEncoder();

export function bucketOf(salt: string, key: string): number {
  // ASCII text is its own UTF-8: hashed straight from the two strings' char codes, with no joined or
  // encoded copy.
  const h = murmur3AsciiJoined(salt, key);
  return (h >= 0 ? h : murmur3(encoder.encode(`${salt}:${key}`), 0)) % BUCKETS;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const COLON = 0x3a;

/** murmur3(utf8(a + ":" + b), 0) for ASCII `a` and `b`, read from their char codes; -1 when not ASCII. */
export function murmur3AsciiJoined(a: string, b: string): number {
  let h = 0;
  // The block being gathered (little-endian, as murmur reads bytes) and how many bytes it holds.
  let k = 0;
  let n = 0;
  // Every char code ORed together: one ASCII check at the end instead of one per char.
  let seen = 0;
  const la = a.length;
  const lb = b.length;
  let i = 0;
  for (; i + 3 < la; i += 4) {
    const c0 = a.charCodeAt(i), c1 = a.charCodeAt(i + 1), c2 = a.charCodeAt(i + 2), c3 = a.charCodeAt(i + 3);
    seen |= c0 | c1 | c2 | c3;
    h = round(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  for (; i < la; i++) {
    const c = a.charCodeAt(i);
    seen |= c;
    k |= c << (n++ << 3);
  }
  k |= COLON << (n++ << 3);
  if (n === 4) {
    h = round(h, k);
    k = n = 0;
  }
  // b: complete the block a and the colon began, then whole blocks, then the tail.
  for (i = 0; n !== 0 && i < lb; i++) {
    const c = b.charCodeAt(i);
    seen |= c;
    k |= c << (n++ << 3);
    if (n === 4) {
      h = round(h, k);
      k = n = 0;
    }
  }
  for (; i + 3 < lb; i += 4) {
    const c0 = b.charCodeAt(i), c1 = b.charCodeAt(i + 1), c2 = b.charCodeAt(i + 2), c3 = b.charCodeAt(i + 3);
    seen |= c0 | c1 | c2 | c3;
    h = round(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  for (; i < lb; i++) {
    const c = b.charCodeAt(i);
    seen |= c;
    k |= c << (n++ << 3);
  }
  if (seen > 0x7f) return -1;
  if (n > 0) h ^= scramble(k);
  return fmix(h, la + 1 + lb);
}

/** One 4-byte block into the state. */
function round(h: number, k: number): number {
  h ^= scramble(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function scramble(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function fmix(h: number, len: number): number {
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Percent (0-100, two decimals) -> the bucket threshold a user must be under to be on `new`. */
export function thresholdOf(percent: number): number {
  return Math.round(percent * 100);
}

/** MurmurHash3 x86 32-bit (Austin Appleby, public domain), unsigned result. */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const len = data.length;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    h = round(h, data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= data[blocks + 2]! << 16;
    if (tail >= 2) k ^= data[blocks + 1]! << 8;
    k ^= data[blocks]!;
    h ^= scramble(k);
  }
  return fmix(h, len);
}
