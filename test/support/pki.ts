import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fleetCa } from '@axle/hub';
import type { TlsFiles } from '@axle/shared';

/**
 * A fleet CA for tests, made by the same code as `axle-hub ca init` / `ca issue`, in `dir`.
 * `issue` writes a server certificate for 127.0.0.1 (and `localhost`) unless told otherwise
 * and returns the `tls:` block a hub or spoke config takes.
 */
export interface TestPki {
  dir: string;
  caFile: string;
  caPem: Buffer;
  pin: string;
  issue(name: string, o?: { hosts?: string[]; days?: number; notBefore?: Date }): Promise<TlsFiles>;
}

export async function makePki(dir: string): Promise<TestPki> {
  const { initCa, issueCert } = await fleetCa();
  const ca = await initCa(dir);
  return {
    dir,
    caFile: ca.certFile,
    caPem: readFileSync(ca.certFile),
    pin: ca.pin,
    async issue(name, o = {}) {
      const c = await issueCert(dir, {
        name,
        hosts: o.hosts ?? ['127.0.0.1', 'localhost'],
        outDir: join(dir, 'certs'),
        ...(o.days !== undefined ? { days: o.days } : {}),
        ...(o.notBefore ? { notBefore: o.notBefore } : {}),
      });
      return { cert_file: c.certFile, key_file: c.keyFile, ca_file: ca.certFile };
    },
  };
}
