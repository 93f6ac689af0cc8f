// TLS as an edge needs it: certificates read and checked (key matches certificate, dates), several
// chosen by SNI, and all of them reloaded when their files change - a renewed certificate is served
// to the next handshake without a restart or a dropped connection, and a bad file (half-written,
// key not matching) keeps the certificates in use and says why.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type https from "node:https";
import tls from "node:tls";
import type { ListenerConfig } from "../config/schema.ts";
import type { Logger } from "../observe/logger.ts";

type TlsConfig = NonNullable<ListenerConfig["tls"]>;

/** What a certificate file holds, for `switchyard check`, the log and the expiry metric. */
export interface CertInfo {
  file: string;
  subject: string;
  /** DNS and IP names of the subjectAltName (the CN when there is none). */
  names: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface TlsMaterial {
  /** Options for the default context (and the server). */
  options: tls.SecureContextOptions & { minVersion: tls.SecureVersion; ciphers?: string };
  /** SNI names (lowercase; "*.example.com" for wildcards) to their contexts. */
  sni: { names: string[]; context: tls.SecureContext }[];
  certs: CertInfo[];
}

export class TlsError extends Error {}

/** Read one certificate and key pair and check they belong together. */
export function readPair(certFile: string, keyFile: string, where: string): { cert: Buffer; key: Buffer; info: CertInfo } {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (err) {
    throw new TlsError(`${where}: cannot read: ${(err as Error).message}`);
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsError(`${where}.cert: ${certFile} is not a PEM certificate (${(err as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsError(`${where}.key: ${keyFile} is not a PEM private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new TlsError(`${where}: the key in ${keyFile} does not belong to the certificate in ${certFile} (a renewed certificate with the old key?)`);
  return { cert, key, info: certInfo(x509, certFile) };
}

/** Names and dates of a certificate, for `check`, logs and metrics. */
export function certInfo(x509: X509Certificate, file: string): CertInfo {
  const names = (x509.subjectAltName ?? "").split(/,\s*/).flatMap((n) => (n.startsWith("DNS:") ? [n.slice(4)] : n.startsWith("IP Address:") ? [n.slice(11)] : []));
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
  return { file, subject: x509.subject.replace(/\n/g, ", "), names: names.length > 0 ? names : cn ? [cn] : [], notBefore: new Date(x509.validFrom), notAfter: new Date(x509.validTo) };
}

/** Everything a TLS listener serves, read from its files now; throws TlsError saying what is wrong. */
export function loadTls(t: TlsConfig, where: string): TlsMaterial {
  const base = { minVersion: t.min_version, ...(t.ciphers !== undefined && { ciphers: t.ciphers }) };
  const main = readPair(t.cert, t.key, where);
  const certs = [main.info];
  const sni = t.sni.map((s, i) => {
    const pair = readPair(s.cert, s.key, `${where}.sni[${i}]`);
    certs.push(pair.info);
    try {
      return { names: s.names, context: tls.createSecureContext({ ...base, cert: pair.cert, key: pair.key }) };
    } catch (err) {
      throw new TlsError(`${where}.sni[${i}]: ${(err as Error).message}`);
    }
  });
  try {
    tls.createSecureContext({ ...base, cert: main.cert, key: main.key }); // ciphers and versions OpenSSL accepts
  } catch (err) {
    throw new TlsError(`${where}: ${(err as Error).message}${t.ciphers !== undefined ? ` (tls.ciphers: "${t.ciphers}")` : ""}`);
  }
  return { options: { ...base, cert: main.cert, key: main.key }, sni, certs };
}

/** The SNI entry for a server name: exact first, then a wildcard for one label. */
export function matchServerName(entries: readonly { names: string[] }[], servername: string): number {
  const name = servername.toLowerCase();
  const exact = entries.findIndex((e) => e.names.includes(name));
  if (exact !== -1) return exact;
  const dot = name.indexOf(".");
  if (dot <= 0) return -1;
  const wildcard = `*${name.slice(dot)}`;
  return entries.findIndex((e) => e.names.includes(wildcard));
}

/**
 * Serve `material` on `server` and keep it current: SNI picks a certificate per handshake, and the
 * files are polled (stat each second: symlink swaps such as a Kubernetes Secret's are seen too).
 */
export class TlsKeeper {
  material: TlsMaterial;
  reloads = { ok: 0, failed: 0 };
  lastError: string | null = null;
  readonly #files: string[];
  readonly #config: TlsConfig;
  readonly #where: string;
  readonly #server: https.Server;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | null = null;
  readonly #onChange = () => {
    if (this.#timer !== null) clearTimeout(this.#timer);
    // Renewal tools write the certificate and the key one after the other: read once both are there.
    this.#timer = setTimeout(() => this.reload(), 300);
    this.#timer.unref();
  };

  constructor(server: https.Server, t: TlsConfig, where: string, material: TlsMaterial, logger: Logger) {
    this.#server = server;
    this.#config = t;
    this.#where = where;
    this.material = material;
    this.#logger = logger;
    this.#files = [t.cert, t.key, ...t.sni.flatMap((s) => [s.cert, s.key])];
    for (const f of this.#files) watchFile(f, { interval: 1000, persistent: false }, this.#onChange);
  }

  /** For the server's SNICallback. */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const i = matchServerName(this.material.sni, servername);
    cb(null, i === -1 ? undefined : this.material.sni[i]!.context);
  };

  /** Read the files again; serve them if they are good, keep the current ones if not. */
  reload(): boolean {
    this.#timer = null;
    try {
      const next = loadTls(this.#config, this.#where);
      this.#server.setSecureContext(next.options);
      this.material = next;
      this.reloads.ok++;
      this.lastError = null;
      this.#logger.info({ listener: this.#where, certificates: next.certs.map((c) => ({ file: c.file, names: c.names, not_after: c.notAfter.toISOString() })) }, `tls: certificates of ${this.#where} reloaded; new handshakes use them`);
      return true;
    } catch (err) {
      this.reloads.failed++;
      this.lastError = (err as Error).message;
      this.#logger.error({ listener: this.#where, error: this.lastError }, `tls: cannot reload the certificates of ${this.#where}, keeping the ones in use: ${this.lastError}`);
      return false;
    }
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    for (const f of this.#files) unwatchFile(f, this.#onChange);
  }
}
