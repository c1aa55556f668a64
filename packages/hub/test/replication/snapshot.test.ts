import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { api, Bag } from '@axle/testkit';
import { adminToken, hubProcess, waitLevel, witnessedPair } from './support.js';

/**
 * A standby that joins behind the primary's kept log gets a snapshot, sent chunk by chunk. Found
 * by the hub-query benchmark at 1,000,000 envoys, where the standby never caught up: a chunk of
 * event rows encoded past 1 MiB, the primary's own frame limit on the connection the standby
 * opened, so the snapshot failed and began again from the start, forever; and a chunk answered
 * late (the standby busy) also began it again. Here the log kept is short (replication.keep_log)
 * so a few thousand envoys take the same path: import events with long host names make a chunk
 * well over 1 MiB, and the standby is stopped for two seconds, past the chunk's first wait.
 */
const bag = new Bag();
afterAll(() => bag.run());

/** Host names near 90 characters: each import event lists up to 100 of them. */
const host = (i: number) => `web${String(i).padStart(6, '0')}.${'x'.repeat(60)}.dc1.example.com`;

describe('a standby catching up from a snapshot', () => {
  it('gets chunks past 1 MiB, is sent a late chunk again rather than the whole snapshot, and ends level', async () => {
    const { c, ha, token } = await witnessedPair(bag, { leaseMs: 1000, keepLog: 1000 });
    // 200 imports of 100 envoys: 200 events of ~9 KB each, about 1.8 MiB in one chunk.
    const pub = toBase64(generateKeyPair().publicKey);
    for (let b = 0; b < 200; b++) {
      const envoys = Array.from({ length: 100 }, (_, i) => ({ hostname: host(b * 100 + i), pubkey: pub }));
      const r = await api(c.hub('ha'), 'POST', '/api/v1/envoys/import', { token, body: { envoys } });
      expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
      expect(r.body.imported).toBe(100);
    }

    const hb = await hubProcess(bag, c.hub('hb'));
    // The primary's feed starts before it welcomes hb: stopping hb now leaves a chunk unanswered.
    await hb.waitForLog((l) => l.msg === 'following the primary', 20_000);
    hb.proc.kill('SIGSTOP');
    try {
      await ha.waitForLog((l) => l.msg === 'standby has not answered a snapshot chunk yet; sending it again', 10_000);
      // Under the links' keepalive (3 s): the link stays up, only the answer is late.
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      hb.proc.kill('SIGCONT');
    }
    const installed = await hb.waitForLog((l) => l.msg === 'installed snapshot from the primary', 60_000);
    expect(installed.rows as number).toBeGreaterThan(20_000);
    await waitLevel(
      { n: c.hub('ha'), token },
      { n: c.hub('hb'), token: adminToken(c.hub('hb')) },
      { timeoutMs: 30_000, what: 'hb level with ha' },
    );
    // One snapshot, never begun again; it was refused nothing on the way.
    const sent = ha.logs.filter((l) => l.msg === 'sending snapshot to standby' && l.peer === 'hb');
    expect(sent.length).toBe(1);
    expect(ha.logs.filter((l) => l.msg === 'replication to standby failed; retrying')).toEqual([]);
    for (const n of [c.hub('ha'), c.hub('hb')]) {
      const dir = await api(n, 'GET', '/api/v1/directory?limit=1', { token });
      expect(dir.body.total, n.id).toBe(20_000);
    }
  }, 180_000);
});
