import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { askSigned, connectPeer, fromBase64, generateKeyPair, type KeyPair, type MessageOf } from '@axle/shared';
import { adminToken, HubApi, type FleetPlan, planFleet, type Proc, startNode, tempDir } from '@axle/testkit';

/**
 * Enrollments arriving together share one spoke adopt and one hub write (placement/adopt-queue.ts).
 * Real hub and spoke processes: every answer an envoy got must survive kill -9 of all of them,
 * and an enrollment refused in the middle of a batch costs only itself. kill -9 keeps the page
 * cache, so this checks that an answer never leaves before its writes, not the fsync; an answer
 * sent half a second before its hub write fails it, one sent 50 ms before may not (the kill
 * lands that long after the answer leaves).
 */
const t = tempDir('axle-enroll-batch-');
const procs: Proc[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  t.cleanup();
});

const SPOKES = [
  { id: 'dc1', patterns: ['*.dc1.*'] },
  { id: 'dc2', patterns: ['*.dc2.*'] },
];

type Assignment = MessageOf<'assignment'>;

async function fleet(name: string): Promise<{ plan: FleetPlan; start: () => Promise<Proc[]> }> {
  const plan = await planFleet(join(t.dir, name), { hubs: ['ha'], spokes: SPOKES, insecureTransport: true });
  const start = async () => {
    const spokes = await Promise.all(plan.spokes.map((s) => startNode(s)));
    const hub = await startNode(plan.hubs[0]!);
    const all = [hub, ...spokes];
    procs.push(...all);
    return all;
  };
  return { plan, start };
}

function hubOf(plan: FleetPlan) {
  const h = plan.hubs[0]!;
  return { h, api: new HubApi(h.addr, adminToken(h)), pub: fromBase64(h.pub, 32) };
}

/** Asks the hub as `as` (the host name by default) with `key`, the way envoys do: one signed request, the answer pinned to the hub's key. */
async function ask(
  plan: FleetPlan,
  hostname: string,
  key: KeyPair,
  msg: MessageOf<'enroll'> | MessageOf<'locate'>,
  as = hostname,
): Promise<Assignment> {
  const { h, pub } = hubOf(plan);
  const reply = await askSigned(h.addr, msg, {
    id: as,
    role: 'envoy',
    keyPair: key,
    trusts: (k) => Buffer.from(k).equals(pub),
    timeoutMs: 30_000,
  });
  if (reply.type !== 'assignment') throw new Error(`hub answered ${msg.type} with ${reply.type}`);
  return reply;
}

