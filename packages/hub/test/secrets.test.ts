import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair, openSealed, silentLogger, toBase64, type KeyPair } from '@axle/shared';
import { hubConfigFrom, type HubConfig } from '../src/daemon/config.js';
import { Events } from '../src/store/events.js';
import { Secrets } from '../src/store/secrets.js';
import { HubStore } from '../src/store/state.js';
import { tempDir } from '@axle/testkit';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(peers: KeyPair[]): HubConfig {
  return hubConfigFrom({
    server_id: 'hub-a',
    listen: '127.0.0.1:0',
    data_dir: '/tmp/unused',
    spanner: {
      role: 'hub',
      peers: peers.map((p, i) => ({ id: `hub-${i}`, addr: `127.0.0.1:${2000 + i}`, pubkey: toBase64(p.publicKey) })),
    },
  });
}

describe('secrets on the hub', () => {
  it('are sealed to every hub, so a standby that becomes primary serves them; a hub added later gets them once sealed for it', async () => {
    const t = tempDir('axle-hub-secrets-');
    const state = await HubStore.open(t.dir);
    cleanups.push(t.cleanup, () => state.close());
    const a = generateKeyPair();
    const b = generateKeyPair();
    const c = generateKeyPair();
    const envoy = generateKeyPair();
    await state.apply({
      kind: 'envoy.assign',
      envoy: {
        hostname: 'web1.dc1.x',
        pubkey: toBase64(envoy.publicKey),
        spokeId: 'dc1',
        epoch: 1,
        enrolledAt: 1,
        assignedAt: 1,
      },
      reason: 'enroll',
    });
    const events = new Events(state, silentLogger());
    const at = (key: KeyPair, peers: KeyPair[]) =>
      new Secrets({ state, events, keyPair: key, log: silentLogger(), config: () => config(peers) });
    const onA = at(a, [b]);
    const view = await onA.set('db_password', new TextEncoder().encode('hunter2'), ['web*'], 'admin');
    expect(view).toMatchObject({ name: 'db_password', version: 1, targets: 1, lagging: ['web1.dc1.x'] });
    expect(JSON.stringify(view)).not.toContain('hunter2');

    // B, a peer when it was set, opens it with its own key (the store is the replicated one).
    const fromB = at(b, [a]).deliver('dc1', { type: 'secret_relay', hostname: 'web1.dc1.x', names: ['db_password'] });
    expect(new TextDecoder().decode(openSealed(fromB.items[0]!.sealed, envoy))).toBe('hunter2');
    // Only the envoy's key opens what was sealed for it.
    expect(() => openSealed(fromB.items[0]!.sealed, b)).toThrow(/does not open/);

    // C joined later: it cannot, until a primary seals the data key for it too.
    expect(() =>
      at(c, [a, b]).deliver('dc1', { type: 'secret_relay', hostname: 'web1.dc1.x', names: ['db_password'] }),
    ).toThrow(/not sealed to this hub's key/);
    await at(a, [b, c]).sealForPeers();
    const fromC = at(c, [a, b]).deliver('dc1', {
      type: 'secret_relay',
      hostname: 'web1.dc1.x',
      names: ['db_password'],
    });
    expect(new TextDecoder().decode(openSealed(fromC.items[0]!.sealed, envoy))).toBe('hunter2');

    // Another spoke cannot ask for this host, and a name outside its globs is refused, not thrown.
    expect(() => onA.deliver('dc2', { type: 'secret_relay', hostname: 'web1.dc1.x', names: ['db_password'] })).toThrow(
      /not an envoy of spoke dc2/,
    );
    await onA.set('other', new TextEncoder().encode('x'), ['db*'], 'admin');
    const r = onA.deliver('dc1', { type: 'secret_relay', hostname: 'web1.dc1.x', names: ['other', 'missing'] });
    expect(r.items).toEqual([]);
    expect(r.refused.map((x) => x.reason)).toEqual([
      'secret "other" is not allowed for web1.dc1.x (its hosts: db*)',
      'no secret "missing" is set on the hub',
    ]);
    await onA.stop();
  });
});
