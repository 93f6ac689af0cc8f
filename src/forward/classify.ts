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

/**
 * TLS handshake failures: the certificate not trusted, expired or for another name (OpenSSL's
 * verification codes, Node's name check), a client certificate asked for, or no TLS at all there
 * (an https:// URL for a plain HTTP port).
 */
const TLS_HANDSHAKE = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$|INVALID_CA$|INVALID_PURPOSE$|ERR_TLS_CERT_ALTNAME_INVALID$|ERR_SSL_WRONG_VERSION_NUMBER$|ERR_SSL_.*ALERT)/;

export function classifyUpstreamError(err: unknown): ErrorCode {
  if (err instanceof ProxyError) return err.code;
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  const direct = e?.code !== undefined ? BY_CODE[e.code] : undefined;
  if (direct) return direct;
  if (e?.code !== undefined && TLS_HANDSHAKE.test(e.code)) return "SY_UPSTREAM_TLS";
  const nested = e?.cause?.code !== undefined ? BY_CODE[e.cause.code] : undefined;
  if (nested) return nested;
  // undici's HTTPParserError does not always carry an HPE_ code; its class name is stable.
  if ((typeof e?.code === "string" && e.code.startsWith("HPE_")) || (err as Error)?.name === "HTTPParserError") return "SY_UPSTREAM_BAD_RESPONSE";
  // Any other socket-level failure is the backend's; anything without a code is our own bug.
  if (typeof e?.code === "string" && /^(E[A-Z]+|UND_ERR_)/.test(e.code)) return "SY_UPSTREAM_RESET";
  return "SY_INTERNAL";
}

/** What to tell the operator about a failed TLS handshake with backend `name`: what happened, and the setting that changes it. */
export function tlsFailureDetail(err: unknown, name: string): string {
  const e = err as { code?: string; message?: string };
  const code = e.code ?? "";
  const what = `${e.message ?? String(err)} (${code})`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER") return `${what}: the backend does not speak TLS on that port; use http:// in backends.${name}.url, or the backend's TLS port`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code === "HOSTNAME_MISMATCH") return `${what}: set backends.${name}.tls.server_name to a name the certificate is issued to`;
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return `${what}: the backend's certificate is outside its dates; renew it on the backend (or check this machine's clock)`;
  if (code.startsWith("ERR_SSL_")) return `${what}: the backend refused the handshake (a client certificate it wants: backends.${name}.tls.cert and key)`;
  return `${what}: trust the CA that signed the backend's certificate with backends.${name}.tls.ca`;
}
