// @peculiar/x509 resolves its ASN.1 types through tsyringe, which needs the Reflect metadata
// polyfill loaded first. Only `axle-hub ca` and tests load this module; the daemon never does.
import 'reflect-metadata';
import { randomBytes, webcrypto, type X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { AxleError, ErrorCode, caPin, certificatesIn } from '@axle/shared';

/**
 * The fleet CA behind `axle-hub ca init` and `axle-hub ca issue`: an ECDSA P-256 CA in
 * `<data_dir>/ca/` and server certificates for hubs and spokes signed by it. P-256 because
 * curl, OpenSSL, Node and every browser (the web UI) accept it, and its handshakes are cheap
 * for the server (see "TLS handshakes" in bench/results.md).
 */

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;
export const CA_DAYS = 3650;
export const CERT_DAYS = 365;

export function caDir(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = join(dataDir, 'ca');
  return { dir, cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END ${label}-----\n`;
}

/** Writes through a temporary file and a rename, so a reader never sees half a key or certificate. */
function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** A positive 128-bit serial, as RFC 5280 asks (at most 20 octets, unpredictable). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

function validity(days: number, notBefore?: Date): { notBefore: Date; notAfter: Date } {
  // A minute back, so a peer whose clock is slightly behind does not see "not yet valid".
  const from = notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore: from, notAfter: new Date(from.getTime() + days * DAY_MS) };
}

export interface CaInfo {
  certFile: string;
  keyFile: string;
  /** `sha256:HEX` of the CA certificate (DER), what `axle tokens create` puts into the install command. */
  pin: string;
  notAfter: Date;
  created: boolean;
}

function describe(certFile: string, keyFile: string, created: boolean): CaInfo {
  const certs = certificatesIn(readFileSync(certFile, 'utf8'), certFile);
  return {
    certFile,
    keyFile,
    pin: caPin(certs),
    notAfter: new Date((certs[0] as X509Certificate).validTo),
    created,
  };
}

/**
 * Creates the CA once. An existing CA is never replaced: every certificate and every envoy's
 * `ca_file` depends on it, so the answer is its fingerprint and `created: false`.
 */
export async function initCa(dataDir: string, o: { name?: string; days?: number } = {}): Promise<CaInfo> {
  const f = caDir(dataDir);
  if (existsSync(f.cert) || existsSync(f.key)) {
    if (!existsSync(f.cert) || !existsSync(f.key))
      throw new AxleError(
        ErrorCode.BAD_CONFIG,
        `${f.dir} holds only one of ca.pem and ca.key; restore the other from a backup (or remove both to start a new CA, which every host must then be given)`,
      );
    return describe(f.cert, f.key, false);
  }
  mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [o.name ?? 'Axle fleet CA'] }],
    ...validity(o.days ?? CA_DAYS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // The key first: a ca.pem without its key would look like a finished CA.
  writeAtomic(f.key, pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 0o600);
  writeAtomic(f.cert, cert.toString('pem') + '\n', 0o644);
  return describe(f.cert, f.key, true);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DNS = /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface IssueOptions {
  name: string;
  /** DNS names and IP addresses the certificate is valid for. */
  hosts: string[];
  outDir: string;
  days?: number;
  /** Tests back-date certificates to make expired ones. */
  notBefore?: Date;
}

export interface Issued {
  certFile: string;
  keyFile: string;
  notAfter: Date;
  names: string[];
}

/** Checks each host and sorts them into DNS names and IP addresses; bad ones are listed together. */
export function subjectNames(hosts: string[]): { type: 'dns' | 'ip'; value: string }[] {
  const bad = hosts.filter((h) => isIP(h) === 0 && (h.length > 253 || !DNS.test(h)));
  if (hosts.length === 0 || bad.length > 0)
    throw new AxleError(
      ErrorCode.INVALID,
      hosts.length === 0
        ? 'give at least one --host: the DNS name or IP address clients use to reach this daemon'
        : `not a DNS name or IP address: ${bad.join(', ')}`,
    );
  return [...new Set(hosts.map((h) => (isIP(h) ? h : h.toLowerCase())))].map((h) => ({
    type: isIP(h) ? 'ip' : 'dns',
    value: h,
  }));
}

/** Issues a server certificate for a hub or spoke, signed by the CA in `<data_dir>/ca/`; writes NAME.pem and NAME.key (0600). */
export async function issueCert(dataDir: string, o: IssueOptions): Promise<Issued> {
  if (!NAME.test(o.name))
    throw new AxleError(ErrorCode.INVALID, `--name "${o.name}" must be letters, digits, ".", "-" or "_" (a file name)`);
  const names = subjectNames(o.hosts);
  const f = caDir(dataDir);
  if (!existsSync(f.cert) || !existsSync(f.key))
    throw new AxleError(ErrorCode.NOT_FOUND, `no CA in ${f.dir}; create it first: axle-hub ca init --config HUB.yaml`);
  const caCert = new x509.X509Certificate(readFileSync(f.cert, 'utf8'));
  let caKey: webcrypto.CryptoKey;
  try {
    caKey = await webcrypto.subtle.importKey(
      'pkcs8',
      x509.PemConverter.decode(readFileSync(f.key, 'utf8'))[0] as ArrayBuffer,
      ALG,
      false,
      ['sign'],
    );
  } catch (e) {
    throw new AxleError(
      ErrorCode.BAD_KEY,
      `${f.key} is not an ECDSA P-256 key in PKCS#8 PEM (${(e as Error).message})`,
    );
  }
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const v = validity(o.days ?? CERT_DAYS, o.notBefore);
  if (v.notAfter.getTime() > caCert.notAfter.getTime()) v.notAfter = caCert.notAfter;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [o.name] }],
    issuer: caCert.subject,
    ...v,
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  mkdirSync(o.outDir, { recursive: true });
  const out = { certFile: join(o.outDir, `${o.name}.pem`), keyFile: join(o.outDir, `${o.name}.key`) };
  writeAtomic(out.keyFile, pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 0o600);
  writeAtomic(out.certFile, cert.toString('pem') + '\n', 0o644);
  return { ...out, notAfter: v.notAfter, names: names.map((n) => n.value) };
}
