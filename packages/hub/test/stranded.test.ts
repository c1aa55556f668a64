import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { HostRouter, hubConfigFrom, type Hub } from '@axle/hub';
import { UnplacedTally, place, placementOrder } from '../src/placement/order.js';
import {
  api,
  Bag,
  checkin,
  enroll,
  envoy,
  hubConfigObject,
  hubKey,
  type HubKey,
  type HubOptions,
  inProcessSpoke,
  joinToken,
  locate,
  procSpoke,
  type ProcSpoke,
  type SpokeRef,
  startHub,
  waitFor,
  writeConfig,
  directory,
} from '@axle/testkit';
import { type Enrolled, enrollGrid } from './fleet-setup.js';

describe('placement order', () => {
  const router = new HostRouter(
    [
      { id: 'dc1', patterns: ['*.dc1.*'] },
      { id: 'dc2', patterns: ['*.dc2.*', '*.dc1.*'] },
      { id: 'dc3', patterns: ['*.dc3.*'] },
    ],
    'dc3',
  );
  const open = () => undefined;

  it('is the named target alone, else other matching spokes, then failover_to, then default_spoke', () => {
    const base = { router, from: 'dc1', failoverTo: ['dc3', 'dc2'], refusal: open };
    expect(placementOrder({ ...base, to: 'dc3' }, 'a.dc1.x')).toEqual([{ spokeId: 'dc3', via: 'to' }]);
    expect(placementOrder(base, 'a.dc1.x')).toEqual([
      { spokeId: 'dc2', via: 'pattern' },
      { spokeId: 'dc3', via: 'failover' },
    ]);
    expect(placementOrder({ ...base, failoverTo: [] }, 'a.nowhere')).toEqual([{ spokeId: 'dc3', via: 'default' }]);
    expect(place(base, 'a.dc1.x')).toEqual({ ok: true, spokeId: 'dc2', via: 'pattern' });
    expect(place({ ...base, refusal: (id) => (id === 'dc2' ? 'offline' : undefined) }, 'a.dc1.x')).toEqual({
      ok: true,
      spokeId: 'dc3',
      via: 'failover',
    });
  });

  it('says why nothing can take an envoy, naming spokes but no host', () => {
    const lone = new HostRouter([{ id: 'dc1', patterns: ['*.dc1.*'] }]);
    expect(place({ router: lone, from: 'dc1', failoverTo: [], refusal: open }, 'a.dc1.x')).toEqual({
      ok: false,
      code: 'no_match',
      reason: 'no spoke other than dc1 matches their names and dc1 has no failover_to and there is no default_spoke',
    });
    const down = place(
      {
        router,
        from: 'dc1',
        failoverTo: ['dc3'],
        refusal: (id) => (id === 'dc2' ? 'offline' : 'full: 5 of max_envoys 5'),
      },
      'a.dc1.x',
    );
    expect(down).toEqual({
      ok: false,
      code: 'unavailable',
      reason: 'every spoke that may take them is down or full: dc2 (offline), dc3 (full: 5 of max_envoys 5)',
    });
  });

  it('tallies unplaced envoys by reason, with a bounded number of reasons and examples', () => {
    const t = new UnplacedTally();
    for (let i = 0; i < 30; i++) t.add('failed', `reason ${i}`, [`h${i}.a`, `h${i}.b`]);
    for (let i = 0; i < 8; i++) t.add('no_match', 'reason 0 again', [`x${i}`]);
    expect(t.reasons.length).toBe(11);
    expect(t.reasons.reduce((n, r) => n + r.count, 0)).toBe(68);
    const other = t.reasons.find((r) => r.reason.startsWith('other reasons'))!;
    expect(other.count).toBe(20 * 2 + 8);
    expect(other.examples).toHaveLength(5);
  });

  it('refuses a failover_to naming an unknown spoke, the spoke itself, or one twice', () => {
    const pub = toBase64(generateKeyPair().publicKey);
    const cfg = (failover_to: string[]) => ({
      server_id: 'h',
      listen: '127.0.0.1:0',
      data_dir: '/tmp/x',
      spanner: {
        role: 'hub',
        spokes: [
          { id: 'dc1', addr: 'a:1', pubkey: pub, failover_to },
          { id: 'dc2', addr: 'b:1', pubkey: pub },
        ],
      },
    });
    expect(() => hubConfigFrom(cfg(['dc9']))).toThrow(
      /spanner\.spokes\[0\]\.failover_to\[0\]: names "dc9", which is not in spanner\.spokes/,
    );
    expect(() => hubConfigFrom(cfg(['dc1']))).toThrow(/failover_to\[0\]: names spoke "dc1" itself/);
    expect(() => hubConfigFrom(cfg(['dc2', 'dc2']))).toThrow(/failover_to\[1\]: lists "dc2" twice/);
    expect(hubConfigFrom(cfg(['dc2'])).spanner.spokes[0]!.failover_to).toEqual(['dc2']);
  });
});

