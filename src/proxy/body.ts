// A request body on its way from the client to the backend. Small bodies are read whole before a
// backend connection is taken (nginx's request buffering), so a client that stalls or breaks its body
// never holds a pool slot; larger ones stream with backpressure. Either way the body has a deadline
// between chunks (nginx client_body_timeout), a size limit, and a way to be stopped when the client's
// framing breaks: each ends the exchange with 400/408/413 and aborts the upstream request.
//
// A streamed body is an async iterator undici pulls from, one chunk at a time: the client is paused
// whenever a chunk waits here, so each upload holds at most one chunk in the proxy besides what the
// sockets hold (a Readable in between would hold one more per upload).
import type { IncomingMessage } from "node:http";
import type { BodyLimits } from "../config/compile.ts";
import { ProxyError, type ErrorCode } from "../errors/codes.ts";
import type { Exchange } from "../forward/exchange.ts";
import { setBodyReader, type BodyReader } from "./connection.ts";

/** Something that watches the request body go by (the shadow copy). */
export interface BodyTap {
  addBody(chunk: Buffer): void;
  bodyEnd(): void;
}

function onBodyTimeout(body: RequestBody): void {
  body.timedOut();
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export class RequestBody implements BodyReader, AsyncIterableIterator<Buffer> {
  readonly #req: IncomingMessage;
  readonly #ex: Exchange;
  readonly #limits: BodyLimits;
  tap: BodyTap | null = null;
  /** Collected chunks while buffering; null once streaming. */
  #chunks: Buffer[] | null;
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Chunks read but not yet pulled (streaming; the client is paused while any wait). */
  #pending: Buffer[] = [];
  /** undici waiting for the next chunk. */
  #pull: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: Error) => void } | null = null;
  #ended = false;
  #failed: ProxyError | null = null;
  #done = false;
  #ready: ((body: Buffer | AsyncIterable<Buffer>) => void) | null = null;
  #deadline: NodeJS.Timeout | null = null;

  /** `declared` is the Content-Length, or -1 for a chunked body. */
  constructor(req: IncomingMessage, ex: Exchange, limits: BodyLimits, declared: number) {
    this.#req = req;
    this.#ex = ex;
    this.#limits = limits;
    this.#chunks = limits.bufferBytes > 0 && declared <= limits.bufferBytes ? [] : null;
    ex.bodyComplete = false;
    // HTTP/1.1 only: a parse error on the connection stops this body; HTTP/2 streams fail on their own.
    if (req.httpVersionMajor !== 2) setBodyReader(req.socket, this);
    // HTTP/2 streams have no server-wide request deadline: the whole body by limits.request_timeout.
    else if (limits.requestTimeoutMs > 0) {
      const left = limits.requestTimeoutMs - (performance.now() - ex.startedAt);
      this.#deadline = setTimeout(() => this.fault("SY_REQUEST_TIMEOUT", `the request was not received within limits.request_timeout (${limits.requestTimeoutMs} ms)`), Math.max(0, left)).unref();
    }
    req.on("data", this.#onData);
    req.on("end", this.#onEnd);
    req.on("close", this.#onClose);
    this.#arm();
  }

  /**
   * Hand the body over when it is ready to go upstream: at once (this iterator) when streaming, or as
   * one Buffer when the whole body has arrived; a body over the buffer size switches to streaming.
   */
  whenReady(ready: (body: Buffer | AsyncIterable<Buffer>) => void): void {
    if (this.#chunks === null) ready(this);
    else this.#ready = ready;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    const chunk = this.#pending.shift();
    if (chunk !== undefined) {
      if (this.#pending.length === 0 && !this.#ended) this.#release();
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.#ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.#pull = { resolve, reject };
    });
  }

  /** undici stopped reading (the request failed): let go of the client. */
  return(): Promise<IteratorResult<Buffer>> {
    this.#pending = [];
    if (!this.#done) this.#finish();
    return Promise.resolve(DONE);
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
      this.#pending = chunks;
      this.#hold();
      const ready = this.#ready;
      this.#ready = null;
      ready?.(this);
      return;
    }
    const pull = this.#pull;
    if (pull !== null) {
      this.#pull = null;
      pull.resolve({ done: false, value: chunk });
      return;
    }
    this.#pending.push(chunk);
    this.#hold();
  };

  /** Stop reading from the client until undici pulls: the client is not idle, we are holding it back. */
  #hold(): void {
    this.#req.pause();
    this.#disarm();
  }

  #release(): void {
    this.#req.resume();
    this.#arm();
  }

  #onEnd = (): void => {
    if (this.#done) return;
    this.#finish();
    this.#ended = true;
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
    this.#ex.bodySent();
    const pull = this.#pull;
    if (pull !== null && this.#pending.length === 0) {
      this.#pull = null;
      pull.resolve(DONE);
    }
  };

  /** The client connection closed before the body ended: the exchange sees its client gone. */
  #onClose = (): void => {
    if (this.#done) return;
    this.#finish();
    this.#failed = new ProxyError("SY_CLIENT_CLOSED", "the client left during the request body");
    this.#rejectPull();
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
    this.#pending = [];
    const err = new ProxyError(code, detail);
    this.#failed = err;
    this.#ex.mustClose = true;
    // The exchange aborts the upstream request first (its connection is not reused), then undici's
    // pending pull is failed so its writer lets go; it never sees an end it could take for a whole body.
    this.#ex.abort(err);
    this.#rejectPull();
  }

  #rejectPull(): void {
    const pull = this.#pull;
    if (pull === null) return;
    this.#pull = null;
    pull.reject(this.#failed!);
  }

  #finish(): void {
    this.#done = true;
    this.#disarm();
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    if (this.#req.httpVersionMajor !== 2) setBodyReader(this.#req.socket, null);
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
