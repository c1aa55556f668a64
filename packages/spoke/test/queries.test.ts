import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, EnvoyFilter } from '@axle/shared';
import { adopt, checkin, makeRun, newEnvoy, report, SpokeSession, type TestEnvoy } from './helpers.js';

const session = new SpokeSession(afterAll);
let hub: Connection;
const envoys: TestEnvoy[] = [];
let midSeen = 0;

const list = (filter: EnvoyFilter) => hub.request({ type: 'list_envoys', term: 1, filter }, 10_000, 'envoy_page');
const names = async (filter: EnvoyFilter) => (await list(filter)).items.map((e) => e.hostname);

beforeAll(async () => {
  await session.start();
  hub = await session.hub();
  // 12 envoys in two sites; the web ones report compliant, db ones noncompliant, cache ones never run.
  for (const site of ['dc1', 'dc2']) {
    for (const role of ['web', 'db', 'cache'])
      for (const n of [1, 2]) envoys.push(newEnvoy(`${role}${n}.${site}.example.com`));
  }
  await adopt(hub, envoys);
  for (const [i, e] of envoys.entries()) {
    if (e.hostname.startsWith('cache')) continue;
    const c = await session.envoy(e);
    await checkin(c, e, {
      traits: { role: e.hostname.slice(0, e.hostname.search(/\d/)), site: e.hostname.split('.')[1]!, n: i },
    });
    if (i === 3) midSeen = Date.now() + 1;
    await report(c, e, makeRun(e.hostname, { compliant: e.hostname.startsWith('web') }));
  }
});

describe('spoke: hub queries', () => {
  it('lists envoys sorted by hostname with a total', async () => {
    const page = await list({});
    expect(page.total).toBe(12);
    expect(page.more).toBe(false);
    const hosts = page.items.map((e) => e.hostname);
    expect(hosts).toEqual([...hosts].sort());
    expect(page.items.find((e) => e.hostname === 'cache1.dc1.example.com')).toMatchObject({
      compliance: 'unknown',
      lastSeen: 0,
      connected: false,
      spokeId: 'dc1',
    });
  });

  it('filters by hostname glob, compliance, trait and last seen', async () => {
    expect(await names({ match: '*.dc2.*' })).toEqual([
      'cache1.dc2.example.com',
      'cache2.dc2.example.com',
      'db1.dc2.example.com',
      'db2.dc2.example.com',
      'web1.dc2.example.com',
      'web2.dc2.example.com',
    ]);
    expect(await names({ match: 'web?.*' })).toHaveLength(4);
    expect(await names({ compliance: 'noncompliant' })).toEqual([
      'db1.dc1.example.com',
      'db1.dc2.example.com',
      'db2.dc1.example.com',
      'db2.dc2.example.com',
    ]);
    expect(await names({ compliance: 'unknown', match: '*.dc1.*' })).toEqual([
      'cache1.dc1.example.com',
      'cache2.dc1.example.com',
    ]);
    expect(await names({ traits: { role: 'web', site: 'dc1' } })).toEqual([
      'web1.dc1.example.com',
      'web2.dc1.example.com',
    ]);
    expect(await names({ traits: { n: '7' } })).toEqual(['web2.dc2.example.com']);
    expect(await names({ traits: { role: 'nope' } })).toEqual([]);
    const never = await names({ seenBefore: 1 });
    expect(never).toHaveLength(4);
    expect(never.every((h) => h.startsWith('cache'))).toBe(true);
    const recent = await list({ seenAfter: midSeen });
    const older = await list({ seenBefore: midSeen });
    expect(recent.total + older.total).toBe(12);
    expect(recent.total).toBeGreaterThan(0);
    expect(older.total).toBeGreaterThan(4);
    expect(recent.items.every((e) => e.lastSeen >= midSeen)).toBe(true);
  });

  it('pages with a cursor and limit, without gaps or repeats', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await list({ limit: 5, ...(after ? { after } : {}) });
      expect(page.total).toBe(12);
      seen.push(...page.items.map((e) => e.hostname));
      if (!page.more) break;
      after = page.items.at(-1)!.hostname;
    }
    expect(seen).toEqual((await list({})).items.map((e) => e.hostname));
    const filtered = await list({ limit: 1, compliance: 'compliant' });
    expect(filtered).toMatchObject({ total: 4, more: true });
    expect(filtered.items).toHaveLength(1);
  });

  it('gets one envoy with traits and recent runs, and lists runs per envoy', async () => {
    const d = await hub.request(
      { type: 'get_envoy', term: 1, hostname: 'db1.dc1.example.com', runs: 5 },
      10_000,
      'envoy_detail',
    );
    expect(d.envoy).toMatchObject({ hostname: 'db1.dc1.example.com', compliance: 'noncompliant', connected: true });
    expect(d.traits).toMatchObject({ role: 'db', site: 'dc1' });
    expect(d.runs).toHaveLength(1);
    expect(d.runs[0]!.results).toHaveLength(2);
    const missing = await hub.request(
      { type: 'get_envoy', term: 1, hostname: 'nobody.example.com' },
      10_000,
      'envoy_detail',
    );
    expect(missing).toEqual({ type: 'envoy_detail', runs: [] });
    const runs = await hub.request(
      { type: 'list_runs', term: 1, hostname: 'web1.dc2.example.com', limit: 10 },
      10_000,
      'run_list',
    );
    expect(runs.runs.map((r) => r.hostname)).toEqual(['web1.dc2.example.com']);
    const all = await hub.request({ type: 'list_runs', term: 1, limit: 3 }, 10_000, 'run_list');
    expect(all.runs).toHaveLength(3);
    expect(all.runs[0]!.finishedAt).toBeGreaterThanOrEqual(all.runs[2]!.finishedAt);
  });
});