/**
 * A hub with spokes as child processes that are killed: a drain that cannot place its envoys
 * ends partial and says why; a spoke added by a reload, or a spoke coming back, gets them
 * placed without anyone acting; a failover group takes a dead spoke's envoys.
 */
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let opts: HubOptions;
let dc1: SpokeRef;
let dc2: ProcSpoke;
let dc3: ProcSpoke;
let dc4: ProcSpoke;
let token: string;
let enrolled: Enrolled;
const admin = () => ({ token: hub.adminToken });
const spokeOf = async (h: string) => (await directory(hub)).get(h)!.spokeId;
const hostsOf = (dc: string) => [...enrolled.keys()].filter((h) => h.includes(`.${dc}.`));
const view = async (id: string) => (await api(hub, 'GET', `/api/v1/spokes/${id}`, admin())).body;
const events = async (types: string) =>
  (await api(hub, 'GET', `/api/v1/events?type=${types}&limit=1000`, admin())).body.events as {
    type: string;
    data: Record<string, unknown>;
  }[];
const metric = async (re: RegExp) => re.exec((await api(hub, 'GET', '/metrics')).body)?.[1];

function rewriteHubConfig(withDc4: boolean): void {
  const spokes = [...opts.spokes, ...(withDc4 ? [{ ...dc4, patterns: ['*.dc2.*'] }] : [])];
  writeConfig(key.configFile, hubConfigObject(key, { ...opts, spokes }));
}

beforeAll(async () => {
  key = await hubKey(bag);
  const hubAddr = key.addr;
  dc1 = await inProcessSpoke(bag, 'dc1', key);
  [dc2, dc3, dc4] = await Promise.all([
    procSpoke(bag, 'dc2', key, { hubAddr }),
    procSpoke(bag, 'dc3', key, { hubAddr }),
    procSpoke(bag, 'dc4', key, { hubAddr }),
  ]);
  opts = {
    port: key.port,
    spokes: [
      { ...dc1, patterns: ['*.dc1.*'] },
      { ...dc2, patterns: ['*.dc2.*'] },
      { ...dc3, patterns: ['*.dc3.*'], failover_to: ['dc1'] },
    ],
    spanner: {
      auto_failover: { enabled: true, threshold: 3, interval: '150ms', drain_batch: 2, drain_jitter: '20ms' },
    },
  };
  hub = await startHub(bag, key, opts, key.configFile);
  token = await joinToken(hub);
  enrolled = await enrollGrid(hub, token, ['dc1', 'dc2', 'dc3']);
  await waitFor(async () => (await view('dc2')).live, { what: 'dc2 stats' });
}, 60_000);
afterAll(() => bag.run());

