// A worker's snapshot: its share of the caps that protect the backends, the whole config's hash.
import { describe, expect, it } from "vitest";
import { compileSnapshot, workerShare } from "../../src/config/compile.ts";
import { configFrom } from "../helpers/routing.ts";

const yaml = `shadow:\n  enabled: true\n  max_per_second: 50\n  max_in_flight: 33\nwebsocket:\n  max_tunnels: 1001\n  max_tunnels_per_backend: 3\nlimits:\n  max_requests_per_client: 7\n`;

describe("workerShare", () => {
  it("divides the shadow budget and the tunnel limits, rounding up, never below 1", () => {
    const c = configFrom(yaml);
    const s = workerShare(c, 4);
    expect([s.shadow.max_per_second, s.shadow.max_in_flight, s.websocket.max_tunnels, s.websocket.max_tunnels_per_backend]).toEqual([12.5, 9, 251, 1]);
    expect(s.limits.max_requests_per_client).toBe(7); // one client's connections may all land on one worker
    expect(workerShare(c, 1)).toBe(c);
  });

  it("keeps the whole config's hash, so every worker and the primary report the same one", () => {
    const c = configFrom(yaml);
    const worker = compileSnapshot(c, 2);
    expect(worker.hash).toBe(compileSnapshot(c).hash);
    expect(worker.config.shadow.max_in_flight).toBe(17);
  });
});
