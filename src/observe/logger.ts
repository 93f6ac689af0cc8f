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
const BATCH_BYTES = 64 * 1024;
/** ...in a buffer with room past that for one more line of up to 24 KiB (longer ones go out alone). */
const BATCH_CAPACITY = BATCH_BYTES + 24 * 1024;
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
  // Batches arrive encoded (contentMode buffer): sonic-boom then neither measures nor re-encodes them.
  const sonic = pino.destination({ dest: 1, sync: false, contentMode: "buffer" });
  const lines = new LineBatch(sonic, BATCH_MAX_DELAY_MS);
  // The last lines before an exit (sonic-boom writes out its own buffer then too).
  process.once("exit", () => lines.flushSync());
  return lines;
}

type Sonic = ReturnType<typeof pino.destination>;
/** Buffer's own encoders, which `write()` reaches after checking its arguments (not in @types/node). */
export type Encoding = Buffer & { utf8Write(s: string, offset: number): number; latin1Write(s: string, offset: number): number };

/**
 * Lines gathered here and handed to sonic-boom a batch at a time. sonic-boom measures the UTF-8
 * length of its whole pending buffer on every write() (Buffer.byteLength of a string it keeps
 * appending to), which made one access-log line cost ~3 µs of CPU, five times building it; one
 * write per 64 KiB of lines makes that cost per batch (with 8 KiB string batches the access log
 * still cost 16 % of a request's CPU in bench:paired). Each line is encoded into the batch's buffer
 * as it arrives, so no line outlives its request as a string (kept in an array, the pending lines
 * were copied by every young-generation collection, then joined and encoded again as a batch).
 * Every line (pino's and the access log's) goes through here, so their order holds.
 */
export class LineBatch {
  readonly #sonic: Sonic;
  readonly #maxDelayMs: number;
  #buf = Buffer.allocUnsafeSlow(BATCH_CAPACITY);
  #used = 0;
  /** Armed by the first line into an empty batch (an idle proxy is never woken for nothing). */
  #timer: NodeJS.Timeout | null = null;

  /** maxDelayMs: the longest a line waits for its batch to be handed over (0: only when full or flushed). */
  constructor(sonic: Sonic, maxDelayMs = 0) {
    this.#sonic = sonic;
    this.#maxDelayMs = maxDelayMs;
  }

  write(line: string): boolean {
    const buf = this.reserve(line.length * 3); // a UTF-16 unit is at most 3 bytes of UTF-8 (a pair: 4 for 2)
    if (buf === null) this.writeAlone(Buffer.from(line));
    else this.commit(this.#used + (buf as Encoding).utf8Write(line, this.#used));
    return true;
  }

  /**
   * The buffer the next line goes into, at `used`, with room for maxBytes (the batch is handed over
   * first when it has less); null for a line no batch can hold (after handing over: use writeAlone).
   */
  reserve(maxBytes: number): Buffer | null {
    if (this.#used + maxBytes > BATCH_CAPACITY) {
      this.#handOver();
      if (maxBytes > BATCH_CAPACITY) return null;
    }
    return this.#buf;
  }

  /** Where the next line starts in the buffer reserve() returned. */
  get used(): number {
    return this.#used;
  }

  /** The line written into the reserved buffer ends at end. */
  commit(end: number): void {
    this.#used = end;
    if (end >= BATCH_BYTES) this.#handOver();
    else if (this.#timer === null && this.#maxDelayMs > 0) {
      this.#timer = setTimeout(this.#onTimer, this.#maxDelayMs);
      this.#timer.unref();
    }
  }

  /** A line longer than any batch, after the ones before it (reserve() returned null). */
  writeAlone(line: Buffer): void {
    (this.#sonic as unknown as { write(b: Buffer): boolean }).write(line);
  }

  #onTimer = (): void => {
    this.#timer = null;
    this.flush();
  };

  #handOver(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#used === 0) return;
    const batch = this.#buf.subarray(0, this.#used);
    // sonic-boom keeps the batch until written: the next lines go to a buffer of their own.
    this.#buf = Buffer.allocUnsafeSlow(BATCH_CAPACITY);
    this.#used = 0;
    (this.#sonic as unknown as { write(b: Buffer): boolean }).write(batch);
  }

  /** Hand over what is gathered and let sonic-boom write it (pino's logger.flush calls this). */
  flush(cb?: (err?: Error) => void): void {
    this.#handOver();
    try {
      this.#sonic.flush(cb);
    } catch (err) {
      // not ready yet, or a write is in flight: the next tick will catch up
      cb?.(err as Error);
    }
  }

  flushSync(): void {
    this.#handOver();
    try {
      this.#sonic.flushSync();
    } catch {
      // destroyed or never ready: nothing can be written any more
    }
  }
}

/** Write out anything buffered; call before exit. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // flush throws only when the destination was never ready; nothing is buffered then.
  }
}
