// Structured logs with pino: JSON lines on stdout by default, asynchronous so the hot path never waits
// on the terminal. Tests pass their own destination and parse the real lines.
import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  level: string;
  destination?: DestinationStream | NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: opts.level,
      base: { service: "switchyard" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination as DestinationStream,
  );
}

/** Write out anything buffered; call before exit. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // flush throws only when the destination was never ready; nothing is buffered then.
  }
}
