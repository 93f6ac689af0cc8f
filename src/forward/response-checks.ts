// Backend answers whose framing a client could read differently from us are refused (502), never
// relayed: Node's HTTP client accepts `Transfer-Encoding: chunked, chunked` and other codings, which
// would reach the client re-framed as something the backend did not mean.

type Raw = readonly (Buffer | string)[];

const isNamed = (v: Buffer | string, lower: string): boolean => {
  const s = typeof v === "string" ? v : v.toString("latin1");
  return s.length === lower.length && s.toLowerCase() === lower;
};

/** What is wrong with a response's message framing, or null when it is sound. */
export function responseFramingProblem(raw: Raw): string | null {
  let te: string | null = null;
  let teCount = 0;
  let hasLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Only the two framing headers matter; most names are neither and fail on the first letter.
    const first = typeof name === "string" ? name.charCodeAt(0) | 0x20 : name[0]! | 0x20;
    if (first === 0x74 /* t */ && isNamed(name, "transfer-encoding")) {
      teCount++;
      const v = raw[i + 1]!;
      te = typeof v === "string" ? v : v.toString("latin1");
    } else if (first === 0x63 /* c */ && isNamed(name, "content-length")) hasLength = true;
  }
  if (teCount === 0) return null;
  if (teCount > 1) return "more than one Transfer-Encoding header";
  if (te!.trim().toLowerCase() !== "chunked") return `Transfer-Encoding ${JSON.stringify(te)} (only "chunked" is accepted)`;
  if (hasLength) return "both Transfer-Encoding and Content-Length";
  return null;
}
