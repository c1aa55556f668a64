import { execFile } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { bin, startDaemon } from '../../../test/support/proc.js';
import { tempDir } from '../../../test/support/tmp.js';
import { waitFor } from '../../../test/support/wait.js';

const run = promisify(execFile);
const HUB = bin('hub', 'axle-hub');
const t = tempDir('axle-hub-proc-');
afterAll(() => t.cleanup());

const yaml = (spokes: string) => `server_id: hub-a
listen: "127.0.0.1:0"
insecure_transport: true
data_dir: ${t.dir}/data
spanner:
  role: hub
  spokes:
${spokes}
`;
const spoke = (id: string) =>
  `    - { id: ${id}, addr: "127.0.0.1:9", patterns: ["*.${id}.*"], pubkey: "${toBase64(generateKeyPair().publicKey)}" }`;

describe('axle-hub bin', () => {
  it('keygen prints the public key, creating the key file', async () => {
    const file = join(t.dir, 'hub.yaml');
    writeFileSync(file, yaml(spoke('dc1')));
    const a = await run(process.execPath, [HUB, 'keygen', '--config', file]);
    expect(a.stdout.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const b = await run(process.execPath, [HUB, 'keygen', '--config', file]);
    expect(b.stdout).toBe(a.stdout);
    expect(statSync(join(t.dir, 'data', 'hub.key')).mode & 0o777).toBe(0o600);
  });

  it('refuses a bad config with file, line and key, and exits 1', async () => {
    const file = join(t.dir, 'bad.yaml');
    writeFileSync(
      file,
      'server_id: hub-a\nlisten: "127.0.0.1:0"\ndata_dir: /tmp/x\nspanner:\n  role: spoke\n  treshold: 3\n',
    );
    const err = await run(process.execPath, [HUB, '--config', file]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/bad\.yaml:5: spanner\.role: is "spoke", but this is the hub daemon/);
    expect(err?.stderr).toMatch(/bad\.yaml:6: spanner\.treshold: unknown key/);
  });

  it('runs, writes admin.token 0600, reloads spokes on SIGHUP, stops on SIGTERM', async () => {
    const file = join(t.dir, 'run.yaml');
    writeFileSync(file, yaml(spoke('dc1')));
    const d = await startDaemon(HUB, ['--config', file]);
    try {
      const tokenFile = join(t.dir, 'data', 'admin.token');
      expect(d.logs.some((l) => l.msg?.toString().includes('admin API token') && l.file === tokenFile)).toBe(true);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      writeFileSync(file, yaml(`${spoke('dc1')}\n${spoke('dc2')}`));
      d.proc.kill('SIGHUP');
      const l = await d.waitForLog((x) => x.msg === 'config reloaded');
      expect(l.added).toEqual(['dc2']);
      await waitFor(() => d.logs.some((x) => x.msg === 'reloaded'));
    } finally {
      expect(await d.kill('SIGTERM')).toBe(0);
    }
  });
});
