import { statSync } from 'node:fs';
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
  startHub,
  directory,
} from '@axle/testkit';

const bag = new Bag();
let key: HubKey;
let hub: Hub;

beforeAll(async () => {
  key = await hubKey(bag);
  const s = await inProcessSpoke(bag, 'dc1', key);
  hub = await startHub(bag, key, {
    spokes: [{ ...s, patterns: ['*'] }],
    extra: {
      api: { rate_limit: { requests: 1, per: '1m', burst: 40 }, max_body_bytes: 1024 },
      enrollment: { rate_limit: { requests: 1, per: '1m', burst: 3 } },
    },
  });
});
afterAll(() => bag.run());

describe('HTTP API auth, roles and limits', () => {
  it('writes the admin token 0600 on first start', () => {
    const st = statSync(join(key.dir, 'admin.token'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(hub.adminToken).toMatch(/^axa_/);
  });

  it('answers 401 without or with a bad token, 403 for a viewer writing, with clear bodies', async () => {
    const none = await api(hub, 'GET', '/api/v1/spokes');
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ code: 'E_NOT_AUTHENTICATED' });
    expect(none.body.error.message).toMatch(/Authorization: Bearer/);
    expect(none.body.error.message).toContain('admin.token');
    const bad = await api(hub, 'GET', '/api/v1/spokes', { token: 'axa_nope' });
    expect(bad.status).toBe(401);
    expect(bad.body.error.message).toMatch(/not valid/);

    const v = await api(hub, 'POST', '/api/v1/api-tokens', {
      token: hub.adminToken,
      body: { role: 'viewer', name: 'dash' },
    });
    expect(v.status).toBe(200);
    const viewer = v.body.secret as string;
    expect((await api(hub, 'GET', '/api/v1/spokes', { token: viewer })).status).toBe(200);
    const w = await api(hub, 'POST', '/api/v1/tokens', { token: viewer, body: {} });
    expect(w.status).toBe(403);
    expect(w.body.error).toMatchObject({ code: 'E_FORBIDDEN' });
    expect(w.body.error.message).toMatch(/token "dash" has role viewer; this request needs an admin token/);
    expect((await api(hub, 'GET', '/api/v1/tokens', { token: viewer })).status).toBe(403);

    // A revoked token is refused from then on.
    await api(hub, 'DELETE', `/api/v1/api-tokens/${v.body.token.id}`, { token: hub.adminToken });
    expect((await api(hub, 'GET', '/api/v1/spokes', { token: viewer })).status).toBe(401);
  });

  it('rate-limits each token on its own, with Retry-After', async () => {
    const a = await api(hub, 'POST', '/api/v1/api-tokens', {
      token: hub.adminToken,
      body: { role: 'viewer', name: 'a' },
    });
    const b = await api(hub, 'POST', '/api/v1/api-tokens', {
      token: hub.adminToken,
      body: { role: 'viewer', name: 'b' },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 42; i++) statuses.push((await api(hub, 'GET', '/api/v1/hub', { token: a.body.secret })).status);
    expect(statuses.slice(0, 40).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(40)).toEqual([429, 429]);
    const limited = await api(hub, 'GET', '/api/v1/hub', { token: a.body.secret });
    expect(limited.body.error).toMatchObject({ code: 'E_RATE_LIMITED' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await api(hub, 'GET', '/api/v1/hub', { token: b.body.secret })).status).toBe(200);
  });

  it('refuses oversized and malformed bodies without storing anything', async () => {
    const n = (await joinTokens(hub)).length;
    const big = await api(hub, 'POST', '/api/v1/tokens', {
      token: hub.adminToken,
      raw: JSON.stringify({ note: 'x'.repeat(5000) }),
    });
    expect(big.status).toBe(413);
    const bad = await api(hub, 'POST', '/api/v1/tokens', { token: hub.adminToken, raw: '{"note":' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/not valid JSON/);
    const wrong = await api(hub, 'POST', '/api/v1/tokens', {
      token: hub.adminToken,
      body: { max_uses: -1, pattern: 'a/b' },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toMatch(/max_uses/);
    expect((await joinTokens(hub)).length).toBe(n);
    expect((await api(hub, 'GET', '/api/v1/nothing-here', { token: hub.adminToken })).status).toBe(404);
  });

  it('serves healthz, readyz and metrics without a token', async () => {
    expect((await api(hub, 'GET', '/healthz')).body).toEqual({ ok: true });
    expect((await api(hub, 'GET', '/readyz')).body).toEqual({ ready: true });
    const m = await api(hub, 'GET', '/metrics');
    expect(m.status).toBe(200);
    for (const name of [
      'axle_hub_spokes',
      'axle_hub_envoys',
      'axle_hub_probe_latency_seconds',
      'axle_hub_enrollments_total',
      'axle_hub_fanout_duration_seconds',
      'axle_hub_drains_total',
      'axle_hub_compliance_ratio',
    ]) {
      expect(m.body).toContain(name);
    }
  });

  it('rate-limits enrollment per source address', async () => {
    const t = await joinToken(hub);
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        await enroll(hub.addr, envoy(`rl${i}.x`), t);
        codes.push('ok');
      } catch (e) {
        codes.push(isAxleError(e) ? e.code : 'other');
      }
    }
    expect(codes).toEqual(['ok', 'ok', 'ok', 'E_RATE_LIMITED', 'E_RATE_LIMITED']);
    expect((await directory(hub)).has('rl3.x')).toBe(false);
    const m = await api(hub, 'GET', '/metrics');
    expect(m.body).toMatch(/axle_hub_enrollments_total\{outcome="rate_limited"\} 2/);
  });
});
