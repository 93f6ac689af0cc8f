// One battery proxy in front of two recording backends, started per test file.
import { parseConfigText } from "../../src/config/load.ts";
import { startProxyWithConfig, type TestProxy } from "../helpers/servers.ts";
import { recordingBackend, type RecordingBackend } from "./backends.ts";
import { batteryYaml, SMUGGLED } from "./cases.ts";

export interface Battery {
  legacy: RecordingBackend;
  neu: RecordingBackend;
  proxy: TestProxy;
  /** Forget what the backends saw so far. */
  reset(): void;
  /** Every request either backend parsed, as "legacy GET /x". */
  forwarded(): string[];
  /** The smuggled request's path arrived somewhere, in any form (parsed or raw bytes). */
  smuggled(): boolean;
  close(): Promise<void>;
}

/** `limits` amends the battery's own limits block. */
export async function startBattery(extraYaml = "", limits: Record<string, string | number> = {}): Promise<Battery> {
  const legacy = await recordingBackend("legacy");
  const neu = await recordingBackend("new");
  const loaded = parseConfigText(batteryYaml(legacy.url, neu.url, extraYaml, limits), "battery.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  const proxy = await startProxyWithConfig(loaded.config);
  return {
    legacy,
    neu,
    proxy,
    reset() {
      legacy.reset();
      neu.reset();
    },
    forwarded: () => [...legacy.seen.map((r) => `legacy ${r.method} ${r.url}`), ...neu.seen.map((r) => `new ${r.method} ${r.url}`)],
    smuggled: () => `${legacy.rawText()}${neu.rawText()}`.includes(SMUGGLED),
    async close() {
      await proxy.close();
      await legacy.close();
      await neu.close();
    },
  };
}

/** Statuses a proxy refuses request framing with. */
export const REFUSALS = [400, 405, 408, 413, 417, 431, 501, 505];
