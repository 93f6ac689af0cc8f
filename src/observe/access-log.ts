// One structured line per request, whatever its fate, written in one place so nothing is logged twice.
import { ERRORS, type ErrorCode } from "../errors/codes.ts";
import type { Logger } from "./logger.ts";

export interface AccessRecord {
  req_id: string;
  method: string;
  path: string;
  /** The path sent upstream when it differs from `path` (the canonical form that was matched). */
  upstream_path?: string;
  /** "new->legacy (connect)": the request went to the other backend, and why. */
  failover?: string;
  status: number;
  backend: string | null;
  /** Feature that claimed the request and why the backend was chosen (routing decision). */
  feature?: string | null;
  reason?: string | null;
  client_ip: string;
  /** From sending upstream to the end of the upstream response (nginx $upstream_response_time), ms. */
  upstream_ms: number | null;
  /** From the request's arrival to the last byte to the client, ms. */
  total_ms: number;
  bytes_in: number;
  bytes_out: number;
  error?: ErrorCode;
  error_detail?: string;
}

export function logAccess(logger: Logger, accessLog: boolean, rec: AccessRecord): void {
  if (rec.error === undefined) {
    if (accessLog) logger.info(rec, "request");
    return;
  }
  // Error lines are written even with the access log off: every failure leaves exactly one line.
  logger[ERRORS[rec.error].level](rec, "request");
}

export const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;
