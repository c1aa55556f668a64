import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, generateKeyPair, toBase64 } from '@axle/shared';
import type { Hub } from '@axle/hub';
import { Envoy } from '@axle/envoy-agent';
import { tempDir, waitFor } from '@axle/testkit';
import {
  Bag,
  api,
  hubKey,
  joinToken,
  localSpoke,
  startCluster,
  startEnvoy,
  storedRuns,
  testEnvoyConfig,
  type HubKey,
} from './cluster.js';

/**
 * Config publish end to end: the hub publishes its config_dir, all three spokes take it, and
 * their envoys fetch it, check the hub's signature, apply it and report runs of that version.
 */
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let envoys: Envoy[];
let src: string;
let out: string;

function writePolicies(content: string): void {
  mkdirSync(join(src, 'policies'), { recursive: true });
  mkdirSync(join(src, 'files'), { recursive: true });
  writeFileSync(join(src, 'files', 'motd'), content);
  writeFileSync(
    join(src, 'policies', 'motd.yaml'),
    `name: motd\nresources:\n  - file: ${join(out, 'motd')}\n    source: files/motd\n    mode: "0644"\n`,
  );
}

beforeAll(async () => {
  key = await hubKey(bag);
  const spokes = await Promise.all(['dc1', 'dc2', 'dc3'].map((id) => localSpoke(bag, id, key)));
  // The config directory is named in each publish call, as `axle config publish --dir` does.
  const c = await startCluster(
    bag,
    key,
    spokes.map((s, i) => ({ ...s, patterns: [`*.dc${i + 1}.*`] })),
    { dirPrefix: 'axle-envoy-config-' },
  );
  hub = c.hub;
  src = join(c.root, 'src');
  out = join(c.root, 'out');
  mkdirSync(out);
  writePolicies('version one\n');
  const hosts = [
    'web1.dc1.example.com',
    'web2.dc1.example.com',
    'db1.dc2.example.com',
    'db2.dc2.example.com',
    'lb1.dc3.example.com',
    'lb2.dc3.example.com',
  ];
  envoys = await Promise.all(hosts.map((h) => startEnvoy(bag, testEnvoyConfig(c.root, h, [key.addr]), c.token)));
  await waitFor(() => envoys.every((e) => e.state.connected !== undefined), {
    timeoutMs: 20_000,
    what: 'envoys connected',
  });
});
afterAll(() => bag.run());

async function publish(): Promise<number> {
  const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: { dir: src } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body.spokes).toEqual({ dc1: 'ok', dc2: 'ok', dc3: 'ok' });
  return r.body.version as number;
}

describe('config publish reaches the envoys', () => {
  it('every envoy fetches, verifies and applies the published version and reports a run of it', async () => {
    const v = await publish();
    await waitFor(() => envoys.every((e) => e.state.configVersion === v), {
      timeoutMs: 30_000,
      what: `all envoys at version ${v}`,
    });
    await waitFor(() => readFileSync(join(out, 'motd'), 'utf8') === 'version one\n', {
      what: 'motd written by the policy',
    });
    await waitFor(
      async () => {
        for (const e of envoys) {
          const runs = (await storedRuns(hub, e.config.hostname)) as unknown as {
            configVersion: number;
            compliant: boolean;
          }[];
          if (!runs.some((r) => r.configVersion === v && r.compliant)) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, what: 'a compliant run of the new version from every envoy' },
    );
  });

  it('a new version replaces the applied one', async () => {
    writePolicies('version two\n');
    const v = await publish();
    await waitFor(() => envoys.every((e) => e.state.configVersion === v), {
      timeoutMs: 30_000,
      what: `all envoys at version ${v}`,
    });
    await waitFor(() => readFileSync(join(out, 'motd'), 'utf8') === 'version two\n', { what: 'motd rewritten' });
  });

  it('an envoy that pins other hub keys refuses a bundle this hub signed, and keeps what it has', async () => {
    const t = tempDir('axle-envoy-pinned-');
    bag.add(t.cleanup);
    const host = 'web9.dc1.example.com';
    // Enrolled unpinned (a pinned envoy would refuse this hub at enrollment too), then run pinned.
    const enrolled = await startEnvoy(bag, testEnvoyConfig(t.dir, host, [key.addr]), await joinToken(hub));
    await enrolled.stop();
    const lines: string[] = [];
    const pinned = new Envoy(
      testEnvoyConfig(t.dir, host, [key.addr], { hub_pubkeys: [toBase64(generateKeyPair().publicKey)] }),
      {
        logger: createLogger({
          daemon: 'envoy',
          id: host,
          level: 'warn',
          destination: { write: (l: string) => void lines.push(l) },
        }),
      },
    );
    await pinned.start();
    bag.add(() => pinned.stop());
    await waitFor(
      () =>
        lines.some((l) => l.includes('could not apply the config bundle') && l.includes('not from a trusted hub key')),
      {
        timeoutMs: 20_000,
        what: 'the pinned envoy to refuse the bundle',
      },
    );
    expect(pinned.state.configVersion).toBe(0);
  });
});
