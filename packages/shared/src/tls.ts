import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Gauge } from 'prom-client';
import { AxleError, ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { bool, def, obj, opt, str, type Issue } from './schema.js';

/**
 * Transport security shared by every daemon: the `tls:` block of hub and spoke configs, the
 * `insecure_transport` opt-out, the files they name read and checked once (and again on SIGHUP),
 * and the fingerprints the bootstrap pins. TLS gives confidentiality; the Ed25519 handshake and
 * frame signatures stay the identity and the end-to-end integrity.
 */

const path = () => str({ min: 1, max: 1024 });

/** `tls: {cert_file, key_file, ca_file}` and `insecure_transport`, spread into a daemon's schema. */
export const transportFields = () => ({
  tls: opt(obj({ cert_file: path(), key_file: path(), ca_file: path() })),
  insecure_transport: def(bool(), false),
});

export interface TlsFiles {
  cert_file: string;
  key_file: string;
  ca_file: string;
}

/**
 * Secure by default: a config must either name its TLS files (`secure`) or say
 * `insecure_transport: true`, and not both. `what` names the setting the way this daemon's
 * config spells it.
 */
export function transportIssues(
  c: { secure: boolean; insecure_transport: boolean },
  what: { key: string; fix: string } = {
    key: 'tls',
    fix: 'set tls: {cert_file, key_file, ca_file} (axle-hub ca init, then axle-hub ca issue)',
  },
): Issue[] {
  if (c.secure && c.insecure_transport)
    return [
      {
        path: 'insecure_transport',
        message: `is true while ${what.key} is set: the port would speak TLS anyway; remove one of them`,
      },
    ];
  if (!c.secure && !c.insecure_transport)
    return [
      {
        path: what.key,
        message: `is required: ${what.fix}, or set insecure_transport: true to send everything in clear (tests, a lab)`,
      },
    ];
  return [];
}

export const INSECURE_WARNING =
  'insecure_transport: true: join tokens, traits, run results and API tokens cross the network in clear; set tls (see "Security model" in README.md)';

/** The certificates in a PEM text, in order; none is an error naming the file. */
export function certificatesIn(pem: string, file: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new Error(`certificate ${i + 1} in ${file} does not parse (${(e as Error).message})`);
    }
  });
}

/**
 * `sha256:HEX` over the DER of every certificate in a CA file, in order. For a file with one
 * certificate this is its usual SHA-256 fingerprint (`openssl x509 -fingerprint -sha256`,
 * without the colons); the bootstrap script computes the same with coreutils.
 */
export function caPin(certs: readonly X509Certificate[]): string {
  const h = createHash('sha256');
  for (const c of certs) h.update(c.raw);
  return `sha256:${h.digest('hex')}`;
}

/** curl's `--pinnedpubkey` form of a certificate's key: `sha256//` and the base64 SHA-256 of its SPKI. */
export function spkiPin(cert: X509Certificate): string {
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(der).digest('base64')}`;
}

/** What a daemon serves and trusts, read from its TLS files and checked together. */
export interface TlsMaterial {
  files: TlsFiles;
  /** PEM as read: the certificate (chain) served, its key, and the CA certificates peers must chain to. */
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  leaf: X509Certificate;
  cas: X509Certificate[];
  /** `sha256:HEX` of the CA file's certificates: what `axle-hub ca init` prints and the bootstrap checks. */
  caPin: string;
  /** curl's pin of the served certificate's key. */
  spkiPin: string;
  notAfter: Date;
  caNotAfter: Date;
}

function readTlsFile(key: string, file: string, source: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${source}: ${key}: cannot read ${file} (${(e as Error).message}); point it at the PEM file (axle-hub ca issue writes them)`,
      { cause: e },
    );
  }
}

/**
 * Reads the three files of a `tls` block and checks that each parses, the key is the
 * certificate's and is not readable by other users. Any problem throws E_BAD_CONFIG naming
 * the file and the key, so a daemon refuses to start (or keeps its old files on SIGHUP).
 */
