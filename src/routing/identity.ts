// Who the user is, from the request alone: the first configured source that yields a key wins.
// JWTs are decoded without verification: the claim only picks a bucket, it never grants anything.

export type IdentitySource =
  | { kind: "header"; name: string }
  | { kind: "cookie"; name: string }
  | { kind: "query"; name: string }
  | { kind: "jwt"; header: string | null; cookie: string | null; claim: string }
  | { kind: "client_ip" }
  | { kind: "sticky_cookie"; name: string };

export interface Identity {
  /** Which source gave the key, e.g. "header x-user-id". */
  readonly source: string;
  readonly key: string;
  /** True when the proxy minted the key just now (a sticky cookie must be set on the response). */
  readonly minted: boolean;
}

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

const MAX_KEY = 256;

export function headerValue(headers: Headers, lowerName: string): string | undefined {
  const v = headers[lowerName];
  return Array.isArray(v) ? v[0] : v;
}

/** Value of one cookie in a Cookie header, undecoded; undefined when absent or empty. */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  let from = 0;
  while (from < cookieHeader.length) {
    const semi = cookieHeader.indexOf(";", from);
    const end = semi === -1 ? cookieHeader.length : semi;
    const eq = cookieHeader.indexOf("=", from);
    if (eq !== -1 && eq < end && cookieHeader.slice(from, eq).trim() === name) {
      let v = cookieHeader.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v === "" ? undefined : v;
    }
    from = end + 1;
  }
  return undefined;
}

/** Value of one query parameter in a raw request target, percent-decoded. */
export function queryValue(target: string, name: string): string | undefined {
  const q = target.indexOf("?");
  if (q === -1) return undefined;
  for (const pair of target.slice(q + 1).split("&")) {
    const eq = pair.indexOf("=");
    const k = eq === -1 ? pair : pair.slice(0, eq);
    if (safeDecode(k) !== name) continue;
    const v = eq === -1 ? "" : safeDecode(pair.slice(eq + 1).replace(/\+/g, " "));
    return v === "" ? undefined : v;
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A claim from a JWT's payload, or undefined for anything that is not a well-formed JWT. */
export function jwtClaim(token: string, claim: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === "") return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    const v = payload?.[claim];
    return typeof v === "string" || typeof v === "number" ? String(v) : undefined;
  } catch {
    return undefined;
  }
}

export interface IdentityInput {
  readonly headers: Headers;
  readonly target: string;
  readonly clientIp: string;
  readonly mintId: () => string;
}

export function resolveIdentity(sources: readonly IdentitySource[], req: IdentityInput): Identity | null {
  for (const src of sources) {
    const found = readSource(src, req);
    if (found !== undefined && found.length <= MAX_KEY) return { source: describeSource(src), key: found, minted: false };
    if (src.kind === "sticky_cookie") return { source: describeSource(src), key: req.mintId(), minted: true };
  }
  return null;
}

function readSource(src: IdentitySource, req: IdentityInput): string | undefined {
  switch (src.kind) {
    case "header":
      return nonEmpty(headerValue(req.headers, src.name));
    case "cookie":
    case "sticky_cookie":
      return cookieValue(headerValue(req.headers, "cookie"), src.name);
    case "query":
      return queryValue(req.target, src.name);
    case "client_ip":
      return nonEmpty(req.clientIp);
    case "jwt": {
      let token: string | undefined;
      if (src.cookie !== null) token = cookieValue(headerValue(req.headers, "cookie"), src.cookie);
      if (token === undefined && src.header !== null) {
        const h = headerValue(req.headers, src.header);
        token = h?.replace(/^Bearer\s+/i, "");
      }
      return token === undefined ? undefined : jwtClaim(token, src.claim);
    }
  }
}

const nonEmpty = (s: string | undefined) => (s === undefined || s.trim() === "" ? undefined : s.trim());

export function describeSource(src: IdentitySource): string {
  switch (src.kind) {
    case "header":
    case "cookie":
    case "query":
      return `${src.kind} ${src.name}`;
    case "jwt":
      return `jwt ${src.claim} from ${src.cookie !== null ? `cookie ${src.cookie}` : `header ${src.header}`}`;
    case "client_ip":
      return "client ip";
    case "sticky_cookie":
      return `sticky cookie ${src.name}`;
  }
}
