// Human-readable reason chains for `switchyard explain`, and sample requests for a feature's routes.
import type { Decision, RequestFacts } from "./decide.ts";
import { BUCKETS } from "./hash.ts";
import type { IdentitySource } from "./identity.ts";
import { normalizePath } from "./normalize.ts";
import type { RouteSpec } from "./routes.ts";
import type { RoutingTable } from "./table.ts";

const pct = (threshold: number) => `${(threshold * 100) / BUCKETS}%`;

export function explainDecision(facts: RequestFacts, d: Decision, t: RoutingTable): string[] {
  const lines: string[] = [];
  const add = (k: string, v: string) => lines.push(`${k.padEnd(10)} ${v}`);
  const normalized = normalizePath(facts.target);
  add("request", `${facts.method} ${facts.target}${normalized !== facts.target.split("?")[0] ? ` (matched as ${normalized})` : ""}`);
  add("mode", t.mode);
  add("kill", t.killSwitch ? "ON: everything goes to legacy" : "off");
  if (d.reason === "kill_switch") return conclude(lines, d);
  add("force", t.force === null ? "off" : d.reason === "forced" ? `forced to ${d.backend} (trusted client or secret)` : "not requested or not allowed");
  if (d.reason === "forced") return conclude(lines, d);
  if (d.reason === "mode_disabled" || d.reason === "mode_full") return conclude(lines, d);
  if (d.feature === null) {
    add("feature", `none of ${t.routes.length} route(s) matched; default backend ${t.defaultBackend}`);
    return conclude(lines, d);
  }
  const f = t.features.get(d.feature)!;
  add("feature", `${d.feature} (route "${d.route}")`);
  add("pilot", t.mode === "pilot" ? (f.pilot ? "in the pilot" : "not in the pilot: legacy") : "n/a (mode is not pilot)");
  add("flag", f.enabled ? "enabled" : "disabled: legacy");
  add("target", f.target.kind === "backend" ? f.target.backend : `${f.target.percent}% of users (salt "${f.salt}")`);
  if (d.identity) add("identity", `${d.identity.source} = ${JSON.stringify(d.identity.key)}${d.identity.minted ? " (minted now; Set-Cookie on the answer)" : ""}`);
  else if (f.needsIdentity) add("identity", "none found (sources: " + (t.identity.map(describe).join(", ") || "none") + ")");
  if (d.reason === "user_denied") add("users", "in users.deny");
  if (d.reason === "user_allowed") add("users", "in users.allow");
  if (d.reason === "user_bucket") add("bucket", `murmur3("${f.salt}:${d.identity!.key}") % ${BUCKETS} = ${d.bucket} ${d.bucket! < d.threshold! ? "<" : ">="} ${d.threshold} (${pct(d.threshold!)})`);
  if (d.reason === "unidentified") add("fallback", `unidentified -> ${d.backend}`);
  if (d.reason === "weighted") add("weights", `request bucket ${d.bucket} ${d.bucket! < d.threshold! ? "<" : ">="} ${d.threshold} (${pct(d.threshold!)} new)`);
  return conclude(lines, d);
}

function conclude(lines: string[], d: Decision): string[] {
  lines.push(`${"decision".padEnd(10)} ${d.backend} (reason: ${d.reason}${d.feature ? `, feature ${d.feature}` : ""})`);
  return lines;
}

function describe(s: IdentitySource): string {
  return s.kind === "client_ip" ? "client ip" : s.kind === "jwt" ? `jwt ${s.claim}` : `${s.kind} ${s.name}`;
}

/** Headers, target and client ip that carry `key` through each identity source, so any order finds one. */
export function identityCarriers(sources: readonly IdentitySource[], key: (src: IdentitySource) => string, target: string): Pick<RequestFacts, "headers" | "target" | "clientIp"> {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  let query = "";
  let clientIp = "192.0.2.1";
  for (const s of sources) {
    const k = key(s);
    switch (s.kind) {
      case "header":
        headers[s.name] ??= k;
        break;
      case "cookie":
      case "sticky_cookie":
        cookies.push(`${s.name}=${encodeURIComponent(k)}`);
        break;
      case "query":
        query += `${query ? "&" : ""}${encodeURIComponent(s.name)}=${encodeURIComponent(k)}`;
        break;
      case "jwt": {
        const token = `e30.${Buffer.from(JSON.stringify({ [s.claim]: k })).toString("base64url")}.unsigned`;
        if (s.cookie !== null) cookies.push(`${s.cookie}=${token}`);
        else headers[s.header!] ??= `Bearer ${token}`;
        break;
      }
      case "client_ip":
        clientIp = k;
        break;
    }
  }
  if (cookies.length > 0) headers.cookie = cookies.join("; ");
  return { headers, target: query ? `${target}${target.includes("?") ? "&" : "?"}${query}` : target, clientIp };
}

/** A concrete request a route matches: literals kept, * and :param as "x", ** dropped. */
export function sampleRequest(r: RouteSpec): { method: string; target: string; host: string | undefined } {
  const path = `/${r.segments.filter((s) => s.kind !== "rest").map((s) => (s.kind === "literal" ? s.value : "x")).join("/")}`;
  return { method: r.methods?.[0] ?? "GET", target: path, host: r.host?.replace(/^\*\./, "a.") };
}
