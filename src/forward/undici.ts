// undici's connection pools without the rest of undici. The package's index eagerly loads fetch,
// WebSocket, EventSource, the caches and the mock agents - +14 MiB of resident memory in a proxy
// that uses none of them (idle RSS 70.7 MiB for `import "undici"` against 56.7 for its dispatchers
// alone, Node 24). So the serving process takes Pool and Client from the modules that define them;
// the types are undici's own. undici is pinned in package.json and the whole suite runs through
// these, so a moved file fails every test, not production.
import { createRequire } from "node:module";
import type * as Undici from "undici";

const require = createRequire(import.meta.url);

// What the index does besides loading everything: give every dispatcher request(), stream(),
// pipeline(), upgrade() and connect() (idempotent; the same functions if the index is loaded too).
const Dispatcher = require("undici/lib/dispatcher/dispatcher.js") as { prototype: object };
Object.assign(Dispatcher.prototype, require("undici/lib/api/index.js") as object);

export const Pool = require("undici/lib/dispatcher/pool.js") as typeof Undici.Pool;
export const Client = require("undici/lib/dispatcher/client.js") as typeof Undici.Client;
export type Pool = Undici.Pool;
export type Client = Undici.Client;

/** One request to an origin on a connection of its own, closed after the answer (webhooks, probes, the CLI). */
export async function requestOnce(url: string | URL, opts: { method?: Undici.Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string; timeoutMs: number }): Promise<{ statusCode: number; headers: Undici.Dispatcher.ResponseData["headers"]; text: string }> {
  const u = new URL(url);
  const client = new Client(u.origin, { headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
  try {
    const res = await client.request({ path: `${u.pathname}${u.search}`, method: opts.method ?? "GET", headers: opts.headers, body: opts.body, signal: AbortSignal.timeout(opts.timeoutMs) });
    return { statusCode: res.statusCode, headers: res.headers, text: await res.body.text() };
  } finally {
    void client.close().catch(() => {});
  }
}
