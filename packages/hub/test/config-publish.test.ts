import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { signWebhook } from '@axle/hub';
import {
  api,
  Bag,
  hubKey,
  inProcessSpoke,
  procSpoke,
  type ProcSpoke,
  type SpokeRef,
  startHub,
  tempDir,
  waitFor,
} from '@axle/testkit';

const bag = new Bag();
const SECRET = 'publish-webhook-secret-0123456789';
let hub: Hub;
let spokes: SpokeRef[];
let dc3: ProcSpoke;
let configDir: string;

function writeTree(dir: string, motd: string): void {
  mkdirSync(join(dir, 'policies'), { recursive: true });
  mkdirSync(join(dir, 'files'), { recursive: true });
  writeFileSync(join(dir, 'files', 'motd'), motd);
  writeFileSync(
    join(dir, 'policies', 'base.yaml'),
    'name: base\nresources:\n  - file: /etc/motd\n    source: files/motd\n    mode: "0644"\n',
  );
}

/** What each spoke has live, read from its own data dir. */
function liveMotd(dataDir: string): string {
  return readFileSync(join(dataDir, 'config', '.live', 'files', 'motd'), 'utf8');
}

const versionsOf = async () => (await api(hub, 'GET', '/api/v1/config/versions', { token: hub.adminToken })).body;

beforeAll(async () => {
  const key = await hubKey(bag);
  const t = tempDir('axle-config-');
  bag.add(t.cleanup);
  configDir = join(t.dir, 'src');
  writeTree(configDir, 'v1\n');
  const a = await inProcessSpoke(bag, 'dc1', key);
  const b = await inProcessSpoke(bag, 'dc2', key);
  dc3 = await procSpoke(bag, 'dc3', key);
  spokes = [a, b, dc3];
  hub = await startHub(bag, key, {
    spokes: spokes.map((s, i) => ({ ...s, patterns: [`*.dc${i + 1}.*`] })),
    spanner: { auto_failover: { enabled: false, interval: '200ms' } },
    extra: { config_dir: configDir, config_publish: { keep: 3, webhook_secret: SECRET } },
  });
  await waitFor(
    async () =>
      Object.values((await versionsOf()).spokes).every((s) => (s as { version: number | null }).version === 0),
    { what: 'spokes to report version 0' },
  );
});
afterAll(() => bag.run());

const dataDirOf = (s: SpokeRef) =>
  (s as unknown as { spoke?: { config: { data_dir: string } } }).spoke?.config.data_dir;

