// A request body on its way from the client to the backend. Small bodies are read whole before a
// backend connection is taken (nginx's request buffering), so a client that stalls or breaks its body
// never holds a pool slot; larger ones stream with backpressure. Either way the body has a deadline
// between chunks (nginx client_body_timeout), a size limit, and a way to be stopped when the client's
// framing breaks: each ends the exchange with 400/408/413 and aborts the upstream request.
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import type { BodyLimits } from "../config/compile.ts";
import { ProxyError, type ErrorCode } from "../errors/codes.ts";
import type { Exchange } from "../forward/exchange.ts";
import { setBodyReader, type BodyReader } from "./connection.ts";

/** Something that watches the request body go by (the shadow copy). */
export interface BodyTap {
  addBody(chunk: Buffer): void;
  bodyEnd(): void;
}

const noop = () => {};

function onBodyTimeout(body: RequestBody): void {
  body.timedOut();
}

export class RequestBody extends Readable implements BodyReader {
  readonly #req: IncomingMessage;
  readonly #ex: Exchange;
  readonly #limits: BodyLimits;
  tap: BodyTap | null = null;
  /** Collected chunks while buffering; null once streaming. */
  #chunks: Buffer[] | null;
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  /** The client is held back because the upstream side is not reading. */
  #held = false;
  #done = false;
  #ready: ((body: Buffer | Readable) => void) | null = null;

  /** `declared` is the Content-Length, or -1 for a chunked body. */
  constructor(req: IncomingMessage, ex: Exchange, limits: BodyLimits, declared: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#req = req;
    this.#ex = ex;
    this.#limits = limits;
    this.#chunks = limits.bufferBytes > 0 && declared <= limits.bufferBytes ? [] : null;
    ex.bodyComplete = false;
    this.on("error", noop); // undici may destroy it with an error after an abort; nobody else listens
    setBodyReader(req.socket, this);
    req.on("data", this.#onData);
    req.on("end", this.#onEnd);
    req.on("close", this.#onClose);
    this.#arm();
  }

  /** True when the body will be read whole before the request goes upstream. */
  get buffering(): boolean {
    return this.#chunks !== null;
  }

  /**
   * Hand the body over when it is ready to go upstream: at once (this stream) when streaming, or as
   * one Buffer when the whole body has arrived; a body over the buffer size switches to streaming.
   */
  whenReady(ready: (body: Buffer | Readable) => void): void {
    if (this.#chunks === null) ready(this);
    else this.#ready = ready;
  }

  override _read(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#req.resume();
    this.#arm();
  }

  #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    this.#bytes += chunk.length;
    this.#ex.bytesIn = this.#bytes;
    const max = this.#limits.maxBytes;
    if (max > 0 && this.#bytes > max) {
      this.#fail("SY_BODY_TOO_LARGE", `body exceeds limits.max_body_size ${max}`);
      return;
    }
    this.tap?.addBody(chunk);
    this.#timer?.refresh();
    const chunks = this.#chunks;
    if (chunks !== null) {
      chunks.push(chunk);
      if (this.#bytes <= this.#limits.bufferBytes) return;
      // Larger than the buffer (a chunked body): stream from here on, buffered chunks first.
      this.#chunks = null;
      for (const c of chunks) this.push(c);
      const ready = this.#ready;
      this.#ready = null;
      ready?.(this);
      return;
    }
    if (!this.push(chunk)) {
      this.#held = true;
      this.#req.pause();
      this.#disarm(); // the client is not idle: we are holding it back
    }
  };

  #onEnd = (): void => {
    if (this.#done) return;
    this.#finish();
    this.#ex.bodyComplete = true;
    this.tap?.bodyEnd();
    const chunks = this.#chunks;
    if (chunks !== null) {
      this.#chunks = null;
      const ready = this.#ready;
      this.#ready = null;
      ready?.(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#bytes));
      return;
    }
    this.push(null);
    this.#ex.bodySent();
  };

  /** The client connection closed before the body ended: the exchange sees its client gone. */
  #onClose = (): void => {
    if (!this.#done) this.#finish();
  };

  /** Node's parser rejected the body's framing, or its request deadline passed (see proxy/server.ts). */
  fault(code: "SY_BAD_REQUEST_BODY" | "SY_REQUEST_TIMEOUT", detail: string): void {
    this.#fail(code, detail);
  }

  timedOut(): void {
    this.#timer = null;
    this.#fail("SY_BODY_TIMEOUT", `no body data for ${this.#limits.timeoutMs} ms (limits.body_timeout)`);
  }

  #fail(code: ErrorCode, detail: string): void {
    if (this.#done) return;
    this.#finish();
    this.#chunks = null;
    this.#ready = null;
    this.#ex.mustClose = true;
    this.#ex.abort(new ProxyError(code, detail));
  }

  #finish(): void {
    this.#done = true;
    this.#disarm();
    setBodyReader(this.#req.socket, null);
    this.#req.off("data", this.#onData);
    this.#req.off("end", this.#onEnd);
    this.#req.off("close", this.#onClose);
  }

  #arm(): void {
    if (this.#limits.timeoutMs > 0 && this.#timer === null) this.#timer = setTimeout(onBodyTimeout, this.#limits.timeoutMs, this).unref();
  }

  #disarm(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }
}
