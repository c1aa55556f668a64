import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAxleError } from '@axle/shared';
import type { Hub } from '@axle/hub';
import {
  api,
  Bag,
  enroll,
  envoy,
  hubKey,
  type HubKey,
  inProcessSpoke,
  joinToken,
  joinTokens,
  locate,
  startHub,
  waitFor,
  directory,
} from '@axle/testkit';
import { spokesHub } from './fleet-setup.js';

const bag = new Bag();
let hub: Hub;
let key: HubKey;

beforeAll(async () => {
  key = await hubKey(bag);
  ({ hub } = await spokesHub(bag, key, ['dc1', 'dc2', 'dc3']));
});
afterAll(() => bag.run());

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isAxleError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'ok';
}

describe('join tokens', () => {
  it('are stored hashed and shown once', async () => {
    const r = await api(hub, 'POST', '/api/v1/tokens', { token: hub.adminToken, body: { note: 'ci' } });
    expect(r.status).toBe(200);
    expect(r.body.secret).toMatch(/^axj_/);
    // What a copy of the data dir holds: the secret's SHA-256 in the store, the secret nowhere.
    const hash = createHash('sha256').update(r.body.secret, 'utf8').digest('hex');
    expect(readFileSync(join(key.dir, 'hub.lmdb')).includes(hash)).toBe(true);
    for (const f of readdirSync(key.dir)) expect(readFileSync(join(key.dir, f)).includes(r.body.secret)).toBe(false);
    const list = await api(hub, 'GET', '/api/v1/tokens', { token: hub.adminToken });
    expect(JSON.stringify(list.body)).not.toContain(r.body.secret);
    expect(JSON.stringify(list.body)).not.toContain(hash);
  });

  it('enforce the hostname pattern scope', async () => {
    const t = await joinToken(hub, { pattern: '*.dc1.*' });
    expect(await code(enroll(hub.addr, envoy('db1.dc2.x'), t))).toMatch(
      /^E_BAD_TOKEN: .*may only enroll hosts matching "\*\.dc1\.\*", not "db1\.dc2\.x"/,
    );
    expect((await directory(hub)).has('db1.dc2.x')).toBe(false);
    const a = await enroll(hub.addr, envoy('db1.dc1.x'), t);
    expect(a.target!.spokeId).toBe('dc1');
  });

  it('enforce use counts, expiry, revocation and refuse unknown tokens', async () => {
    const once = await joinToken(hub, { max_uses: 1 });
    await enroll(hub.addr, envoy('a1.dc1.x'), once);
    expect(await code(enroll(hub.addr, envoy('a2.dc1.x'), once))).toMatch(/^E_BAD_TOKEN: .*used 1 of 1 times/);

    // Concurrent enrollments cannot overrun max_uses.
    const two = await joinToken(hub, { max_uses: 2 });
    const results = await Promise.all(
      ['c1', 'c2', 'c3', 'c4'].map((h) => code(enroll(hub.addr, envoy(`${h}.dc2.x`), two))),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(2);
    expect((await joinTokens(hub)).find((t) => t.maxUses === 2)!.uses).toBe(2);

    const short = await joinToken(hub, { ttl: '1s' });
    let n = 0;
    await waitFor(async () => (await code(enroll(hub.addr, envoy(`late${++n}.dc1.x`), short))).includes('expired'), {
      timeoutMs: 5000,
      intervalMs: 100,
      what: 'token expiry',
    });
    expect((await directory(hub)).has(`late${n}.dc1.x`)).toBe(false);

    const rev = await api(hub, 'POST', '/api/v1/tokens', { token: hub.adminToken, body: {} });
    const del = await api(hub, 'DELETE', `/api/v1/tokens/${rev.body.token.id}`, { token: hub.adminToken });
    expect(del.body.token.state).toBe('revoked');
    expect(await code(enroll(hub.addr, envoy('r1.dc1.x'), rev.body.secret))).toMatch(/^E_BAD_TOKEN: .*revoked/);

    expect(await code(enroll(hub.addr, envoy('u1.dc1.x'), 'axj_not-a-token'))).toMatch(
      /^E_BAD_TOKEN: the join token is not known/,
    );
  });

  it('bind host name to key: same key re-enrolls idempotently, another key is refused until an admin allows a re-key', async () => {
    const t = await joinToken(hub);
    const e = envoy('web1.dc3.x');
    const a = await enroll(hub.addr, e, t);
    const again = await enroll(hub.addr, e, t);
    expect(again.epoch).toBe(a.epoch);

    const rebuilt = { hostname: e.hostname, key: envoy('y').key };
    expect(await code(enroll(hub.addr, rebuilt, t))).toMatch(
      /^E_CONFLICT: "web1.dc3.x" is already enrolled with key .*POST \/api\/v1\/envoys\/web1.dc3.x\/rekey/,
    );
    expect((await directory(hub)).get(e.hostname)!.epoch).toBe(a.epoch);

    const viewer = await api(hub, 'POST', '/api/v1/api-tokens', {
      token: hub.adminToken,
      body: { role: 'viewer', name: 'v' },
    });
    expect((await api(hub, 'POST', `/api/v1/envoys/${e.hostname}/rekey`, { token: viewer.body.secret })).status).toBe(
      403,
    );
    expect((await api(hub, 'POST', `/api/v1/envoys/${e.hostname}/rekey`, { token: hub.adminToken })).status).toBe(200);
    const b = await enroll(hub.addr, rebuilt, t);
    expect(b.epoch).toBeGreaterThan(a.epoch);
    // The old key no longer locates; the allowance is used up.
    expect(await code(locate(hub.addr, e))).toMatch(/^E_UNKNOWN_ENVOY/);
    expect(await code(enroll(hub.addr, { hostname: e.hostname, key: envoy('z').key }, t))).toMatch(/^E_CONFLICT/);
  });
});

describe('manual approval', () => {
  it('keeps enrollments pending until approved, and rejects', async () => {
    const bag2 = new Bag();
    try {
      const key = await hubKey(bag2);
      const s = await inProcessSpoke(bag2, 'm1', key);
      const h = await startHub(bag2, key, {
        spokes: [{ ...s, patterns: ['*'] }],
        extra: { enrollment: { approval: 'manual' } },
      });
      const t = await joinToken(h);
      const e = envoy('new1.lab');
      const p = await enroll(h.addr, e, t);
      expect(p.status).toBe('pending');
      expect(p.target).toBeUndefined();
      expect((await locate(h.addr, e)).status).toBe('pending');
      const list = await api(h, 'GET', '/api/v1/enrollments/pending', { token: h.adminToken });
      expect(list.body.pending.map((x: { hostname: string }) => x.hostname)).toEqual(['new1.lab']);

      const ok = await api(h, 'POST', '/api/v1/enrollments/new1.lab/approve', { token: h.adminToken });
      expect(ok.status).toBe(200);
      const a = await locate(h.addr, e);
      expect(a.status).toBe('assigned');
      expect(a.target!.spokeId).toBe('m1');

      const bad = envoy('new2.lab');
      await enroll(h.addr, bad, t);
      expect((await api(h, 'POST', '/api/v1/enrollments/new2.lab/reject', { token: h.adminToken })).status).toBe(200);
      expect(await code(locate(h.addr, bad))).toMatch(/^E_UNKNOWN_ENVOY/);
      expect((await api(h, 'POST', '/api/v1/enrollments/nobody/approve', { token: h.adminToken })).status).toBe(404);
      const ev = await api(h, 'GET', '/api/v1/events?type=envoy.pending,envoy.enrolled,envoy.rejected', {
        token: h.adminToken,
      });
      expect(ev.body.events.map((x: { type: string }) => x.type)).toEqual([
        'envoy.pending',
        'envoy.enrolled',
        'envoy.pending',
        'envoy.rejected',
      ]);
    } finally {
      await bag2.run();
    }
  });
});
