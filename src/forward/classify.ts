// undici / socket failures -> our stable codes, in one table.
import type { ErrorCode } from "../errors/codes.ts";
import { ProxyError } from "../errors/codes.ts";

const BY_CODE: Record<string, ErrorCode> = {
  ECONNREFUSED: "SY_UPSTREAM_CONNECT_REFUSED",
  ENOTFOUND: "SY_UPSTREAM_UNREACHABLE",
  EAI_AGAIN: "SY_UPSTREAM_UNREACHABLE",
  EHOSTUNREACH: "SY_UPSTREAM_UNREACHABLE",
  ENETUNREACH: "SY_UPSTREAM_UNREACHABLE",
  EADDRNOTAVAIL: "SY_UPSTREAM_UNREACHABLE",
  ECONNRESET: "SY_UPSTREAM_RESET",
  EPIPE: "SY_UPSTREAM_RESET",
  UND_ERR_SOCKET: "SY_UPSTREAM_RESET",
  UND_ERR_CLOSED: "SY_UPSTREAM_RESET",
  UND_ERR_DESTROYED: "SY_UPSTREAM_RESET",
  UND_ERR_CONNECT_TIMEOUT: "SY_UPSTREAM_CONNECT_TIMEOUT",
  ETIMEDOUT: "SY_UPSTREAM_CONNECT_TIMEOUT",
  UND_ERR_HEADERS_TIMEOUT: "SY_UPSTREAM_HEADERS_TIMEOUT",
  UND_ERR_BODY_TIMEOUT: "SY_UPSTREAM_BODY_TIMEOUT",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "SY_UPSTREAM_BAD_RESPONSE",
  UND_ERR_RES_EXCEEDED_MAX_SIZE: "SY_UPSTREAM_BAD_RESPONSE",
  UND_ERR_INFO: "SY_UPSTREAM_BAD_RESPONSE",
  HPE_INVALID_CONSTANT: "SY_UPSTREAM_BAD_RESPONSE",
  HPE_INVALID_HEADER_TOKEN: "SY_UPSTREAM_BAD_RESPONSE",
  HPE_INVALID_CHUNK_SIZE: "SY_UPSTREAM_BAD_RESPONSE",
  HPE_UNEXPECTED_CONTENT_LENGTH: "SY_UPSTREAM_BAD_RESPONSE",
  ERR_INVALID_CHAR: "SY_UPSTREAM_BAD_RESPONSE",
  ERR_INVALID_HTTP_TOKEN: "SY_UPSTREAM_BAD_RESPONSE",
};

export function classifyUpstreamError(err: unknown): ErrorCode {
  if (err instanceof ProxyError) return err.code;
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  const direct = e?.code !== undefined ? BY_CODE[e.code] : undefined;
  if (direct) return direct;
  const nested = e?.cause?.code !== undefined ? BY_CODE[e.cause.code] : undefined;
  if (nested) return nested;
  // undici's HTTPParserError does not always carry an HPE_ code; its class name is stable.
  if ((typeof e?.code === "string" && e.code.startsWith("HPE_")) || (err as Error)?.name === "HTTPParserError") return "SY_UPSTREAM_BAD_RESPONSE";
  // Any other socket-level failure is the backend's; anything without a code is our own bug.
  if (typeof e?.code === "string" && /^(E[A-Z]+|UND_ERR_)/.test(e.code)) return "SY_UPSTREAM_RESET";
  return "SY_INTERNAL";
}
