import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { api, Bag, directory, type Daemon } from '@axle/testkit';
import { adminToken, hubProcess, view, waitLevel, witnessedPair } from './support.js';

/**
 * A standby installing a snapshot loses it part-way: its link is cut, it is killed (kill -9)
 * mid-install and again right after the last chunk. A partial store must never pass for a
 * position (it neither leads nor is counted level), and the primary goes on from the standby's
 * next chunk instead of chunk 0: one snapshot is begun, however often it is cut short.
 */
const bag = new Bag();
afterAll(() => bag.run());

/** Host names near 90 characters, so the snapshot takes several chunks. */
const host = (i: number) => `web${String(i).padStart(6, '0')}.${'y'.repeat(60)}.dc1.example.com`;

type Line = Record<string, unknown>;
const chunkStored = (l: Line) => l.msg === 'stored snapshot chunk';

describe('a standby whose snapshot install is cut short', () => {
  it('goes on from its next chunk after a cut link and after kill -9, and ends with the primary’s directory', async () => {
    const { c, ha, token } = await witnessedPair(bag, { leaseMs: 1000, keepLog: 1000, relays: true });
    const pub = toBase64(generateKeyPair().publicKey);
    for (let b = 0; b < 300; b++) {
      const envoys = Array.from({ length: 100 }, (_, i) => ({ hostname: host(b * 100 + i), pubkey: pub }));
      const r = await api(c.hub('ha'), 'POST', '/api/v1/envoys/import', { token, body: { envoys } });
      expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    }
    const hbNode = c.hub('hb');
    const resumed = () => ha.logs.filter((l) => l.msg === 'resuming snapshot to standby' && l.peer === 'hb');

    // 1. The link drops after the first chunk: the primary keeps the snapshot and goes on with it.
    let hb: Daemon = await hubProcess(bag, hbNode);
    await hb.waitForLog((l) => chunkStored(l) && l.chunk === 0, 30_000);
    c.cutOff('hb');
    await ha.waitForLog((l) => l.msg === 'snapshot to standby cut short; kept for it to go on with', 20_000);
    const heldAtCut = hb.logs.filter(chunkStored);
    expect(
      heldAtCut.some((l) => l.done === true),
      'the cut came after the last chunk',
    ).toBe(false);
    c.heal('hb');
    await waitForCount(resumed, 1, 20_000);
    const first = resumed()[0]!;
    expect(first.chunk as number).toBeGreaterThanOrEqual(1);
    expect(first.chunk).toBe(heldAtCut.length);

    // 2. kill -9 mid-install, restarted while cut off: a partial store, counted as nothing.
    await hb.waitForLog((l) => chunkStored(l) && (l.chunk as number) > (first.chunk as number), 30_000);
    await hb.kill('SIGKILL');
    const heldAtKill = hb.logs.filter(chunkStored);
    expect(
      heldAtKill.some((l) => l.done === true),
      'the kill came after the last chunk',
    ).toBe(false);
    c.cutOff('hb');
    hb = await hubProcess(bag, hbNode);
    const hbToken = adminToken(hbNode);
    const vb = await view(hbNode, hbToken);
    expect(vb?.role).not.toBe('primary');
    expect(vb?.logSeq).toBe(0);
    expect((await directory({ addr: hbNode.addr, adminToken: hbToken })).size).toBe(0);
    const promote = await api(hbNode, 'POST', '/api/v1/hub/promote', { token: hbToken });
    expect(promote.status, JSON.stringify(promote.body)).toBe(409);
    expect((promote.body.error as { code: string }).code).toBe('E_CONFLICT');
    const va = await view(c.hub('ha'), token);
    expect(va?.role).toBe('primary');
    const fromHa = await api(c.hub('ha'), 'GET', '/api/v1/hub', { token });
    const peers = (fromHa.body.replication as { hubs: { id: string; logPosition?: number | null }[] }).hubs;
    expect(peers.find((p) => p.id === 'hb')?.logPosition ?? 0).toBeLessThan(va!.logSeq);

    // 3. Back on the network: it goes on from the chunk after the last one it stored.
    c.heal('hb');
    await waitForCount(resumed, 2, 30_000);
    // The last chunk logged before the kill, or one more stored as the kill came.
    expect(resumed()[1]!.chunk as number).toBeGreaterThanOrEqual(heldAtKill.length);
    expect(resumed()[1]!.chunk as number).toBeLessThanOrEqual(heldAtKill.length + 1);

    // 4. kill -9 right after the last chunk is stored (the install closing), then restart.
    await hb.waitForLog((l) => chunkStored(l) && l.done === true, 60_000);
    await hb.kill('SIGKILL');
    hb = await hubProcess(bag, hbNode);
    await waitLevel({ n: c.hub('ha'), token }, { n: hbNode, token: hbToken }, { timeoutMs: 60_000, what: 'hb level' });

    // One snapshot begun, never again from chunk 0, nothing refused; the same directory on both.
    expect(ha.logs.filter((l) => l.msg === 'sending snapshot to standby' && l.peer === 'hb').length).toBe(1);
    expect(ha.logs.filter((l) => typeof l.err === 'string' && String(l.err).includes('refused snapshot'))).toEqual([]);
    const [da, db] = await Promise.all([
      directory({ addr: c.hub('ha').addr, adminToken: token }),
      directory({ addr: hbNode.addr, adminToken: hbToken }),
    ]);
    expect(da.size).toBe(30_000);
    expect(Object.fromEntries(db)).toEqual(Object.fromEntries(da));
  }, 240_000);
});

async function waitForCount(lines: () => Line[], n: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (lines().length < n) {
    if (Date.now() > until) throw new Error(`expected ${n} matching log lines, saw ${lines().length}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
