// WebSocket handshake rules (RFC 6455 4.1/4.2), checked on both sides so that the proxy only ever
// tunnels when the client asked for a WebSocket *and* the backend accepted that very request.
// Anything else is the websocket-smuggling attack class: a tunnel the backend never agreed to.
import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export function acceptFor(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v);

/** The Upgrade token a client asks for, lowercased, when it asks for exactly one. */
export function requestedProtocol(headers: Headers): string | undefined {
  const up = one(headers.upgrade);
  if (up === undefined) return undefined;
  const token = up.trim().toLowerCase();
  return token.includes(",") ? undefined : token;
}

/** Why a client's WebSocket handshake is not one, or null when it is valid. */
export function clientHandshakeProblem(method: string | undefined, httpVersion: string, headers: Headers): string | null {
  if (method !== "GET") return "a WebSocket handshake must be a GET";
  if (httpVersion !== "1.1") return "a WebSocket handshake needs HTTP/1.1";
  const connection = one(headers.connection)?.toLowerCase() ?? "";
  if (!connection.split(",").some((t) => t.trim() === "upgrade")) return "Connection must include upgrade";
  const key = one(headers["sec-websocket-key"]);
  if (key === undefined || !/^[A-Za-z0-9+/]{22}==$/.test(key)) return "Sec-WebSocket-Key must be 16 base64-encoded bytes";
  if (one(headers["sec-websocket-version"]) !== "13") return "Sec-WebSocket-Version must be 13";
  return null;
}

/** Why a backend's 101 does not accept the client's handshake, or null when it does. */
export function upstreamAcceptProblem(protocol: string, clientKey: string | undefined, headers: Headers): string | null {
  const up = one(headers.upgrade)?.trim().toLowerCase();
  if (up !== protocol) return `backend switched to ${JSON.stringify(up ?? "")} instead of ${protocol}`;
  if (protocol !== "websocket") return null;
  const accept = one(headers["sec-websocket-accept"]);
  if (clientKey === undefined || accept !== acceptFor(clientKey)) return "backend's Sec-WebSocket-Accept does not match the client's key";
  return null;
}

/** A server-to-client close frame (unmasked) with a status code. */
export function closeFrameToClient(code: number): Buffer {
  return Buffer.from([0x88, 0x02, code >> 8, code & 0xff]);
}

/** A client-to-server close frame (masked, as RFC 6455 requires of clients) with a status code. */
export function closeFrameToServer(code: number, mask: Buffer): Buffer {
  return Buffer.from([0x88, 0x82, mask[0]!, mask[1]!, mask[2]!, mask[3]!, (code >> 8) ^ mask[0]!, (code & 0xff) ^ mask[1]!]);
}

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_SERVICE_RESTART = 1012;
