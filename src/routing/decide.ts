// The routing decision: a pure function of request facts and the compiled routing table.
// No I/O, no clock, no randomness; HTTP, WebSocket and dry-run tools all call this one function.
import type { BackendName } from "../config/schema.ts";

export interface RoutingTable {
  readonly defaultBackend: BackendName;
}

export interface RequestFacts {
  readonly method: string;
  /** Raw request path and query as received (origin-form). */
  readonly path: string;
  readonly host: string | undefined;
  readonly clientIp: string;
}

export type DecisionReason = "default";

export interface Decision {
  readonly backend: BackendName;
  /** Feature that claimed the request; null when none did. */
  readonly feature: string | null;
  readonly reason: DecisionReason;
}

export function compileRoutingTable(routing: { default_backend: BackendName }): RoutingTable {
  return Object.freeze({ defaultBackend: routing.default_backend });
}

export function decide(_facts: RequestFacts, table: RoutingTable): Decision {
  return { backend: table.defaultBackend, feature: null, reason: "default" };
}
