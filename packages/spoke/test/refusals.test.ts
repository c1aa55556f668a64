import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair, type Connection } from '@axle/shared';
import {
  adopt,
  checkin,
  envoyConnect,
  getEnvoy,
  hubConnect,
  makeRun,
  newEnvoy,
  report,
  stats,
  SpokeSession,
} from './helpers.js';

const session = new SpokeSession(afterEach);

const target = { spokeId: 'dc2', addr: '127.0.0.1:1531', pubkey: generateKeyPair().publicKey };

/** Everything a hub can see about the spoke, to show a refusal changed nothing. */
async function snapshot(hub: Connection, hostnames: string[], term = 1) {
  const page = await hub.request({ type: 'list_envoys', term, filter: {} }, 10_000, 'envoy_page');
  const details = await Promise.all(hostnames.map((h) => getEnvoy(hub, h, term)));
  const runs = await hub.request({ type: 'list_runs', term, limit: 1000 }, 10_000, 'run_list');
  const s = await stats(hub, term);
  return { page, details, runs: runs.runs, compliance: s.compliance, envoys: s.envoys, term: s.term };
}

describe('spoke: refusals change nothing', () => {
  it('refuses unknown keys, and a known hostname with the wrong key', async () => {
    const f = await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web1.dc1.example.com');
    await adopt(hub, [a]);
    const before = await snapshot(hub, [a.hostname]);
    await expect(envoyConnect(f.spoke, 'stranger.example.com', generateKeyPair())).rejects.toMatchObject({
      code: 'E_UNKNOWN_KEY',
    });
    await expect(envoyConnect(f.spoke, a.hostname, generateKeyPair())).rejects.toMatchObject({ code: 'E_UNKNOWN_KEY' });
    expect(await snapshot(hub, [a.hostname])).toEqual(before);
    await expect(envoyConnect(f.spoke, a.hostname, a.key).then((c) => (c.close(), 'ok'))).resolves.toBe('ok');
  });

  it('answers a stale epoch with a redirect to the hub and stores nothing', async () => {
    await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web2.dc1.example.com', 5);
    await adopt(hub, [a]);
    // An adopt with an older epoch than stored is ignored.
    expect(await adopt(hub, [{ ...a, key: generateKeyPair(), epoch: 3 }])).toBe(0);
    const c = await session.envoy(a);
    const before = await snapshot(hub, [a.hostname]);
    const r = await checkin(c, a, { epoch: 4, traits: { os: 'x' } });
    expect(r).toMatchObject({ type: 'redirect', epoch: 5, term: 1 });
    expect(r).not.toHaveProperty('to');
    expect(await report(c, { ...a, epoch: 4 }, makeRun(a.hostname))).toMatchObject({ type: 'redirect', epoch: 5 });
    expect(await snapshot(hub, [a.hostname])).toEqual(before);
  });

  it('redirects a released envoy to its new spoke, and re-adoption reactivates it', async () => {
    await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web3.dc1.example.com', 1);
    const b = newEnvoy('web4.dc1.example.com', 1);
    await adopt(hub, [a, b]);
    const c = await session.envoy(a);
    await report(c, a, makeRun(a.hostname));
    const rel = await hub.request(
      {
        type: 'release',
        term: 1,
        envoys: [
          { hostname: a.hostname, epoch: 2, to: target },
          { hostname: b.hostname, epoch: 2 },
        ],
      },
      10_000,
      'released',
    );
    expect(rel.count).toBe(2);
    const before = await snapshot(hub, [a.hostname, b.hostname]);
    expect(before.envoys).toBe(0);
    expect(before.details[0]!.envoy).toBeUndefined();

    expect(await checkin(c, a)).toMatchObject({
      type: 'redirect',
      to: { spokeId: 'dc2', addr: target.addr },
      epoch: 2,
      term: 1,
    });
    expect(await report(c, a, makeRun(a.hostname))).toMatchObject({ type: 'redirect', to: { spokeId: 'dc2' } });
    // A released envoy can still connect (to be told where to go); without `to` it asks the hub.
    const cb = await session.envoy(b);
    const rb = await checkin(cb, b);
    expect(rb).toMatchObject({ type: 'redirect', epoch: 2 });
    expect(rb).not.toHaveProperty('to');
    expect(await snapshot(hub, [a.hostname, b.hostname])).toEqual(before);

    expect(await adopt(hub, [{ ...a, epoch: 3 }])).toBe(1);
    expect(await checkin(c, { ...a, epoch: 3 })).toMatchObject({ type: 'checkin_ok' });
    expect((await stats(hub)).envoys).toBe(1);
  });

  it('answers a bad report with an error and stores nothing', async () => {
    await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web5.dc1.example.com');
    const b = newEnvoy('web6.dc1.example.com');
    await adopt(hub, [a, b]);
    const c = await session.envoy(a);
    const before = await snapshot(hub, [a.hostname, b.hostname]);
    const good = makeRun(a.hostname);
    const bad = [
      { ...good, id: 'x' }, // run id too short
      { ...good, compliant: 'yes' },
      { ...good, results: [{ resource: 'r', policy: 'p', status: 'weird', message: '', durationMs: 1 }] },
      { ...good, extra: 1 },
    ];
    for (const run of bad) {
      await expect(c.request({ type: 'report', hostname: a.hostname, epoch: 1, run } as never)).rejects.toMatchObject({
        code: 'E_BAD_MESSAGE',
      });
    }
    await expect(report(c, a, { ...good, hostname: b.hostname })).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(report(c, a, { ...good, finishedAt: good.startedAt - 1 })).rejects.toMatchObject({
      code: 'E_INVALID',
    });
    // A message for another envoy on this envoy's connection.
    await expect(report(c, b, makeRun(b.hostname))).rejects.toMatchObject({ code: 'E_SENDER_MISMATCH' });
    await expect(checkin(c, b)).rejects.toMatchObject({ code: 'E_SENDER_MISMATCH' });
    // Hub orders on an envoy connection.
    await expect(c.request({ type: 'stats', term: 9 })).rejects.toMatchObject({ code: 'E_INVALID' });
    expect(await snapshot(hub, [a.hostname, b.hostname])).toEqual(before);
    // The connection still works afterwards.
    expect(await report(c, a, good)).toMatchObject({ type: 'ack', duplicate: false });
  });

  it('refuses a hub key it does not trust', async () => {
    const f = await session.start();
    const hub = await session.hub();
    await adopt(hub, [newEnvoy('web7.dc1.example.com')]);
    const before = await snapshot(hub, ['web7.dc1.example.com']);
    await expect(hubConnect(f.spoke, generateKeyPair(), 'rogue')).rejects.toMatchObject({ code: 'E_UNKNOWN_KEY' });
    // An envoy key cannot pose as a hub either.
    const a = newEnvoy('web8.dc1.example.com');
    await adopt(hub, [a]);
    const mid = await snapshot(hub, ['web7.dc1.example.com', a.hostname]);
    await expect(hubConnect(f.spoke, a.key, a.hostname)).rejects.toMatchObject({ code: 'E_UNKNOWN_KEY' });
    expect(await snapshot(hub, ['web7.dc1.example.com', a.hostname])).toEqual(mid);
    expect(before.envoys).toBe(1);
  });

  it('refuses every order and query from a lower term, and follows a higher one', async () => {
    await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web9.dc1.example.com', 1);
    await adopt(hub, [a], 5);
    const before = await snapshot(hub, [a.hostname], 5);
    const stale = [
      {
        type: 'adopt',
        term: 4,
        envoys: [{ hostname: 'new.example.com', pubkey: generateKeyPair().publicKey, epoch: 9 }],
      },
      { type: 'release', term: 4, envoys: [{ hostname: a.hostname, epoch: 9 }] },
      { type: 'list_envoys', term: 4, filter: {} },
      { type: 'get_envoy', term: 4, hostname: a.hostname },
      { type: 'list_runs', term: 4, limit: 1 },
      { type: 'stats', term: 4 },
      { type: 'probe', term: 0 },
    ] as const;
    for (const msg of stale) await expect(hub.request(msg as never)).rejects.toMatchObject({ code: 'E_STALE_TERM' });
    expect(await snapshot(hub, [a.hostname], 5)).toEqual(before);
    // A second (promoted) hub with a higher term takes over; the old one is now stale.
    await hub.request({ type: 'probe', term: 6 }, 10_000, 'probe_ok');
    await expect(hub.request({ type: 'stats', term: 5 })).rejects.toMatchObject({ code: 'E_STALE_TERM' });
    const c = await session.envoy(a);
    expect(await checkin(c, a)).toMatchObject({ type: 'checkin_ok', term: 6 });
  });
});