export function loadTlsMaterial(files: TlsFiles, source: string): TlsMaterial {
  const fail = (key: string, why: string): never => {
    throw new AxleError(ErrorCode.BAD_CONFIG, `${source}: tls.${key}: ${why}`);
  };
  const cert = readTlsFile('tls.cert_file', files.cert_file, source);
  const key = readTlsFile('tls.key_file', files.key_file, source);
  const ca = readTlsFile('tls.ca_file', files.ca_file, source);
  const mode = statSync(files.key_file).mode;
  if ((mode & 0o077) !== 0)
    fail(
      'key_file',
      `${files.key_file} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${files.key_file}`,
    );
  let chain: X509Certificate[] = [];
  let cas: X509Certificate[] = [];
  try {
    chain = certificatesIn(cert.toString('utf8'), files.cert_file);
  } catch (e) {
    fail('cert_file', (e as Error).message);
  }
  try {
    cas = certificatesIn(ca.toString('utf8'), files.ca_file);
  } catch (e) {
    fail('ca_file', (e as Error).message);
  }
  let priv: KeyObject | undefined;
  try {
    priv = createPrivateKey(key);
  } catch (e) {
    fail('key_file', `${files.key_file} holds no usable private key (${(e as Error).message})`);
  }
  const leaf = chain[0] as X509Certificate;
  if (priv && !leaf.checkPrivateKey(priv))
    fail(
      'key_file',
      `${files.key_file} is not the key of the certificate in ${files.cert_file}; give the pair issued together`,
    );
  return {
    files,
    cert,
    key,
    ca,
    leaf,
    cas,
    caPin: caPin(cas),
    spkiPin: spkiPin(leaf),
    notAfter: new Date(leaf.validTo),
    caNotAfter: new Date(Math.min(...cas.map((c) => Date.parse(c.validTo)))),
  };
}

/** The served certificate as `axle hub status` and the API show it. */
export function tlsSummary(m: TlsMaterial, now = Date.now()): Record<string, unknown> {
  return {
    certFile: m.files.cert_file,
    subject: m.leaf.subject.replaceAll('\n', ', '),
    names: m.leaf.subjectAltName ?? '',
    notAfter: m.notAfter.toISOString(),
    expiresInSeconds: Math.round((m.notAfter.getTime() - now) / 1000),
    caFile: m.files.ca_file,
    caPin: m.caPin,
    caNotAfter: m.caNotAfter.toISOString(),
  };
}

/**
 * `axle_tls_cert_expiry_seconds{cert}`: seconds until the served certificate (`server`) and
 * the earliest CA certificate (`ca`) expire, negative once they have. One name for hub and
 * spoke, so one alert rule covers both.
 */
export function tlsMetrics(m: Metrics, material: () => TlsMaterial | undefined): void {
  new Gauge({
    name: 'axle_tls_cert_expiry_seconds',
    help: 'Seconds until the TLS certificate this daemon serves (cert="server") or trusts (cert="ca") expires',
    labelNames: ['cert'],
    registers: [m.registry],
    collect() {
      const t = material();
      if (!t) return;
      const now = Date.now();
      this.set({ cert: 'server' }, Math.round((t.notAfter.getTime() - now) / 1000));
      this.set({ cert: 'ca' }, Math.round((t.caNotAfter.getTime() - now) / 1000));
    },
  });
}

/**
 * A daemon's transport at start: the TLS files read and checked, or, with
 * `insecure_transport: true`, none and a warning in the log. Neither set is refused.
 */
export function startTransport(
  c: { tls?: TlsFiles | undefined; insecure_transport: boolean },
  source: string,
  log: Logger,
): TlsMaterial | undefined {
  const issues = transportIssues({ secure: c.tls !== undefined, insecure_transport: c.insecure_transport });
  if (issues.length > 0)
    throw new AxleError(ErrorCode.BAD_CONFIG, `${source}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  if (!c.tls) {
    log.warn(INSECURE_WARNING);
    return undefined;
  }
  const m = loadTlsMaterial(c.tls, source);
  log.info(
    { certFile: c.tls.cert_file, notAfter: m.notAfter.toISOString(), caPin: m.caPin },
    'serving TLS only (https, wss)',
  );
  return m;
}

/**
 * SIGHUP: the TLS files are read again and new connections get the new certificate, while open
 * ones keep their session. Files that do not check out leave the running ones in place (the
 * reload fails with the reason); switching between TLS and insecure needs a restart.
 */
export function reloadTransport(
  current: TlsMaterial | undefined,
  next: { tls?: TlsFiles | undefined; insecure_transport: boolean },
  source: string,
  serve: (t: { cert: Buffer; key: Buffer }) => void,
  log: Logger,
): TlsMaterial | undefined {
  if (!current || !next.tls) {
    if (current || next.tls) log.warn('switching between tls and insecure_transport takes effect only after a restart');
    return current;
  }
  const m = loadTlsMaterial(next.tls, source);
  serve({ cert: m.cert, key: m.key });
  if (m.leaf.fingerprint256 !== current.leaf.fingerprint256 || m.caPin !== current.caPin)
    log.info({ notAfter: m.notAfter.toISOString(), caPin: m.caPin }, 'TLS certificate reloaded');
  return m;
}