describe('batched enrollment', () => {
  it('answers an envoy only once its assignment survives kill -9 of the hub and its spokes', async () => {
    const { plan, start } = await fleet('durable');
    const running = await start();
    const { api } = hubOf(plan);
    const tok = await api.post<{ secret: string }>('/tokens', { note: 'batch' });
    const COUNT = 240;
    const hosts = Array.from({ length: COUNT }, (_, n) => ({
      hostname: `h${n}.dc${(n % 2) + 1}.example.com`,
      key: generateKeyPair(),
    }));
    const acked = new Map<string, Assignment>();
    let killedAt: Map<string, Assignment> | undefined;
    let next = 0;
    // 64 at once; once half have their answer, every daemon is killed while the rest are in flight.
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < COUNT && !killedAt) {
          const e = hosts[next++]!;
          const a = await ask(plan, e.hostname, e.key, {
            type: 'enroll',
            hostname: e.hostname,
            token: tok.secret,
          }).catch(() => undefined);
          if (!a || killedAt) continue;
          acked.set(e.hostname, a);
          if (acked.size >= COUNT / 2) {
            killedAt = new Map(acked);
            for (const p of running) p.proc.kill('SIGKILL');
          }
        }
      }),
    );
    expect(killedAt?.size).toBeGreaterThanOrEqual(COUNT / 2);
    await Promise.all(running.map((p) => p.exited));

    await start();
    const keyOf = new Map(hosts.map((e) => [e.hostname, e.key]));
    for (const [hostname, got] of killedAt!) {
      const key = keyOf.get(hostname)!;
      const now = await ask(plan, hostname, key, { type: 'locate', hostname });
      expect({ hostname, status: now.status, spoke: now.target?.spokeId, epoch: now.epoch }).toEqual({
        hostname,
        status: 'assigned',
        spoke: got.target?.spokeId,
        epoch: got.epoch,
      });
      // The spoke admits only keys it adopted: the handshake itself shows the adopt was on its disk.
      const spoke = plan.spokes.find((s) => s.id === got.target?.spokeId)!;
      const c = await connectPeer(spoke.addr, {
        id: hostname,
        role: 'envoy',
        keyPair: key,
        expectServerKey: fromBase64(spoke.pub, 32),
        keepaliveMs: 0,
      });
      c.close();
    }
  }, 120_000);

  it('refuses the bad enrollments of a batch with their own reasons and places the rest', async () => {
    const { plan, start } = await fleet('neighbours');
    await start();
    const { api } = hubOf(plan);
    const open = await api.post<{ secret: string }>('/tokens', { note: 'open' });
    const scarce = await api.post<{ secret: string }>('/tokens', { note: 'three uses', max_uses: 3 });
    const taken = generateKeyPair();
    await ask(plan, 'taken.dc1.example.com', taken, {
      type: 'enroll',
      hostname: 'taken.dc1.example.com',
      token: open.secret,
    });

    type Try = { hostname: string; key: KeyPair; token: string; as?: string; expect: 'ok' | RegExp | 'scarce' };
    const tries: Try[] = [];
    for (let n = 0; n < 40; n++) {
      const hostname = `ok${n}.dc${(n % 2) + 1}.example.com`;
      tries.push({ hostname, key: generateKeyPair(), token: open.secret, expect: 'ok' });
      if (n % 8 === 0) {
        tries.push({
          hostname: `bad${n}.dc1.example.com`,
          key: generateKeyPair(),
          token: 'nope',
          expect: /E_BAD_TOKEN/,
        });
        tries.push({
          hostname: `lost${n}.nowhere.example.com`,
          key: generateKeyPair(),
          token: open.secret,
          expect: /E_NO_ROUTE/,
        });
        tries.push({
          hostname: 'taken.dc1.example.com',
          key: generateKeyPair(),
          token: open.secret,
          expect: /E_CONFLICT/,
        });
        tries.push({
          hostname: `claim${n}.dc2.example.com`,
          as: `other${n}.dc2.example.com`,
          key: generateKeyPair(),
          token: open.secret,
          expect: /E_INVALID/,
        });
      }
    }
    for (let n = 0; n < 8; n++)
      tries.push({
        hostname: `few${n}.dc2.example.com`,
        key: generateKeyPair(),
        token: scarce.secret,
        expect: 'scarce',
      });

    const results = await Promise.all(
      tries.map((x) =>
        ask(plan, x.hostname, x.key, { type: 'enroll', hostname: x.hostname, token: x.token }, x.as).then(
          (a) => ({ x, a, err: undefined as string | undefined }),
          (e: unknown) => ({ x, a: undefined, err: String((e as { code?: string }).code ?? e) + String(e) }),
        ),
      ),
    );
    for (const r of results) {
      if (r.x.expect === 'ok')
        expect({ host: r.x.hostname, status: r.a?.status, err: r.err }).toEqual({
          host: r.x.hostname,
          status: 'assigned',
          err: undefined,
        });
      else if (r.x.expect instanceof RegExp) expect(r.err, r.x.hostname).toMatch(r.x.expect);
    }
    const scarceOk = results.filter((r) => r.x.expect === 'scarce' && r.a?.status === 'assigned');
    const scarceRefused = results.filter((r) => r.x.expect === 'scarce' && r.err !== undefined);
    expect(scarceOk.length).toBe(3);
    expect(scarceRefused.length).toBe(5);
    for (const r of scarceRefused) expect(r.err).toMatch(/E_BAD_TOKEN/);

    // Each one placed is in the directory, each refused one is not.
    for (const r of results) {
      const placed = r.a?.status === 'assigned';
      const now = await ask(plan, r.x.hostname, r.x.key, { type: 'locate', hostname: r.x.hostname }).catch(
        () => undefined,
      );
      expect({ host: r.x.hostname, located: now?.epoch }).toEqual({
        host: r.x.hostname,
        located: placed && r.x.as === undefined ? r.a?.epoch : undefined,
      });
    }
  }, 120_000);
});
