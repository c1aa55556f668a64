import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAxleError } from '@axle/shared';
import type { Hub } from '@axle/hub';
import {
  api,
  Bag,
  ChaosProxy,
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
  type SpokeRef,
  startHub,
  waitFor,
  writeConfig,
  directory,
} from '@axle/testkit';

const bag = new Bag();
let key: HubKey;
let hub: Hub;
let spokes: SpokeRef[];
let opts: HubOptions;
let token: string;
/** dc2 is reached through a relay, so the test can see the hub's connections to it. */
let dc2Relay: ChaosProxy;

beforeAll(async () => {
  key = await hubKey(bag);
  spokes = await Promise.all(['dc1', 'dc2', 'dc3'].map((id) => inProcessSpoke(bag, id, key)));
  dc2Relay = new ChaosProxy(spokes[1]!.addr, 'hub -> dc2');
  await dc2Relay.listen();
  bag.add(() => dc2Relay.close());
  opts = {
    spokes: [
      { ...spokes[0]!, patterns: ['*.dc1.*', 'special.*'], max_envoys: 2 },
      { ...spokes[1]!, addr: dc2Relay.addr, patterns: ['*.dc2.*', '*.dc1.*'] },
      { ...spokes[2]!, patterns: ['*.dc3.*'] },
    ],
  };
  hub = await startHub(bag, key, opts, key.configFile);
  token = await joinToken(hub);
  await waitFor(
    async () =>
      (await api(hub, 'GET', '/api/v1/spokes', { token: hub.adminToken })).body.spokes.every(
        (s: { state: string }) => s.state === 'online',
      ),
    { what: 'spokes online' },
  );
});
afterAll(() => bag.run());

async function refused(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isAxleError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('enrollment routing', () => {
  it('routes by the first matching pattern in config order, spills over a full spoke, and refuses clearly', async () => {
    const placed: Record<string, string> = {};
    const epochs: number[] = [];
    for (const h of [
      'web1.dc1.example.com',
      'web2.dc1.example.com',
      'web3.dc1.example.com',
      'db1.dc2.example.com',
      'app1.dc3.example.com',
    ]) {
      const a = await enroll(hub.addr, envoy(h), token);
      expect(a.status).toBe('assigned');
      placed[h] = a.target!.spokeId;
      epochs.push(a.epoch);
    }
    expect(placed).toEqual({
      'web1.dc1.example.com': 'dc1',
      'web2.dc1.example.com': 'dc1',
      // dc1 holds max_envoys 2: the next matching spoke in order takes it.
      'web3.dc1.example.com': 'dc2',
      'db1.dc2.example.com': 'dc2',
      'app1.dc3.example.com': 'dc3',
    });
    expect([...epochs].sort((a, b) => a - b)).toEqual(epochs);
    expect(new Set(epochs).size).toBe(epochs.length);

    // Only dc1 matches "special.*" and it is full.
    const full = await refused(enroll(hub.addr, envoy('special.example.com'), token));
    expect(full.code).toBe('E_NO_ROUTE');
    expect(full.message).toMatch(/dc1 \(full: 2 of max_envoys 2\)/);

    const none = await refused(enroll(hub.addr, envoy('lost.example.org'), token));
    expect(none.code).toBe('E_NO_ROUTE');
    expect(none.message).toMatch(/no spoke pattern matches "lost.example.org" and no default_spoke/);
    expect((await directory(hub)).has('lost.example.org')).toBe(false);
  });

  it('gives an assignment the envoy can check in with, and locate returns it for the same key only', async () => {
    const e = envoy('api1.dc3.example.com');
    const a = await enroll(hub.addr, e, token);
    expect(a.target!.spokeId).toBe('dc3');
    expect(a.term).toBe(1);
    const ok = await checkin(a, e);
    expect(ok.type).toBe('checkin_ok');

    const again = await locate(hub.addr, e);
    expect(again.target!.spokeId).toBe('dc3');
    expect(again.epoch).toBe(a.epoch);

    const impostor = { hostname: e.hostname, key: envoy('x').key };
    expect((await refused(locate(hub.addr, impostor))).code).toBe('E_UNKNOWN_ENVOY');
    expect((await refused(locate(hub.addr, envoy('never.dc3.example.com')))).code).toBe('E_UNKNOWN_ENVOY');
  });

  it('reload adds a default spoke without dropping links, and removes a spoke', async () => {
    // The hub's one link to dc2 stays open through both reloads: the relay sees no new connection.
    const dialled = dc2Relay.accepted;
    expect(dc2Relay.connections).toBe(1);
    writeConfig(key.configFile, hubConfigObject(key, { ...opts, default_spoke: 'dc3' }));
    await hub.reload();
    const a = await enroll(hub.addr, envoy('lost2.example.org'), token);
    expect(a.target!.spokeId).toBe('dc3');
    expect(dc2Relay.accepted).toBe(dialled);
    expect(dc2Relay.connections).toBe(1);

    writeFileSync(
      key.configFile,
      JSON.stringify(
        hubConfigObject(key, { ...opts, spokes: opts.spokes.filter((s) => s.id !== 'dc3'), default_spoke: 'dc2' }),
      ),
    );
    await hub.reload();
    const r = await api(hub, 'GET', '/api/v1/spokes', { token: hub.adminToken });
    expect(r.body.spokes.map((s: { id: string }) => s.id)).toEqual(['dc1', 'dc2']);
    const b = await enroll(hub.addr, envoy('lost3.example.org'), token);
    expect(b.target!.spokeId).toBe('dc2');
    expect(dc2Relay.accepted).toBe(dialled);
    expect(dc2Relay.connections).toBe(1);

    // A broken file is refused and the running config stays.
    writeFileSync(key.configFile, 'server_id: hub-a\nspanner: { role: spoke }\n');
    await expect(hub.reload()).rejects.toThrow(/role: is "spoke", but this is the hub daemon/);
    expect(hub.config.spanner.default_spoke).toBe('dc2');
  });
});
