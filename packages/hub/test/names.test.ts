import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { HubStore } from '../src/store/state.js';
import { api, Bag, directory, hubKey, inProcessSpoke, locate, startHub, waitFor } from '@axle/testkit';

const bag = new Bag();
afterEach(() => bag.run());

describe('host names stored before they were canonical', () => {
  it('are re-registered under their canonical name (same key), or removed when that name is taken', async () => {
    const key = await hubKey(bag);
    const dc1 = await inProcessSpoke(bag, 'dc1', key);
    const webKey = generateKeyPair();
    const taken = generateKeyPair();
    // What a 0.1 hub could have stored: names as the envoys sent them.
    const old = await HubStore.open(key.dir);
    const rec = (hostname: string, pubkey: Uint8Array, epoch: number) => ({
      kind: 'envoy.assign' as const,
      envoy: { hostname, pubkey: toBase64(pubkey), spokeId: 'dc1', epoch, enrolledAt: 1, assignedAt: 1 },
      reason: 'enroll' as const,
    });
    await old.applyAll([
      rec('WEB1.DC1.example.com', webKey.publicKey, 1),
      rec('db1.dc1.example.com', taken.publicKey, 2),
      rec('DB1.dc1.example.com.', generateKeyPair().publicKey, 3),
      rec('bad_name.dc1.example.com', generateKeyPair().publicKey, 4),
    ]);
    await old.close();

    const hub = await startHub(bag, key, { spokes: [{ ...dc1, patterns: ['*.dc1.*'] }] });
    await waitFor(async () => !(await directory(hub)).has('WEB1.DC1.example.com'), {
      what: 'the old spelling replaced',
    });
    const dir = await directory(hub);
    expect([...dir.keys()].sort()).toEqual(['db1.dc1.example.com', 'web1.dc1.example.com']);
    expect(dir.get('web1.dc1.example.com')?.pubkey).toBe(toBase64(webKey.publicKey));
    expect(dir.get('db1.dc1.example.com')?.pubkey).toBe(toBase64(taken.publicKey));

    // The renamed host carries on under its canonical name with its old key, and its spoke adopted it.
    const a = await locate(hub.addr, { hostname: 'web1.dc1.example.com', key: webKey });
    expect(a.target?.spokeId).toBe('dc1');
    expect(dc1.spoke.stats().envoys).toBeGreaterThanOrEqual(1);

    const events = await api(hub, 'GET', '/api/v1/events?type=envoy.renamed,envoy.removed', { token: hub.adminToken });
    const byType = (t: string) => events.body.events.filter((e: { type: string }) => e.type === t);
    expect(byType('envoy.renamed')[0].data.renamed).toEqual([
      { from: 'WEB1.DC1.example.com', to: 'web1.dc1.example.com' },
    ]);
    expect(
      byType('envoy.removed')
        .map((e: { data: { hostname: string } }) => e.data.hostname)
        .sort(),
    ).toEqual(['DB1.dc1.example.com.', 'bad_name.dc1.example.com']);
  });
});
