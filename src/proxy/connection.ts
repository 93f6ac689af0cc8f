// What the proxy remembers about a client connection between requests, on the socket itself (no map
// to keep in step): that a refusal ended its trust, and which request body is arriving on it now.
import type { Socket } from "node:net";

const kRefused = Symbol("switchyard.refused");
const kBodyReader = Symbol("switchyard.bodyReader");

/** Something reading a request body that a parse error or a deadline on the connection must stop. */
export interface BodyReader {
  /** The client's framing broke (bad chunk, ...) or Node's request deadline passed. */
  fault(code: "SY_BAD_REQUEST_BODY" | "SY_REQUEST_TIMEOUT", detail: string): void;
}

type Marked = Socket & { [kRefused]?: true; [kBodyReader]?: BodyReader | null };

/**
 * After a refusal of request framing nothing more from this connection is believed: requests already
 * parsed behind the refused one (pipelined) are dropped unanswered, and the connection closes once the
 * refusal is written.
 */
export function refuseConnection(socket: Socket | null): void {
  if (socket !== null) (socket as Marked)[kRefused] = true;
}

export function isRefused(socket: Socket): boolean {
  return (socket as Marked)[kRefused] === true;
}

export function setBodyReader(socket: Socket, reader: BodyReader | null): void {
  (socket as Marked)[kBodyReader] = reader;
}

export function bodyReaderOf(socket: Socket): BodyReader | null {
  return (socket as Marked)[kBodyReader] ?? null;
}
