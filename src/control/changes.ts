// What a reload or an admin change changed, in words an operator reads in the log.
import type { Config } from "../config/schema.ts";

const target = (t: Config["features"][string]["target"]) => (typeof t === "string" ? t : `${t.percent}%`);

export function describeChanges(before: Config, after: Config): string[] {
  const out: string[] = [];
  const b = before.routing;
  const a = after.routing;
  if (b.mode !== a.mode) out.push(`mode ${b.mode} -> ${a.mode}`);
  if (b.kill_switch !== a.kill_switch) out.push(`kill switch ${b.kill_switch ? "on" : "off"} -> ${a.kill_switch ? "ON (everything to legacy)" : "off"}`);
  if (b.default_backend !== a.default_backend) out.push(`default backend ${b.default_backend} -> ${a.default_backend}`);
  if (b.salt !== a.salt) out.push(`salt "${b.salt}" -> "${a.salt}" (users are reshuffled)`);
  if (JSON.stringify(b.identity.sources) !== JSON.stringify(a.identity.sources)) out.push("identity sources changed (users may be reshuffled)");
  for (const name of new Set([...Object.keys(before.features), ...Object.keys(after.features)])) {
    const fb = before.features[name];
    const fa = after.features[name];
    if (!fb) out.push(`feature ${name} added (${fa!.enabled ? target(fa!.target) : "disabled"})`);
    else if (!fa) out.push(`feature ${name} removed`);
    else {
      if (fb.enabled !== fa.enabled) out.push(`feature ${name} ${fa.enabled ? "enabled" : "disabled"}`);
      if (target(fb.target) !== target(fa.target)) out.push(`feature ${name} ${target(fb.target)} -> ${target(fa.target)}`);
      if (fb.pilot !== fa.pilot) out.push(`feature ${name} ${fa.pilot ? "joins" : "leaves"} the pilot`);
      if ((fb.salt ?? "") !== (fa.salt ?? "")) out.push(`feature ${name} salt changed (its users are reshuffled)`);
      if (JSON.stringify(fb.routes) !== JSON.stringify(fa.routes)) out.push(`feature ${name} routes changed`);
      if (JSON.stringify(fb.users) !== JSON.stringify(fa.users)) out.push(`feature ${name} user lists changed`);
    }
  }
  if (JSON.stringify(before.shadow) !== JSON.stringify(after.shadow) || Object.keys(after.features).some((n) => JSON.stringify(before.features[n]?.shadow) !== JSON.stringify(after.features[n]!.shadow))) {
    out.push(`shadow ${before.shadow.enabled ? `on ${before.shadow.percent}%` : "off"} -> ${after.shadow.enabled ? `on ${after.shadow.percent}%` : "off"}${JSON.stringify(before.shadow) === JSON.stringify(after.shadow) ? " (feature shadow settings changed)" : ""}`);
  }
  for (const name of ["legacy", "new"] as const) {
    if (JSON.stringify(before.backends[name]) !== JSON.stringify(after.backends[name])) out.push(`backend ${name} ${before.backends[name].url} -> ${after.backends[name].url} (pool settings changed; old pool drains)`);
  }
  return out;
}

/** Settings a running process cannot take without a restart (sockets are bound, servers built). */
export function needsRestart(before: Config, after: Config): string[] {
  const out: string[] = [];
  if (JSON.stringify(before.listeners) !== JSON.stringify(after.listeners)) out.push("listeners (addresses, ports, TLS files)");
  if (JSON.stringify(before.admin) !== JSON.stringify(after.admin)) out.push("admin listener");
  if (before.limits.max_header_size !== after.limits.max_header_size) out.push("limits.max_header_size");
  if (before.shadow.store.path !== after.shadow.store.path) out.push("shadow.store.path");
  if (before.workers !== after.workers) out.push("workers");
  if (JSON.stringify(before.control) !== JSON.stringify(after.control)) out.push("control.store");
  return out;
}
