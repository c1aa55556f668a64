import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { api, Bag, waitFor } from '@axle/testkit';
import { adminToken, hubProcess, view, waitLevel, witnessedPair } from './support.js';

/**
 * min_acks 0 promises that an acknowledged write is lost only with the primary's disk. A hub
 * that joins empty must therefore never win an election while the primary is merely slow
 * (here: stopped with SIGSTOP, as a long GC pause or a stalled disk would): the witness votes
 * only for a candidate holding the primary's last reported position. Found by the hub-query
 * benchmark, where an empty standby catching up on 1,000,000 envoys was elected while the
 * primary built its snapshot, and the old primary then installed the new one's empty state.
 */
const bag = new Bag();
afterAll(() => bag.run());

describe('min_acks 0 with a witness', () => {
  it('an empty hub joining is not elected while the primary is stopped, and catches up once it runs again', async () => {
    const { c, ha, token: haToken } = await witnessedPair(bag, { leaseMs: 300, electionTimeoutMs: 1000 });
    const envoys = Array.from({ length: 50 }, (_, i) => ({
      hostname: `web${i}.dc1.example.com`,
      pubkey: randomBytes(32).toString('base64'),
    }));
    // The lease is short (300 ms): on a loaded machine ha may lose it and win it again first.
    await waitFor(
      async () => {
        const r = await api(c.hub('ha'), 'POST', '/api/v1/envoys/import', { token: haToken, body: { envoys } });
        return r.status === 200 && (r.body.imported as number) + (r.body.already as number) === envoys.length;
      },
      { timeoutMs: 20_000, what: 'ha to import every envoy' },
    );

    // Acknowledged means a witness was given this position (min_acks 0 with a witness): ha may
    // stall right after the answer and hb, still empty, is refused.
    ha.proc.kill('SIGSTOP');
    try {
      const hb = await hubProcess(bag, c.hub('hb'));
      // hb campaigns once no primary was heard for its election timeout; once ha's lease at the
      // witness has run out too, the witness's refusal is about hb's log alone.
      await hb.waitForLog(
        (l) =>
          l.msg === 'pre-vote found no majority; not starting an election' &&
          /is behind the primary's last reported/.test(JSON.stringify(l.refusals)),
        20_000,
      );
      expect((await view(c.hub('hb'), adminToken(c.hub('hb'))))?.role).not.toBe('primary');
    } finally {
      ha.proc.kill('SIGCONT');
    }
    await waitLevel(
      { n: c.hub('ha'), token: haToken },
      { n: c.hub('hb'), token: haToken },
      { timeoutMs: 30_000, what: 'ha primary again and hb caught up as its standby' },
    );
    for (const h of ['ha', 'hb']) {
      const dir = await api(c.hub(h), 'GET', '/api/v1/directory?limit=1000', { token: haToken });
      expect((dir.body.items as unknown[]).length, h).toBe(envoys.length);
    }
  }, 90_000);

  it('does not acknowledge a write no witness or standby knows of: a primary cut off right before it loses nothing it acknowledged', async () => {
    const { c, token } = await witnessedPair(bag, { leaseMs: 1000, relays: true });
    await hubProcess(bag, c.hub('hb'));
    const made = await api(c.hub('ha'), 'POST', '/api/v1/tokens', { token, body: { note: 'before' } });
    expect(made.status).toBe(200);
    await waitLevel(
      { n: c.hub('ha'), token },
      { n: c.hub('hb'), token },
      { timeoutMs: 30_000, what: 'hb level with ha' },
    );
    // Cut ha off at the network (no append, no lease ping gets through) while its lease still
    // runs, and write at once: on ha's disk alone, the write must not be acknowledged, since
    // hb, level but for it, may now be elected with the witness.
    c.cutOff('ha');
    const w = await api(c.hub('ha'), 'POST', '/api/v1/tokens', { token, body: { note: 'during the cut' } });
    await waitFor(async () => (await view(c.hub('hb'), token))?.role === 'primary', {
      timeoutMs: 30_000,
      what: 'hb to be elected with the witness',
    });
    const list = await api(c.hub('hb'), 'GET', '/api/v1/tokens', { token });
    const notes = (list.body.tokens as { note?: string }[]).map((t) => t.note);
    expect(notes).toContain('before');
    // Acknowledged writes survive; this one was never acknowledged (and is not on hb).
    expect(w.status, JSON.stringify(w.body).slice(0, 300)).not.toBe(200);
    expect(notes).not.toContain('during the cut');
  }, 90_000);
});
