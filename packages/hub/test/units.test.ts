import { createHmac } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AxleError, ErrorCode, generateKeyPair, toBase64 } from '@axle/shared';
import {
  HostRouter,
  RateLimiter,
  decodeCursor,
  encodeCursor,
  fanOut,
  hubConfigFrom,
  kWayMerge,
  signWebhook,
  verifyWebhook,
} from '@axle/hub';
import { HubStore } from '../src/store/state.js';
import { Tokens } from '../src/store/tokens.js';
import { tempDir } from '@axle/testkit';

const pub = toBase64(generateKeyPair().publicKey);
const cleanups: (() => void)[] = [];
afterAll(() => cleanups.forEach((c) => c()));

describe('host name patterns', () => {
  it('refuse a spoke pattern the glob grammar refuses, naming the config key', () => {
    expect(() =>
      hubConfigFrom({
        server_id: 'h',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: '/tmp/x',
        spanner: { role: 'hub', spokes: [{ id: 'a', addr: 'a:1', pubkey: pub, patterns: ['x/y'] }] },
      }),
    ).toThrow(/spanner.spokes\[0\].patterns\[0\]: pattern "x\/y" contains "\/"/);
  });

  it('route to the first match in config order, then the default, naming why others were skipped', () => {
    const r = new HostRouter(
      [
        { id: 'dc1', patterns: ['*.dc1.*'] },
        { id: 'dc2', patterns: ['*.dc2.*', '*.dc1.*'] },
        { id: 'dc3', patterns: ['*.dc3.*'] },
      ],
      'dc3',
    );
    expect(r.first('a.dc1.x')).toBe('dc1');
    expect(r.first('a.dc2.x')).toBe('dc2');
    expect(r.first('a.nowhere')).toBe('dc3');
    expect(r.candidates('a.dc1.x', () => undefined).map((c) => c.spokeId)).toEqual(['dc1', 'dc2', 'dc3']);
    expect(
      r.candidates('a.dc1.x', (id) => (id === 'dc1' ? 'offline' : undefined)).map((c) => `${c.spokeId}:${c.via}`),
    ).toEqual(['dc2:pattern', 'dc3:default']);
    expect(() => r.candidates('a.dc1.x', () => 'offline')).toThrow(
      /dc1 \(offline\), dc2 \(offline\), default spoke dc3 \(offline\)/,
    );
    const noDefault = new HostRouter([{ id: 'dc1', patterns: ['*.dc1.*'] }]);
    expect(() => noDefault.candidates('x.y', () => undefined)).toThrow(
      /no spoke pattern matches "x.y" and no default_spoke is configured/,
    );
  });
});

describe('k-way merge and cursors', () => {
  it('merges sorted pages in order and pages through everything exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uniqueArray(fc.stringMatching(/^[a-z]{1,6}$/), { maxLength: 30 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 7 }),
        (lists, limit) => {
          // Host names are unique across spokes.
          const seenAll = new Set<string>();
          const sources = lists.map((l, i) =>
            l
              .filter((h) => !seenAll.has(h) && seenAll.add(h))
              .sort()
              .map((h) => ({ h, i })),
          );
          const out: string[] = [];
          let cursor: Record<string, string> = {};
          for (let round = 0; round < 200; round++) {
            const pages = sources.map((items, i) => {
              const after = cursor[`s${i}`];
              const rest = items.filter((x) => after === undefined || x.h > after);
              return { source: `s${i}`, items: rest.slice(0, limit), more: rest.length > limit };
            });
            const m = kWayMerge(pages, (x) => x.h, limit);
            out.push(...m.items.map((x) => x.h));
            cursor = decodeCursor(encodeCursor({ ...cursor, ...m.taken }));
            if (!m.more) break;
          }
          expect(out).toEqual([...seenAll].sort());
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses a cursor it did not hand out', () => {
    expect(() => decodeCursor('!!')).toThrow(/cursor is not one this hub handed out/);
    expect(() => decodeCursor(Buffer.from('[1]').toString('base64url'))).toThrow(/cursor/);
    expect(decodeCursor(null)).toEqual({});
  });
});

