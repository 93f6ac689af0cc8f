// Tell people what the guard did: a JSON POST to each configured URL, with a timeout and retries
// (1 s, 2 s, 4 s ... apart). Fire and forget: a slow or failing receiver never delays the action.
import { requestOnce } from "../forward/undici.ts";
import type { Logger } from "../observe/logger.ts";

export interface WebhookOptions {
  urls: readonly string[];
  timeoutMs: number;
  retries: number;
  logger: Logger;
  /** Base delay between attempts (doubles each time); tests shorten it. */
  backoffMs?: number;
}

export function notify(payload: unknown, o: WebhookOptions): Promise<void> {
  const body = JSON.stringify(payload);
  return Promise.all(o.urls.map((url) => deliver(url, body, o))).then(() => undefined);
}

async function deliver(url: string, body: string, o: WebhookOptions): Promise<void> {
  let lastError = "";
  for (let attempt = 0; attempt <= o.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, (o.backoffMs ?? 1000) * 2 ** (attempt - 1)).unref());
    try {
      const res = await requestOnce(url, { method: "POST", headers: { "content-type": "application/json", "user-agent": "switchyard-guard" }, body, timeoutMs: o.timeoutMs });
      if (res.statusCode < 300) return;
      lastError = `HTTP ${res.statusCode}`;
    } catch (err) {
      lastError = (err as Error).message;
    }
  }
  o.logger.warn({ webhook: url, attempts: o.retries + 1, error: lastError }, `guard webhook ${url} failed after ${o.retries + 1} attempts: ${lastError}`);
}
