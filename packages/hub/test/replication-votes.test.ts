import { afterEach, describe, expect, it } from 'vitest';
import { connectPeer, ErrorCode, generateKeyPair, type AxleError, type MessageOf } from '@axle/shared';
import { decideVote, leaseUntil } from '../src/store/replication/votes.js';
import { safeMinAcks } from '../src/store/replication/settings.js';
import { api, Bag, waitFor } from '@axle/testkit';
import {
  adminToken,
  asHub,
  hubInProcess,
  makeCluster,
  spokeInProcess,
  tokenIds,
  view,
  waitPrimary,
} from './replication/support.js';

const bag = new Bag();
afterEach(() => bag.run());

const req = (o: Partial<MessageOf<'vote_request'>> = {}): MessageOf<'vote_request'> => ({
  type: 'vote_request',
  term: 5,
  candidate: 'hb',
  lastSeq: 10,
  lastTerm: 4,
  holdMs: 1000,
  ...o,
});
const voter = {
  now: 10_000,
  term: 4,
  votedFor: undefined,
  heardPrimaryAt: 0,
  leading: false,
  lastSeq: 10,
  lastTerm: 4,
};

describe('the voting rule', () => {
  it('grants a higher term to an up-to-date candidate when no primary was heard within the hold', () => {
    expect(decideVote(voter, req())).toEqual({ granted: true });
  });
  it('refuses a lower term, a second candidate in one term, a live primary, and a candidate behind', () => {
    expect(decideVote({ ...voter, term: 6 }, req()).granted).toBe(false);
    expect(decideVote({ ...voter, term: 5, votedFor: 'hc' }, req())).toMatchObject({
      granted: false,
      reason: expect.stringMatching(/already voted for hc/),
    });
    expect(decideVote({ ...voter, term: 5, votedFor: 'hb' }, req()).granted).toBe(true);
    expect(decideVote({ ...voter, heardPrimaryAt: 9500 }, req())).toMatchObject({
      granted: false,
      reason: expect.stringMatching(/heard from a primary 500 ms ago/),
    });
    expect(decideVote({ ...voter, leading: true }, req()).granted).toBe(false);
    expect(decideVote({ ...voter, lastSeq: 11 }, req()).granted).toBe(false);
    expect(decideVote({ ...voter, lastTerm: 5, lastSeq: 3 }, req()).granted).toBe(false);
    expect(decideVote({ ...voter, lastTerm: 3, lastSeq: 99 }, req()).granted).toBe(true);
  });
  it('a handover skips the liveness rule but not the log rule', () => {
    expect(decideVote({ ...voter, heardPrimaryAt: 9999, leading: true }, req({ handover: true })).granted).toBe(true);
    expect(decideVote({ ...voter, lastSeq: 11 }, req({ handover: true })).granted).toBe(false);
  });
  it('the lease runs from the (majority-1)-th latest acknowledgement', () => {
    expect(leaseUntil([], 1, 500)).toBe(Number.POSITIVE_INFINITY);
    expect(leaseUntil([100, 300], 2, 500)).toBe(800);
    expect(leaseUntil([100, 300, 200], 3, 500)).toBe(700);
    expect(leaseUntil([100], 3, 500)).toBe(0);
  });
  it('derives a min_acks that keeps acknowledged writes on any majority', () => {
    expect(safeMinAcks(2, 1)).toBe(1);
    expect(safeMinAcks(3, 0)).toBe(1);
    expect(safeMinAcks(3, 2)).toBe(2);
  });
});

