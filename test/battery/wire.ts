// Raw bytes to a proxy and what came back: every status line, the time to the first byte, and whether
// the proxy closed the connection. Steps with pauses let a case stall or trickle its bytes.
import net from "node:net";

export type Step = string | Buffer | { pauseMs: number };

export interface WireResult {
  /** Everything the proxy sent, latin1. */
  text: string;
  /** Status codes of the responses, in order. */
  statuses: number[];
  /** Milliseconds from the first byte sent to the first byte received (null: nothing came back). */
  firstByteMs: number | null;
  /** The proxy closed (or reset) the connection before the idle deadline. */
  closed: boolean;
  /** Milliseconds from the first byte sent to the end (close, or idle deadline). */
  totalMs: number;
}

export interface WireOptions {
  /** Give up waiting once nothing arrived for this long after the last step. Default 400 ms. */
  idleMs?: number;
  /** Hard bound on the whole exchange. Default 15 s. */
  maxMs?: number;
}

/** Send `payload` (or its steps) to 127.0.0.1:port and collect the answer. */
export function wire(port: number, payload: Step | Step[], opts: WireOptions = {}): Promise<WireResult> {
  const steps = Array.isArray(payload) ? payload : [payload];
  const idleMs = opts.idleMs ?? 400;
  const maxMs = opts.maxMs ?? 15_000;
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let started = 0;
    let firstByte: number | null = null;
    let sending = true;
    let idle: NodeJS.Timeout | null = null;
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(hard);
      if (idle) clearTimeout(idle);
      sock.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      resolve({ text, statuses: statusesOf(text), firstByteMs: firstByte === null ? null : firstByte - started, closed, totalMs: performance.now() - started });
    };
    const hard = setTimeout(() => finish(false), maxMs);
    const arm = () => {
      if (sending) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    sock.on("data", (d: Buffer) => {
      if (firstByte === null) firstByte = performance.now();
      chunks.push(d);
      arm();
    });
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.on("error", () => finish(true));
    sock.on("connect", async () => {
      started = performance.now();
      for (const step of steps) {
        if (finished) return;
        if (typeof step === "object" && !Buffer.isBuffer(step)) await new Promise((r) => setTimeout(r, step.pauseMs));
        else if (!sock.destroyed) sock.write(typeof step === "string" ? Buffer.from(step, "latin1") : step); // strings are bytes
      }
      sending = false;
      arm();
    });
  });
}

/**
 * Status codes of the responses in a byte stream, read the way a client reads them: each response's
 * body is skipped by its own framing (Content-Length, chunked, or to the end), so text inside a body
 * never counts as a response. A response cut short still counts.
 */
export function statusesOf(text: string): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < text.length) {
    const m = /^HTTP\/\d\.\d (\d{3})[^\r\n]*\r\n/.exec(text.slice(at, at + 200));
    if (!m) break;
    out.push(Number(m[1]));
    const end = text.indexOf("\r\n\r\n", at);
    if (end === -1) break;
    const head = text.slice(at, end).toLowerCase();
    at = end + 4;
    const status = Number(m[1]);
    if (status < 200 || status === 204 || status === 304) continue;
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    if (length) at += Number(length[1]);
    else if (/\r\ntransfer-encoding: *chunked/.test(head)) {
      for (;;) {
        const lineEnd = text.indexOf("\r\n", at);
        if (lineEnd === -1) return out;
        const size = parseInt(text.slice(at, lineEnd), 16);
        at = lineEnd + 2;
        if (!(size > 0)) {
          const trailerEnd = text.indexOf("\r\n\r\n", at - 2);
          at = trailerEnd === -1 ? text.length : trailerEnd + 4;
          break;
        }
        at += size + 2;
      }
    } else return out; // delimited by the end of the connection
  }
  return out;
}

/** fn over every item with at most `limit` running at once; results in item order. */
export async function mapConcurrently<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
