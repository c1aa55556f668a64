import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AxleError,
  AxleServer,
  ErrorCode,
  connectPeer,
  fromBase64,
  generateKeyPair,
  silentLogger,
  toBase64,
  type Message,
  type Run,
} from '@axle/shared';
import { Envoy, Spool, StateStore } from '@axle/envoy-agent';
import { Bag, hubKey, localSpoke, testEnvoyConfig } from './cluster.js';
import { tempDir, waitFor } from '@axle/testkit';

const bag = new Bag();
afterEach(() => bag.run());

function run(hostname: string, i: number): Run {
  const now = Date.now() - 1000 * (10 - i);
  return {
    id: `spooled-${i}-${Math.random().toString(36).slice(2, 10)}`,
    hostname,
    startedAt: now - 500,
    finishedAt: now,
    configVersion: 0,
    mode: 'enforce',
    trigger: 'schedule',
    compliant: true,
    counts: { ok: 1, changed: 0, failed: 0, drift: 0 },
    results: [{ resource: 'file:/etc/motd', policy: 'base', status: 'ok', message: '', durationMs: 1 }],
  };
}

/**
 * An envoy already assigned to `target`, with `runs` waiting in its spool (as after an outage):
 * started, it connects and sends them.
 */
async function assignedEnvoy(
  hostname: string,
  target: { spokeId: string; addr: string; pubkey: Uint8Array },
  hubPub: string,
  runs: number,
): Promise<{ envoy: Envoy; publicKey: Uint8Array; ids: string[] }> {
  const t = tempDir('axle-envoy-coalesce-');
  bag.add(t.cleanup);
  const cfg = testEnvoyConfig(t.dir, hostname, ['127.0.0.1:1'], {
    hub_pubkeys: [hubPub],
    checkin_interval: '1h',
  });
  const store = new StateStore(cfg.state_dir);
  const { keyPair } = store.loadKey();
  await store.saveAssignment({
    status: 'assigned',
    target,
    epoch: 1,
    term: 1,
    hubAddrs: ['127.0.0.1:1'],
    updatedAt: 1,
  });
  const spool = new Spool(join(cfg.state_dir, 'spool'), { max: 100, log: silentLogger() });
  const ids: string[] = [];
  for (let i = 0; i < runs; i++) {
    const r = run(hostname, i);
    ids.push(r.id);
    await spool.put(r);
  }
  const envoy = new Envoy(cfg);
  bag.add(() => envoy.stop());
  return { envoy, publicKey: keyPair.publicKey, ids };
}

describe('envoy: reports on check-ins', () => {
  it('sends each spooled report on a check-in to a spoke that takes them', async () => {
    const hub = await hubKey(bag);
    const spoke = await localSpoke(bag, 'dc1', hub);
    const hostname = 'web1.dc1.example.com';
    const e = await assignedEnvoy(
      hostname,
      { spokeId: 'dc1', addr: spoke.addr, pubkey: fromBase64(spoke.pubkey, 32) },
      hub.pub,
      5,
    );
    const hubConn = await connectPeer(spoke.addr, { id: 'hub-a', role: 'hub', keyPair: hub.keyPair, keepaliveMs: 0 });
    bag.add(() => hubConn.close());
    await hubConn.request({ type: 'adopt', term: 1, envoys: [{ hostname, pubkey: e.publicKey, epoch: 1 }] });
    const acked: string[] = [];
    await e.envoy.start();
    e.envoy.events!.on('acked', (id) => acked.push(id));
    // The spool's count drops as a run is removed, a moment before the 'acked' event for it.
    await waitFor(() => e.envoy.state.spooled === 0 && acked.length === e.ids.length, {
      what: 'spool emptied, every report acknowledged',
    });
    expect(acked).toEqual(e.ids);
    const detail = await hubConn.request({ type: 'get_envoy', term: 1, hostname, runs: 10 }, 5000, 'envoy_detail');
    expect(detail.runs.map((r) => r.id).sort()).toEqual([...e.ids].sort());
    // The session's first check-in, then one per report: each report rode on a check-in.
    expect(spoke.spoke.stats().checkinsPerMinute).toBe(6);
  });

  it('sends reports alone to a spoke older than that form, and loses none', async () => {
    const hub = generateKeyPair();
    const spokeKey = generateKeyPair();
    const hostname = 'web2.dc1.example.com';
    const seen: string[] = [];
    const stored: string[] = [];
    let envoyKey: Uint8Array | undefined;
    // What a spoke before the `run` key does: its message schema refuses the key (E_BAD_MESSAGE).
    const old = new AxleServer({
      host: '127.0.0.1',
      port: 0,
      id: 'dc1',
      keyPair: spokeKey,
      authenticate: (claim) => {
        if (claim.id !== hostname || !envoyKey || toBase64(claim.pubkey) !== toBase64(envoyKey))
          throw new AxleError(ErrorCode.UNKNOWN_KEY, 'unknown');
        return { role: 'envoy' };
      },
      onConnection: (conn) => {
        conn.attach({
          onRequest: (m): Message => {
            seen.push(m.type === 'checkin' && m.run ? 'checkin+run' : m.type);
            if (m.type === 'checkin' && m.run)
              throw new AxleError(ErrorCode.BAD_MESSAGE, `invalid message from ${hostname}: run: unknown key`);
            if (m.type === 'checkin') return { type: 'checkin_ok', configVersion: 0, term: 1, runNow: false };
            if (m.type === 'report') {
              stored.push(m.run.id);
              return { type: 'ack', runId: m.run.id, duplicate: false };
            }
            throw new AxleError(ErrorCode.INVALID, `not ${m.type}`);
          },
        });
      },
    });
    const { port } = await old.listen();
    bag.add(() => old.close(100));
    const e = await assignedEnvoy(
      hostname,
      { spokeId: 'dc1', addr: `127.0.0.1:${port}`, pubkey: spokeKey.publicKey },
      toBase64(hub.publicKey),
      4,
    );
    envoyKey = e.publicKey;
    await e.envoy.start();
    await waitFor(() => e.envoy.state.spooled === 0, { what: 'spool emptied' });
    expect(stored).toEqual(e.ids);
    // One refused attempt, then plain reports for the rest of the session.
    expect(seen).toEqual(['checkin', 'checkin+run', 'report', 'report', 'report', 'report']);
  });
});