describe('peer links and witnesses', () => {
  it('refuses a hub whose key is not its configured peer key, and a malformed append', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb'], spokes: ['dc1'], witnesses: ['dc1'], leaseMs: 400 });
    await spokeInProcess(bag, c.spoke('dc1'));
    await hubInProcess(bag, c.hub('ha'));
    const before = (await view(c.hub('ha')))!.logSeq;
    const wrongKey = await connectPeer(c.hub('ha').addr, {
      id: 'hb',
      role: 'hub',
      keyPair: generateKeyPair(),
      keepaliveMs: 0,
    }).catch((e: unknown) => e);
    expect((wrongKey as AxleError).code).toBe(ErrorCode.UNKNOWN_KEY);
    // The real peer key, but an append that does not follow the standby's log: refused, nothing stored.
    const hb = c.hub('hb');
    const conn = await connectPeer(c.hub('ha').addr, { id: 'hb', role: 'hub', keyPair: hb.keyPair, keepaliveMs: 0 });
    try {
      const ack = await conn.request(
        {
          type: 'repl_append',
          term: 99,
          primary: 'hb',
          primaryAddr: hb.addr,
          prevSeq: 12345,
          prevTerm: 98,
          holdMs: 0,
          primarySeq: 12346,
          entries: [{ seq: 12346, at: 1, term: 99, change: { kind: 'token.put', token: { id: 'x' } } }],
        },
        5000,
        'repl_ack',
      );
      expect(ack.ok).toBe(false);
      expect(ack.reason).toMatch(/not at 12345/);
      const bad = await conn
        .request({ type: 'repl_append', term: 99, entries: 'nope' } as never, 5000)
        .catch((e: unknown) => e);
      expect((bad as AxleError).code).toBe(ErrorCode.BAD_MESSAGE);
    } finally {
      conn.close();
    }
    expect((await view(c.hub('ha')))!.logSeq).toBe(before);
    expect((await tokenIds(c.hub('ha'))).has('x')).toBe(false);
  });

  it('a witness spoke votes once per term, not while a primary renews its lease, and raises its term when it grants', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb'], spokes: ['dc1'], leaseMs: 1000 });
    const spoke = await spokeInProcess(bag, c.spoke('dc1'));
    const dc1 = c.spoke('dc1');
    const [ha, hb] = [c.hub('ha'), c.hub('hb')];
    const a = await asHub(ha, dc1);
    const b = await asHub(hb, dc1);
    try {
      // holdMs is the candidate's election timeout: a long one makes the witness wait, a 1 ms one lets it vote.
      const vote = (conn: typeof a, o: Partial<MessageOf<'vote_request'>>) =>
        conn.request({ ...req({ holdMs: 1 }), ...o }, 5000, 'vote_reply');
      // Just started: it waits a hold before voting at all.
      expect((await vote(a, { candidate: 'ha', term: 7, holdMs: 600_000 })).reason).toMatch(/started .* ago/);
      expect((await vote(a, { candidate: 'ha', term: 7, prevote: true })).granted).toBe(true);
      expect(spoke.term).toBe(0);
      expect((await vote(a, { candidate: 'ha', term: 7 })).granted).toBe(true);
      expect(spoke.term).toBe(7);
      expect((await vote(b, { candidate: 'hb', term: 7, handover: true })).granted).toBe(false);
      // ha, now primary, renews its lease: hb cannot be elected in term 8 meanwhile.
      await a.request(
        { type: 'lease_ping', term: 7, primary: 'ha', holdMs: 600_000, lastSeq: 10, lastTerm: 4 },
        5000,
        'lease_ok',
      );
      expect((await vote(b, { candidate: 'hb', term: 8, holdMs: 600_000 })).reason).toMatch(/renewed its lease/);
      // A stale lease ping is refused with E_STALE_TERM: how a stale primary learns.
      const stale = await b
        .request({ type: 'lease_ping', term: 6, primary: 'hb', holdMs: 200, lastSeq: 0, lastTerm: 0 }, 5000)
        .catch((e: unknown) => e);
      expect((stale as AxleError).code).toBe(ErrorCode.STALE_TERM);
    } finally {
      a.close();
      b.close();
    }
  });

  it('promotes a standby by hand: the primary steps down for it, and one primary remains', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb', 'hc'], spokes: ['dc1'], leaseMs: 1000 });
    await spokeInProcess(bag, c.spoke('dc1'));
    for (const n of c.hubs) await hubInProcess(bag, n);
    const p = await waitPrimary(c.hubs);
    const s = c.hubs.find((n) => n !== p)!;
    const t0 = (await view(p))!.term;
    await waitFor(async () => (await view(s))?.logSeq === (await view(p))?.logSeq);
    const r = await api(s, 'POST', '/api/v1/hub/promote', { token: adminToken(s) });
    expect(r.status).toBe(200);
    expect(r.body.role).toBe('primary');
    expect(r.body.term).toBeGreaterThan(t0);
    const roles = await Promise.all(c.hubs.map((n) => view(n)));
    expect(roles.filter((v) => v?.role === 'primary').map((v) => v!.id)).toEqual([s.id]);
    const again = await api(p!, 'POST', '/api/v1/hub/promote', { token: 'wrong' });
    expect(again.status).toBe(401);
  });
});