describe('rate limiter', () => {
  it('allows a burst, then the steady rate, per key', () => {
    let now = 0;
    const rl = new RateLimiter({ requests: 2, per: 1000, burst: 3 }, 100, () => now);
    expect([rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([0, 0, 0]);
    expect(rl.take('a')).toBe(500);
    expect(rl.take('b')).toBe(0);
    now = 500;
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBeGreaterThan(0);
  });

  it('keeps a bounded number of keys', () => {
    const rl = new RateLimiter({ requests: 1, per: 1000, burst: 1 }, 10, () => 0);
    for (let i = 0; i < 100; i++) rl.take(`k${i}`);
    expect(rl.size).toBe(10);
  });
});

describe('webhook signatures', () => {
  it('are HMAC-SHA256 over "timestamp.body"', () => {
    const body = '{"type":"spoke.down"}';
    const expected = createHmac('sha256', 'secret-secret-secret').update(`1700000000.${body}`).digest('hex');
    expect(signWebhook('secret-secret-secret', '1700000000', body)).toBe(`sha256=${expected}`);
    expect(verifyWebhook('secret-secret-secret', '1700000000', body, `sha256=${expected}`)).toBe(true);
    expect(verifyWebhook('secret-secret-secret', '1700000001', body, `sha256=${expected}`)).toBe(false);
  });
});

describe('fan-out', () => {
  const o = { timeoutMs: 200, maxParallel: 0, retries: 2, backoffMs: 5 };
  it('names each outcome and never fails as a whole', async () => {
    let flaky = 0;
    const answers = await fanOut(
      ['ok', 'slow', 'down', 'bad', 'flaky'],
      async (id) => {
        if (id === 'slow') return new Promise(() => undefined);
        if (id === 'down') throw new AxleError(ErrorCode.UNREACHABLE, 'cannot reach');
        if (id === 'bad') throw new AxleError(ErrorCode.STALE_TERM, 'term 1 is below 2');
        if (id === 'flaky' && flaky++ < 2) throw new AxleError(ErrorCode.CLOSED, 'dropped');
        return id;
      },
      o,
    );
    const by = Object.fromEntries(answers.map((a) => [a.spokeId, a]));
    expect(by.ok).toMatchObject({ outcome: 'ok', value: 'ok', attempts: 1 });
    expect(by.slow).toMatchObject({ outcome: 'timeout' });
    expect(by.down).toMatchObject({ outcome: 'unreachable', attempts: 3 });
    expect(by.bad!.outcome).toBe('error: E_STALE_TERM: term 1 is below 2');
    expect(by.flaky).toMatchObject({ outcome: 'ok', attempts: 3 });
  });

  it('keeps at most max_parallel calls in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const ids = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const answers = await fanOut(
      ids,
      async () => {
        peak = Math.max(peak, ++inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        return 1;
      },
      { ...o, maxParallel: 3 },
    );
    expect(peak).toBe(3);
    expect(answers.map((a) => a.spokeId)).toEqual(ids);
  });
});

describe('hub config', () => {
  const base = { server_id: 'h', listen: '127.0.0.1:0', data_dir: '/tmp/x' };
  it('refuses a spoke config clearly and fills the documented defaults', () => {
    expect(() => hubConfigFrom({ ...base, spanner: { role: 'spoke' } })).toThrow(
      /spanner.role: is "spoke", but this is the hub daemon: run axle-spoke/,
    );
    const c = hubConfigFrom({
      ...base,
      spanner: {
        role: 'hub',
        spokes: [{ id: 'dc1', addr: 'spoke1.example.com:1530', patterns: ['*.dc1.*'], pubkey: pub }],
      },
    });
    expect(c.spanner.auto_failover).toEqual({
      enabled: false,
      threshold: 3,
      interval: 30_000,
      drain_batch: 100,
      drain_parallel: 4,
      drain_jitter: 1000,
    });
    expect(c.fanout.timeout).toBe(5000);
    expect(c.enrollment.approval).toBe('auto');
    expect(c.spanner.peers).toEqual([]);
  });

  it('lists every problem: duplicate ids, unknown default spoke, bad keys, misspelt keys', () => {
    let msg = '';
    try {
      hubConfigFrom({
        ...base,
        spanner: {
          role: 'hub',
          default_spoke: 'dc9',
          auto_failover: { treshold: 3 },
          spokes: [
            { id: 'dc1', addr: 'a:1', pubkey: pub },
            { id: 'dc1', addr: 'b:1', pubkey: 'nope' },
          ],
        },
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/spanner.spokes\[1\].pubkey/);
    expect(msg).toMatch(/spanner.auto_failover.treshold: unknown key/);
    const dup = () =>
      hubConfigFrom({
        ...base,
        spanner: {
          role: 'hub',
          default_spoke: 'dc9',
          spokes: [
            { id: 'dc1', addr: 'a:1', pubkey: pub },
            { id: 'dc1', addr: 'b:1', pubkey: pub },
          ],
        },
      });
    expect(dup).toThrow(/duplicate spoke id "dc1".*default_spoke: names "dc9"/);
  });

  it('takes crypto_threads as the spoke does: "auto" by default, a thread count, nothing else', () => {
    const hub = { role: 'hub' };
    expect(hubConfigFrom({ ...base, spanner: hub }).crypto_threads).toBe('auto');
    expect(hubConfigFrom({ ...base, spanner: hub, crypto_threads: 0 }).crypto_threads).toBe(0);
    expect(hubConfigFrom({ ...base, spanner: hub, crypto_threads: 2 }).crypto_threads).toBe(2);
    expect(() => hubConfigFrom({ ...base, spanner: hub, crypto_threads: 'many' })).toThrow(
      /crypto_threads: must be "auto" or a whole number of threads from 0 to 64/,
    );
  });
});

describe('state store', () => {
  it('keeps every applied change across a reopen, in log order, and counts token uses exactly', async () => {
    const t = tempDir('axle-hub-state-');
    cleanups.push(t.cleanup);
    const s = await HubStore.open(t.dir);
    const tokens = new Tokens(s);
    const { token } = await tokens.createJoin({ maxUses: 5 }, 'test');
    const rs = Array.from({ length: 5 }, (_, i) => tokens.reserve(token, `h${i}`));
    expect(() => tokens.reserve(token, 'h6')).toThrow(/used 0 of 5/);
    await Promise.all(
      rs.map(async (r, i) => {
        await s.applyAll([
          { kind: 'token.put', token: r.commit() },
          {
            kind: 'envoy.assign',
            reason: 'enroll',
            envoy: { hostname: `h${i}`, pubkey: pub, spokeId: 'dc1', epoch: i + 1, enrolledAt: 1, assignedAt: 1 },
          },
        ]);
        r.settle();
      }),
    );
    expect(s.tokens.get(token.id)!.uses).toBe(5);
    await s.apply({
      kind: 'envoy.assign',
      reason: 'reassign',
      from: 'dc1',
      envoy: { hostname: 'h0', pubkey: pub, spokeId: 'dc2', epoch: 9, enrolledAt: 1, assignedAt: 2 },
    });
    // dc3 adopted h1 under epoch 12 for a move that lost the race: its release must carry 12, not h1's 2.
    await s.apply({ kind: 'release.add', spokeId: 'dc3', hostname: 'h1', epoch: 12 });
    const seq = s.lastSeq;
    await s.close();

    const again = await HubStore.open(t.dir);
    expect(again.tokens.get(token.id)!.uses).toBe(5);
    expect(again.envoys.size).toBe(5);
    expect(again.countOn('dc1')).toBe(4);
    expect(again.countOn('dc2')).toBe(1);
    expect([...again.releases.get('dc1')!]).toEqual([['h0', 1]]);
    expect([...again.releases.get('dc3')!]).toEqual([['h1', 12]]);
    expect(again.lastSeq).toBe(seq);
    const log = again.logSince(0, 100);
    expect(log.map((e) => e.seq)).toEqual(Array.from({ length: seq }, (_, i) => i + 1));
    expect(log[0]!.change).toEqual({ kind: 'term.set', term: 1 });
    expect(again.term).toBe(1);
    await again.close();
  });

  it('gives the term of its last entry while that entry is still being written, and after a reopen', async () => {
    const t = tempDir('axle-hub-position-');
    cleanups.push(t.cleanup);
    const s = await HubStore.open(t.dir);
    expect(s.position()).toEqual({ lastSeq: 1, lastTerm: 1 });
    await s.raiseTerm(3);
    // A lease ping goes out while a write is in flight: reading the entry back from the log
    // would find nothing yet, and 2@0 ranks below an empty hub's 1@1 at a witness.
    const written = s.applyAll([{ kind: 'term.set', term: 3 }]);
    expect(s.position()).toEqual({ lastSeq: 2, lastTerm: 3 });
    expect(s.termAt(2)).toBe(3);
    await written;
    expect(s.termAt(1)).toBe(1);
    await s.close();
    const again = await HubStore.open(t.dir);
    expect(again.position()).toEqual({ lastSeq: 2, lastTerm: 3 });
    await again.close();
  });

  it('settles an answer read from the view only once what was written before it is committed', async () => {
    const t = tempDir('axle-hub-settled-');
    cleanups.push(t.cleanup);
    const gates: { seq: number; open: () => void }[] = [];
    let refusal: AxleError | undefined;
    let holding = false;
    const hooks = {
      guard: () => {
        if (refusal) throw refusal;
      },
      gate: (seq: number) => (holding ? new Promise<void>((open) => gates.push({ seq, open })) : Promise.resolve()),
      appended: () => undefined,
    };
    const s = await HubStore.open(t.dir, hooks);
    holding = true;
    const write = s.apply({ kind: 'term.set', term: 1 });
    let settled = false;
    const read = s.settled().then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    // The write is on disk (both wait at the commit gate, for the same position) and neither has been answered.
    expect(gates.map((g) => g.seq)).toEqual([2, 2]);
    expect(settled).toBe(false);
    for (const g of gates.splice(0)) g.open();
    await Promise.all([write, read]);
    expect(settled).toBe(true);

    refusal = new AxleError(ErrorCode.NOT_PRIMARY, 'a standby');
    await expect(s.settled()).rejects.toMatchObject({ code: ErrorCode.NOT_PRIMARY });
    await s.close();
  });
});
