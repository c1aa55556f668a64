import { afterEach, describe, expect, it } from 'vitest';
import {
  AxleError,
  AxleServer,
  ErrorCode,
  generateKeyPair,
  toBase64,
  type KeyPair,
  type MessageOf,
} from '@axle/shared';
import { adopt, checkin, closedPort, hubKey, makeRun, newEnvoy, report, SpokeSession } from './helpers.js';
import { waitFor } from '@axle/testkit';

/** A stand-in hub listener: accepts spoke dc1 and records the statuses it pushes. */
async function hubListener(key: KeyPair, term: number) {
  const statuses: MessageOf<'status'>[] = [];
  const server = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'hub-c',
    keyPair: key,
    authenticate: (claim) => {
      if (claim.role !== 'spoke' || claim.id !== 'dc1') throw new AxleError(ErrorCode.UNKNOWN_KEY, 'not our spoke');
      return { role: 'spoke' };
    },
    onConnection: (conn) => {
      conn.attach({
        onRequest: (msg) => {
          if (msg.type !== 'status') throw new AxleError(ErrorCode.INVALID, 'status only');
          statuses.push(msg);
          return { type: 'status_ok', term };
        },
      });
    },
  });
  const { port } = await server.listen();
  return { server, statuses, addr: `127.0.0.1:${port}` };
}

const session = new SpokeSession(afterEach);

describe('spoke: status push', () => {
  it('moves to the third of three hub addresses when the first two are down, and learns the term', async () => {
    const hubC = generateKeyPair();
    const third = await hubListener(hubC, 9);
    session.onClose(() => third.server.close(100));
    const [p1, p2] = [await closedPort(), await closedPort()];
    const f = await session.start({
      extra: { status_interval: '200ms' },
      spanner: {
        hub_addr: `127.0.0.1:${p1}`,
        hub_fallback_addrs: [`127.0.0.1:${p2}`, third.addr],
        hub_pubkeys: [toBase64(hubKey.publicKey), toBase64(hubC.publicKey)],
      },
    });
    const hub = await session.hub();
    await adopt(hub, [newEnvoy('web1.dc1.example.com')], 3);

    await waitFor(() => third.statuses.length >= 2, { timeoutMs: 20_000, what: 'status pushes at the third hub' });
    const last = third.statuses.at(-1)!.stats;
    expect(last).toMatchObject({
      spokeId: 'dc1',
      envoys: 1,
      compliance: { compliant: 0, noncompliant: 0, unknown: 1 },
      configVersion: 0,
      version: '0.1.0',
    });
    expect(last.uptimeS).toBeGreaterThan(0);
    // status_ok carried term 9: the spoke now follows it and refuses the old term.
    await waitFor(() => f.spoke.term === 9, { what: 'term learnt from status_ok' });
    await expect(hub.request({ type: 'stats', term: 3 })).rejects.toMatchObject({ code: 'E_STALE_TERM' });
  });

  it('does not push to a listener whose key is not in hub_pubkeys', async () => {
    const impostor = await hubListener(generateKeyPair(), 50);
    session.onClose(() => impostor.server.close(100));
    const good = await hubListener(hubKey, 1);
    session.onClose(() => good.server.close(100));
    const f = await session.start({
      extra: { status_interval: '100ms' },
      spanner: { hub_addr: impostor.addr, hub_fallback_addrs: [good.addr] },
    });
    await waitFor(() => good.statuses.length >= 1, { timeoutMs: 20_000, what: 'push reaching the trusted hub' });
    expect(impostor.statuses).toHaveLength(0);
    await waitFor(() => f.spoke.term === 1, { what: 'term 1 from the trusted hub' });
  });

  it('serves envoys as usual with no hub reachable at all', async () => {
    const ports = [await closedPort(), await closedPort()];
    const f = await session.start({
      extra: { status_interval: '50ms' },
      spanner: { hub_addr: `127.0.0.1:${ports[0]}`, hub_fallback_addrs: [`127.0.0.1:${ports[1]}`] },
    });
    const hub = await session.hub();
    const e = newEnvoy('lonely.dc1.example.com');
    await adopt(hub, [e]);
    const c = await session.envoy(e);
    for (let i = 0; i < 20; i++) {
      expect(await checkin(c, e)).toMatchObject({ type: 'checkin_ok' });
      expect(await report(c, e, makeRun(e.hostname))).toMatchObject({ type: 'ack', duplicate: false });
    }
    expect((await fetch(`http://${f.spoke.addr}/readyz`)).status).toBe(200);
    const d = await hub.request(
      { type: 'get_envoy', term: 1, hostname: e.hostname, runs: 100 },
      10_000,
      'envoy_detail',
    );
    expect(d.runs).toHaveLength(20);
  });
});
