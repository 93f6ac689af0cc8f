// TLS towards a backend, as nginx's proxy_ssl_* directives set it: the CAs trusted for it, whether
// its certificate is checked, the name checked (and sent in SNI), and a client certificate. Files are
// read when a config is compiled (start, reload, runtime change), so a bad file fails that load with
// what is wrong and keeps the config in use; the pools are keyed by what was read, so a renewed CA or
// client certificate reaches new connections at the next reload.
import { X509Certificate, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import type { BackendConfig } from "../config/schema.ts";
import { TlsError, certInfo, readPair, type CertInfo } from "../proxy/tls.ts";

/** What undici's connector passes to tls.connect for one backend. */
export interface BackendTls {
  readonly connect: Readonly<Pick<ConnectionOptions, "ca" | "cert" | "key" | "servername" | "rejectUnauthorized">>;
  /** The CA certificates and the client certificate read, for `check`. */
  readonly certs: readonly (CertInfo & { role: "ca" | "client" })[];
  /** Digest of everything above: pools with the same origin but other TLS material are other pools. */
  readonly id: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The TLS settings of a backend, its files read and checked now; throws TlsError saying what is wrong. */
export function loadBackendTls(t: NonNullable<BackendConfig["tls"]>, where: string): BackendTls {
  const certs: (CertInfo & { role: "ca" | "client" })[] = [];
  const connect: { -readonly [K in keyof BackendTls["connect"]]: BackendTls["connect"][K] } = { rejectUnauthorized: t.verify };
  const digest = createHash("sha256").update(`${t.verify}|${t.server_name ?? ""}|`);
  if (t.server_name !== undefined) connect.servername = t.server_name;
  if (t.ca !== undefined) {
    const ca = readCaBundle(t.ca, `${where}.ca`);
    connect.ca = ca.pem;
    certs.push(...ca.certs.map((c) => ({ ...c, role: "ca" as const })));
    digest.update(ca.pem);
  }
  if (t.cert !== undefined && t.key !== undefined) {
    const pair = readPair(t.cert, t.key, where);
    connect.cert = pair.cert;
    connect.key = pair.key;
    certs.push({ ...pair.info, role: "client" });
    digest.update(pair.cert).update(pair.key);
  }
  return { connect: Object.freeze(connect), certs, id: digest.digest("hex").slice(0, 16) };
}

/** A PEM file of one or more CA certificates, each parsed (OpenSSL itself skips what it cannot read). */
function readCaBundle(file: string, where: string): { pem: string; certs: CertInfo[] } {
  let pem: string;
  try {
    pem = readFileSync(file, "latin1");
  } catch (err) {
    throw new TlsError(`${where}: cannot read: ${(err as Error).message}`);
  }
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsError(`${where}: ${file} holds no PEM certificate (expected one or more "-----BEGIN CERTIFICATE-----" blocks)`);
  const certs = blocks.map((block, i) => {
    try {
      return certInfo(new X509Certificate(block), file);
    } catch (err) {
      throw new TlsError(`${where}: certificate ${i + 1} of ${blocks.length} in ${file} cannot be read (${(err as Error).message})`);
    }
  });
  return { pem, certs };
}
