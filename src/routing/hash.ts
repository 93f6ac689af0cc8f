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
  const text = `${salt}:${key}`;
  // ASCII text is its own UTF-8: hashed straight from its char codes, no encoded copy.
  const h = murmur3Ascii(text);
  return (h >= 0 ? h : murmur3(encoder.encode(text), 0)) % BUCKETS;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** murmur3(utf8(s), 0) for ASCII `s`, read from its char codes; -1 when `s` is not ASCII. */
export function murmur3Ascii(s: string): number {
  let h = 0;
  const len = s.length;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const a = s.charCodeAt(i);
    const b = s.charCodeAt(i + 1);
    const c = s.charCodeAt(i + 2);
    const d = s.charCodeAt(i + 3);
    if ((a | b | c | d) > 0x7f) return -1;
    h = round(h, a | (b << 8) | (c << 16) | (d << 24));
  }
  let k = 0;
  for (let i = len - 1; i >= blocks; i--) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    k = (k << 8) | c;
  }
  if (len > blocks) h ^= scramble(k);
  return fmix(h, len);
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
