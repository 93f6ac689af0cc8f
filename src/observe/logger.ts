// Structured logs with pino: JSON lines on stdout by default, asynchronous so the hot path never waits
// on the terminal. Tests pass their own destination and parse the real lines.
import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  level: string;
  destination?: DestinationStream | NodeJS.WritableStream;
  /** Fields every line carries besides service (a worker's id). */
  base?: Record<string, unknown>;
}

/** Lines are batched up to this many bytes per write(2)... */
const BATCH_BYTES = 8 * 1024;
/** ...and never held longer than this, so a quiet proxy's log is still current. */
const BATCH_MAX_DELAY_MS = 100;

export function createLogger(opts: LoggerOptions): Logger {
  // One write(2) per access-log line cost a quarter of the throughput in the bench; batching removes it.
  const destination = opts.destination ?? batchedStdout();
  return pino(
    {
      level: opts.level,
      base: { service: "switchyard", ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as DestinationStream,
  );
}

function batchedStdout(): DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES });
  const timer = setInterval(() => {
    try {
      dest.flush();
    } catch {
      // not ready yet, or a write is in flight: the next tick will catch up
    }
  }, BATCH_MAX_DELAY_MS);
  timer.unref();
  return dest;
}

/** Write out anything buffered; call before exit. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // flush throws only when the destination was never ready; nothing is buffered then.
  }
}
