import { afterAll, describe, expect, it } from 'vitest';
import { type MessageOf, silentLogger } from '@axle/shared';
import { tempDir } from '@axle/testkit';
import { Store } from '../src/store.js';
import { TermKeeper } from '../src/terms.js';
import { Witness } from '../src/witness.js';

const t = tempDir('axle-witness-');
const store = new Store(t.dir);
afterAll(async () => {
  await store.close();
  t.cleanup();
});

const witness = new Witness(store, new TermKeeper(store, []), silentLogger());

// holdMs 0: no lease holds a vote back, so each answer below is about logs and terms alone.
const vote = (candidate: string, term: number, lastSeq: number, lastTerm: number) =>
  witness.handle({ type: 'vote_request', term, candidate, lastSeq, lastTerm, holdMs: 0 }, candidate) as Promise<
    MessageOf<'vote_reply'>
  >;
const ping = (primary: string, term: number, lastSeq: number, lastTerm: number) =>
  witness.handle({ type: 'lease_ping', term, primary, lastSeq, lastTerm, holdMs: 0 }, primary);

describe('a witness spoke', () => {
  it('keeps the furthest position a primary reported and refuses positions no log can hold', async () => {
    expect((await vote('ha', 2, 1, 1)).granted).toBe(true);
    await ping('ha', 2, 56, 2);
    // A ping sent before the one above and delivered after it (a reconnect) takes nothing back.
    await ping('ha', 2, 3, 2);
    const behind = await vote('hb', 3, 1, 1);
    expect(behind.granted).toBe(false);
    expect(behind.reason).toMatch(/behind the primary's last reported \(56@2\)/);

    // Term 0 for an entry (or a term after the message's) would rank below an empty hub: refused, nothing kept.
    await expect(ping('ha', 2, 57, 0)).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(ping('ha', 2, 57, 3)).rejects.toMatchObject({ code: 'E_INVALID' });
    await expect(vote('hb', 3, 57, 0)).rejects.toMatchObject({ code: 'E_INVALID' });
    expect((await vote('hb', 3, 1, 1)).reason).toMatch(/\(56@2\)/);

    const level = await vote('hb', 3, 56, 2);
    expect(level.granted, level.reason).toBe(true);
  });
});
