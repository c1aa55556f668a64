import { afterAll, describe, expect, it } from 'vitest';
import { api, Bag, waitFor } from '@axle/testkit';
import {
  adminToken,
  hubProcess,
  makeCluster,
  sampleRoles,
  splitBrain,
  spokeProcess,
  view,
  waitPrimary,
} from './support.js';

/**
 * Multi-process: two hubs and one spoke that is also a witness (three voters). The primary
 * is cut off from both other voters at the network: every hub reaches its peer and the
 * witness through relays, and the primary's relays (both ways) drop every byte.
 */
const bag = new Bag();
afterAll(() => bag.run());

describe('a primary cut off from the majority', () => {
  it('stops acknowledging writes, steps down, the other side elects one primary, and it rejoins as a standby', async () => {
    const c = await makeCluster(bag, {
      hubs: ['ha', 'hb'],
      spokes: ['dc1'],
      witnesses: ['dc1'],
      leaseMs: 1000,
      relays: true,
    });
    await spokeProcess(bag, c.spoke('dc1'));
    for (const h of c.hubs) await hubProcess(bag, h);
    const tokens = new Map(c.hubs.map((h) => [h.id, adminToken(h)]));
    const sampler = sampleRoles(c.hubs, tokens);
    const A = await waitPrimary(c.hubs, { timeoutMs: 15_000, what: 'a primary' });
    const B = c.hubs.find((h) => h !== A)!;
    const ok = await api(A, 'POST', '/api/v1/tokens', { token: tokens.get(A.id)!, body: { note: 'before' } });
    expect(ok.status).toBe(200);
    const term0 = (await view(A))!.term;

    c.cutOff(A.id);
    // A write sent now cannot reach min_acks and is never acknowledged: it ends in an error.
    const during = await api(A, 'POST', '/api/v1/tokens', { token: tokens.get(A.id)!, body: { note: 'during' } });
    expect(during.status).not.toBe(200);
    expect(['E_NOT_PRIMARY', 'E_TIMEOUT']).toContain(during.body.error.code);
    await waitFor(async () => (await view(A))?.role === 'standby', {
      timeoutMs: 10_000,
      what: 'the cut-off primary to step down',
    });
    const refused = await api(A, 'POST', '/api/v1/tokens', { token: tokens.get(A.id)!, body: { note: 'after' } });
    expect(refused.status).toBe(421);

    // The other hub and the witness are a majority: it is elected in a higher term.
    await waitFor(async () => (await view(B))?.role === 'primary', {
      timeoutMs: 10_000,
      what: 'the other hub to be elected',
    });
    const bTerm = (await view(B))!.term;
    expect(bTerm).toBeGreaterThan(term0);
    // The cut-off hub never runs ahead of the majority (pre-votes find none); it may learn the new term from a spoke's status push.
    expect((await view(A))!.term).toBeLessThanOrEqual(bTerm);

    // Healed: the old primary learns the term, stays a standby, catches up; writes need it again (min_acks 1).
    c.heal(A.id);
    const w = await api(B, 'POST', '/api/v1/tokens', { token: tokens.get(B.id)!, body: { note: 'healed' } });
    expect(w.status).toBe(200);
    await waitFor(
      async () => {
        const a = await view(A);
        const b = await view(B);
        return a?.role === 'standby' && a.term === b?.term && a.logSeq === b.logSeq;
      },
      { timeoutMs: 10_000, what: 'the old primary to follow' },
    );
    const list = await api(A, 'GET', '/api/v1/tokens', { token: tokens.get(A.id)! });
    const notes = (list.body.tokens as { note?: string }[]).map((t) => t.note).sort();
    expect(notes).toEqual(['before', 'healed']);

    const samples = await sampler.stop();
    expect(splitBrain(samples)).toEqual([]);
  }, 60_000);
});