describe('config publish', () => {
  it('publishes to every spoke, which report the version', async () => {
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.version).toBe(1);
    expect(r.body.spokes).toEqual({ dc1: 'ok', dc2: 'ok', dc3: 'ok' });
    expect(r.body.bundle.files).toEqual(['files/motd', 'policies/base.yaml']);
    for (const s of spokes.slice(0, 2)) expect(liveMotd(dataDirOf(s) as string)).toBe('v1\n');
    await waitFor(
      async () => Object.values((await versionsOf()).spokes).every((s) => (s as { version: number }).version === 1),
      { what: 'all spokes at version 1' },
    );
    // The same content again is not a new version.
    const again = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(again.body).toMatchObject({ version: 1, unchanged: true });
  });

  it('a bad policy file blocks the publish, naming file and line', async () => {
    writeFileSync(
      join(configDir, 'policies', 'broken.yaml'),
      'name: broken\nresources:\n  - file: relative/path\n    mode: "0644"\n',
    );
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/broken\.yaml:3: resources\[0\]\.file: expected an absolute path/);
    expect((await versionsOf()).current).toBe(1);
    const { rmSync } = await import('node:fs');
    rmSync(join(configDir, 'policies', 'broken.yaml'));
  });

  it('a cycle, a dangling reference or a broken template blocks the publish before anything is signed', async () => {
    const { rmSync } = await import('node:fs');
    const cyc = join(configDir, 'policies', 'cycle.yaml');
    writeFileSync(
      cyc,
      'resources:\n  - exec: [/bin/true]\n    name: a\n    require: [exec:b]\n  - exec: [/bin/true]\n    name: b\n    require: [exec:a]\n',
    );
    const events = async () => (await api(hub, 'GET', '/api/v1/events', { token: hub.adminToken })).body;
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(
      `${cyc}:7: resources[1].require[0]: ordering cycle: exec:a -> exec:b -> exec:a`,
    );
    rmSync(cyc);
    mkdirSync(join(configDir, 'templates'), { recursive: true });
    writeFileSync(join(configDir, 'templates', 'app.liquid'), 'port={{ vars.port }}\n{% if vars.tls %}\n');
    const tpl = join(configDir, 'policies', 'tpl.yaml');
    writeFileSync(
      tpl,
      'resources:\n  - file: /etc/app.conf\n    template: templates/app.liquid\n    notify: [service:app]\n',
    );
    const r2 = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r2.body.error.message).toContain(
      `${tpl}:4: resources[0].notify[0]: no resource "service:app" in any policy`,
    );
    writeFileSync(tpl, 'resources:\n  - file: /etc/app.conf\n    template: templates/app.liquid\n');
    const r3 = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r3.body.error.message).toContain(
      `${tpl}:3: resources[0].template: templates/app.liquid:2: tag {% if vars.tls %} not closed`,
    );
    expect((await versionsOf()).current).toBe(1);
    expect(JSON.stringify(await events())).toContain('config.refused');
    rmSync(tpl);
    rmSync(join(configDir, 'templates'), { recursive: true });
  });

  it('a spoke stopped during a publish catches up when it starts again', async () => {
    await dc3.daemon.kill('SIGKILL');
    writeTree(configDir, 'v2\n');
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(r.body.version).toBe(2);
    expect(r.body.spokes.dc1).toBe('ok');
    expect(r.body.spokes.dc3).toBe('unreachable');
    await dc3.start();
    await waitFor(async () => (await versionsOf()).spokes.dc3.version === 2, {
      timeoutMs: 15_000,
      what: 'dc3 to catch up to version 2',
    });
    const m = await api(hub, 'GET', '/metrics');
    expect(m.body).toMatch(/axle_hub_config_version 2/);
    expect(m.body).toMatch(/axle_hub_spoke_config_lag\{spoke="dc3"\} 0/);
  });

  it('rolls back by publishing an old version as a new one', async () => {
    const r = await api(hub, 'POST', '/api/v1/config/rollback', { token: hub.adminToken, body: { version: 1 } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.version).toBe(3);
    expect(r.body.bundle.from).toBe(1);
    const v = await versionsOf();
    expect(v.versions.map((x: { version: number }) => x.version)).toEqual([3, 2, 1]);
    expect(v.versions[0].hash).toBe(v.versions[2].hash);
    expect(liveMotd(dataDirOf(spokes[0]!) as string)).toBe('v1\n');
    const missing = await api(hub, 'POST', '/api/v1/config/rollback', { token: hub.adminToken, body: { version: 99 } });
    expect(missing.status).toBe(404);
  });

  it('publishes from a signed webhook and refuses unsigned or stale ones', async () => {
    writeTree(configDir, 'v4\n');
    const body = JSON.stringify({ ref: 'refs/heads/main' });
    const post = (headers: Record<string, string>) =>
      fetch(`http://${hub.addr}/api/v1/webhooks/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
    const now = String(Math.floor(Date.now() / 1000));
    expect((await post({ 'x-axle-timestamp': now, 'x-axle-signature': 'sha256=00' })).status).toBe(401);
    const old = String(Math.floor(Date.now() / 1000) - 3600);
    expect((await post({ 'x-axle-timestamp': old, 'x-axle-signature': signWebhook(SECRET, old, body) })).status).toBe(
      401,
    );
    expect((await versionsOf()).current).toBe(3);
    const ok = await post({ 'x-axle-timestamp': now, 'x-axle-signature': signWebhook(SECRET, now, body) });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { version: number }).version).toBe(4);
    // keep: 3 — the oldest version is gone.
    expect((await versionsOf()).versions.map((x: { version: number }) => x.version)).toEqual([4, 3, 2]);
  });

  it('only admins publish', async () => {
    const viewer = await api(hub, 'POST', '/api/v1/api-tokens', {
      token: hub.adminToken,
      body: { role: 'viewer', name: 'ro' },
    });
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: viewer.body.secret, body: {} });
    expect(r.status).toBe(403);
    expect((await api(hub, 'GET', '/api/v1/config/versions', { token: viewer.body.secret })).status).toBe(200);
  });
});