describe('a drain that cannot place every envoy', () => {
  it('ends partial, naming how many are stranded and why, in the API, the events and the metrics', async () => {
    await dc2.daemon.kill('SIGKILL');
    await waitFor(async () => (await view('dc2')).state === 'partial', { timeoutMs: 15_000, what: 'dc2 partial' });
    const v = await view('dc2');
    expect(v.stranded).toMatchObject({ count: 3 });
    expect(v.stranded.reasons).toEqual([
      {
        code: 'no_match',
        reason: 'no spoke other than dc2 matches their names and dc2 has no failover_to and there is no default_spoke',
        count: 3,
        examples: expect.arrayContaining(hostsOf('dc2')),
      },
    ]);
    // A dead spoke's figures are its last known ones, with their age; never live.
    expect(v).toMatchObject({ live: false, stats: null });
    expect(v.lastStats.spokeId).toBe('dc2');
    expect(v.lastStatsAgeS).toBeGreaterThanOrEqual(0);
    for (const h of hostsOf('dc2')) expect(await spokeOf(h)).toBe('dc2');

    const moves = (await api(hub, 'GET', '/api/v1/moves', admin())).body.moves;
    expect(moves.find((m: { from?: string }) => m.from === 'dc2')).toMatchObject({
      kind: 'failover',
      state: 'partial',
      skipped: 3,
      moved: 0,
    });
    const ev = await events('spoke.draining,spoke.drained,spoke.partial');
    expect(ev.map((e) => e.type)).toEqual(['spoke.draining', 'spoke.partial']);
    expect(ev[1]!.data).toMatchObject({ from: 'dc2', stranded: 3, state: 'partial' });
    expect(await metric(/^axle_hub_stranded_envoys\{spoke="dc2"\} (\d+)$/m)).toBe('3');
    expect(await metric(/^axle_hub_stranded_envoys\{spoke="dc1"\} (\d+)$/m)).toBe('0');
    expect(await metric(/^axle_hub_spokes\{state="partial"\} (\d+)$/m)).toBe('1');
    // A stranded spoke takes no new envoys.
    await expect(enroll(hub.addr, envoy('new.dc2.example.com'), token)).rejects.toThrow(/dc2 \(partial\)/);
  });

  it('places them without anyone acting once a reload adds a spoke that matches them', async () => {
    rewriteHubConfig(true);
    await hub.reload();
    await waitFor(async () => (await view('dc2')).state === 'drained', { timeoutMs: 15_000, what: 'dc2 drained' });
    expect((await view('dc2')).stranded).toEqual({ count: 0, reasons: [], since: null });
    for (const h of hostsOf('dc2')) {
      expect(await spokeOf(h)).toBe('dc4');
      const { e, a } = enrolled.get(h)!;
      const now = await locate(hub.addr, e);
      expect(now.target!.spokeId).toBe('dc4');
      expect(now.epoch).toBeGreaterThan(a.epoch);
      expect((await checkin(now, e)).type).toBe('checkin_ok');
      enrolled.set(h, { e, a: now });
    }
    const ev = await events('spoke.draining,spoke.drained,spoke.partial');
    expect(ev.map((e) => e.type)).toEqual(['spoke.draining', 'spoke.partial', 'spoke.draining', 'spoke.drained']);
    expect(ev[2]!.data.trigger).toBe('the hub config was reloaded: dc4 can take them');
    expect(ev[3]!.data).toMatchObject({ moved: 3, trigger: 'the hub config was reloaded: dc4 can take them' });
    expect(await metric(/^axle_hub_stranded_envoys\{spoke="dc2"\} (\d+)$/m)).toBe('0');
  });

  it('places them once a matching spoke that was down comes back', async () => {
    // dc4 holds dc2's envoys; with dc4 dead the only other match is dc2, itself dead and drained.
    await dc4.daemon.kill('SIGKILL');
    await waitFor(async () => (await view('dc4')).state === 'partial', { timeoutMs: 15_000, what: 'dc4 partial' });
    expect((await view('dc4')).stranded.reasons).toEqual([
      {
        code: 'unavailable',
        reason: 'every spoke that may take them is down or full: dc2 (drained)',
        count: 3,
        examples: expect.arrayContaining(hostsOf('dc2')),
      },
    ]);
    await dc2.start();
    await waitFor(async () => (await view('dc4')).state === 'drained', { timeoutMs: 15_000, what: 'dc4 drained' });
    expect((await view('dc2')).state).toBe('online');
    for (const h of hostsOf('dc2')) expect(await spokeOf(h)).toBe('dc2');
    const last = (await events('spoke.drained')).at(-1)!;
    expect(last.data).toMatchObject({ from: 'dc4', moved: 3 });
    expect(last.data.trigger).toMatch(/: dc2 can take them$/);
  });
});

describe('a failover group (failover_to)', () => {
  it("takes a dead spoke's envoys when no other pattern matches; the spoke releases them when it is back", async () => {
    await dc3.daemon.kill('SIGKILL');
    await waitFor(async () => (await view('dc3')).state === 'drained', { timeoutMs: 15_000, what: 'dc3 drained' });
    for (const h of hostsOf('dc3')) expect(await spokeOf(h)).toBe('dc1');
    const m = (await api(hub, 'GET', '/api/v1/moves', admin())).body.moves.find(
      (x: { from?: string }) => x.from === 'dc3',
    );
    expect(m).toMatchObject({ kind: 'failover', state: 'done', moved: 3, skipped: 0, failed: 0 });

    await dc3.start();
    await waitFor(async () => (await view('dc3')).state === 'online', { timeoutMs: 15_000, what: 'dc3 back' });
    await waitFor(async () => (await view('dc3')).pendingReleases === 0, { what: 'releases sent' });
    const { e, a } = enrolled.get('a.dc3.example.com')!;
    const r = await checkin(a, e);
    expect(r.type).toBe('redirect');
    if (r.type === 'redirect') expect(r.to?.spokeId).toBe('dc1');
    for (const h of hostsOf('dc3')) expect(await spokeOf(h)).toBe('dc1');
    expect((await events('spoke.up')).at(-1)!.data).toMatchObject({ spoke: 'dc3', released: 3 });
  });
});
