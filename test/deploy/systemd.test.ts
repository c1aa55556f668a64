import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '@axle/testkit';
import { systemdVerify } from '../support/systemd.js';

const UNITS = ['axle-hub.service', 'axle-spoke.service', 'axle-envoy.service'];
const t = tempDir('axle-systemd-');
afterAll(() => t.cleanup());

/** The units in a private root with stand-ins for the executables they name. */
function verify(unitTexts: Record<string, string>): { status: number | null; output: string } {
  const root = join(t.dir, `root-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  mkdirSync(join(root, 'opt/axle/bin'), { recursive: true });
  for (const b of ['axle-hub', 'axle-spoke', 'axle-envoy']) {
    writeFileSync(join(root, 'opt/axle/bin', b), '#!/bin/sh\n');
    chmodSync(join(root, 'opt/axle/bin', b), 0o755);
  }
  for (const [name, text] of Object.entries(unitTexts)) writeFileSync(join(root, 'etc/systemd/system', name), text);
  return systemdVerify(root, Object.keys(unitTexts));
}

const unit = (name: string) => readFileSync(join(ROOT, 'deploy/systemd', name), 'utf8');

describe('systemd units', () => {
  it('pass systemd-analyze verify with no warning at all', () => {
    const r = verify(Object.fromEntries(UNITS.map((u) => [u, unit(u)])));
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('the check catches an unknown key (which systemd only warns about)', () => {
    const r = verify({
      'axle-hub.service': unit('axle-hub.service').replace('[Install]', 'ProtectSystm=strict\n[Install]'),
    });
    expect(r.output).toMatch(/Unknown key/);
  });

  it('hub and spoke run as a dedicated user with state and config directories and hardening', () => {
    for (const name of ['axle-hub.service', 'axle-spoke.service']) {
      const u = unit(name);
      for (const line of [
        'User=axle',
        'Restart=on-failure',
        'ProtectSystem=strict',
        'NoNewPrivileges=yes',
        'PrivateTmp=yes',
        'ProtectHome=yes',
      ]) {
        expect(u, `${name}: ${line}`).toContain(line);
      }
      expect(u).toMatch(/^StateDirectory=axle\//m);
      expect(u).toMatch(/^ConfigurationDirectory=axle$/m);
    }
    // 50,000 envoy connections, each a descriptor, plus LMDB, hub links and headroom.
    const nofile = Number(/^LimitNOFILE=(\d+)$/m.exec(unit('axle-spoke.service'))?.[1]);
    expect(nofile).toBeGreaterThanOrEqual(50_000 + 1024);
  });

  it('the envoy keeps the rights it needs and says why', () => {
    const u = unit('axle-envoy.service');
    expect(u).not.toMatch(/^User=/m);
    expect(u).not.toMatch(/^ProtectSystem=/m);
    expect(u).toMatch(/runs as root/);
    expect(u).toContain('Restart=on-failure');
  });
});
