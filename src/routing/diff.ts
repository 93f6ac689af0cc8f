// rollout-diff: for each feature, which share of users moves between backends if the routing table
// changes from `before` to `after`. Pure: synthetic users, both tables, the one decide().
// A move new -> legacy that no lowered percent (or flag, mode, kill switch, target) explains is
// flagged: it is what a salt change or a reordered identity source does to users mid-rollout.
import { decide, type Decision } from "./decide.ts";
import { identityCarriers, sampleRequest } from "./explain.ts";
import type { IdentitySource } from "./identity.ts";
import type { CompiledFeature, RoutingTable } from "./table.ts";

export interface DiffRow {
  /** Feature name, or "(unmatched)" for traffic no feature claims. */
  feature: string;
  before: string;
  after: string;
  /** Shares of the sampled users, 0..1. */
  toNew: number;
  toLegacy: number;
  /** Set when users move new -> legacy without a change that explains it. */
  flag: string | null;
}

export function rolloutDiff(before: RoutingTable, after: RoutingTable, users = 100_000): DiffRow[] {
  const names = [...new Set([...before.features.keys(), ...after.features.keys()])];
  const rows: DiffRow[] = [];
  for (const name of names) {
    const route = (before.features.has(name) ? before : after).routes.find((r) => r.target.name === name);
    if (!route) continue;
    rows.push(compare(name, sampleRequest(route), before, after, users));
  }
  rows.push(compare("(unmatched)", { method: "GET", target: "/__switchyard_rollout_diff_unmatched__", host: undefined }, before, after, Math.min(users, 1000)));
  return rows;
}

function compare(name: string, req: { method: string; target: string; host: string | undefined }, before: RoutingTable, after: RoutingTable, users: number): DiffRow {
  let toNew = 0;
  let toLegacy = 0;
  const sources = unionSources(before.identity, after.identity);
  for (let i = 0; i < users; i++) {
    // Every identity source carries its own value for this user, so a reordered list picks another key.
    const carriers = identityCarriers(sources, (s) => `${s.kind}:${"name" in s ? s.name : "claim" in s ? s.claim : ""}:user-${i}`, req.target);
    const facts = { ...req, ...carriers, clientIp: carriers.clientIp === "192.0.2.1" ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : carriers.clientIp, requestId: `diff-${i}`, mintId: () => `minted-${i}` };
    const a = decide(facts, before).backend;
    const b = decide(facts, after).backend;
    if (a === "legacy" && b === "new") toNew++;
    else if (a === "new" && b === "legacy") toLegacy++;
  }
  const fb = before.features.get(name);
  const fa = after.features.get(name);
  const row: DiffRow = { feature: name, before: describeState(before, fb), after: describeState(after, fa), toNew: toNew / users, toLegacy: toLegacy / users, flag: null };
  if (toLegacy > 0 && !explainsMoveToLegacy(before, after, fb, fa)) {
    row.flag = `${(row.toLegacy * 100).toFixed(2)}% of users move new -> legacy although no percent went down: a salt or identity-source change reshuffles users`;
  }
  return row;
}

function explainsMoveToLegacy(b: RoutingTable, a: RoutingTable, fb: CompiledFeature | undefined, fa: CompiledFeature | undefined): boolean {
  if (a.killSwitch && !b.killSwitch) return true;
  if (a.mode !== b.mode) return true;
  if (a.defaultBackend !== b.defaultBackend) return true;
  if (!fa || !fb) return true;
  if (fb.enabled && !fa.enabled) return true;
  if (fb.pilot !== fa.pilot) return true;
  const pb = share(fb);
  const pa = share(fa);
  if (pa < pb) return true;
  // Users listed in deny lists move by design.
  return [...fa.deny].some((u) => !fb.deny.has(u)) || [...fb.allow].some((u) => !fa.allow.has(u));
}

const share = (f: CompiledFeature): number => (f.target.kind === "backend" ? (f.target.backend === "new" ? 100 : 0) : f.target.percent);

function describeState(t: RoutingTable, f: CompiledFeature | undefined): string {
  const head = t.killSwitch ? "KILL SWITCH" : `mode ${t.mode}`;
  if (!f) return `${head}, default ${t.defaultBackend}`;
  const target = f.target.kind === "backend" ? f.target.backend : `${f.target.percent}% (salt ${f.salt})`;
  return `${head}, ${f.enabled ? "" : "disabled, "}${target}`;
}

function unionSources(a: readonly IdentitySource[], b: readonly IdentitySource[]): IdentitySource[] {
  const seen = new Set<string>();
  const out: IdentitySource[] = [];
  for (const s of [...a, ...b]) {
    const k = JSON.stringify(s);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  }
  return out;
}

export function formatDiff(rows: readonly DiffRow[]): string {
  const p = (x: number) => `${(x * 100).toFixed(2)}%`;
  const header = ["feature", "before", "after", "legacy->new", "new->legacy"];
  const body = rows.map((r) => [r.feature, r.before, r.after, p(r.toNew), p(r.toLegacy)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const out = [line(header), ...body.map(line)];
  for (const r of rows) if (r.flag) out.push(`WARNING ${r.feature}: ${r.flag}`);
  return `${out.join("\n")}\n`;
}

export type { Decision };
