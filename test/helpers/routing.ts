// Build routing tables from YAML snippets the way the config file does (same schema, same compile).
import { parseConfigText } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { compileRoutingTable, type RequestFacts, type RoutingTable } from "../../src/routing/decide.ts";

export function configFrom(yaml: string, env: Record<string, string> = {}): Config {
  const text = `listeners:\n  - port: 8080\nbackends:\n  legacy:\n    url: http://127.0.0.1:5042\n  new:\n    url: http://127.0.0.1:5043\n${yaml}`;
  const r = parseConfigText(text, "routing-test.yaml", env);
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join("\n"));
  return r.config;
}

export function tableFrom(yaml: string, env: Record<string, string> = {}): RoutingTable {
  const c = configFrom(yaml, env);
  return compileRoutingTable(c.routing, c.features);
}

export function configErrors(yaml: string): string[] {
  const text = `listeners:\n  - port: 8080\nbackends:\n  legacy:\n    url: http://127.0.0.1:5042\n  new:\n    url: http://127.0.0.1:5043\n${yaml}`;
  const r = parseConfigText(text, "routing-test.yaml", {});
  return r.ok ? [] : r.errors.map((e) => e.format());
}

let minted = 0;

export function facts(over: Partial<RequestFacts> & { user?: string } = {}): RequestFacts {
  const { user, ...rest } = over;
  return {
    method: "GET",
    target: "/",
    host: "shop.example",
    clientIp: "203.0.113.9",
    headers: user === undefined ? {} : { "x-user-id": user },
    requestId: "req-1",
    mintId: () => `minted-${++minted}`,
    ...rest,
  };
}
