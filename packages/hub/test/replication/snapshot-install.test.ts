import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, silentLogger, toBase64, type MessageOf } from '@axle/shared';
import { Bag, tempDir } from '@axle/testkit';
import { SnapshotFeed } from '../../src/store/replication/snapshot-feed.js';
import { StandbyApplier } from '../../src/store/replication/standby.js';
import { HubStore } from '../../src/store/state.js';

/**
 * The window a process test cannot hit on purpose: a standby that stored the last chunk of a
 * snapshot and stopped before it closed the install (a kill -9 between the two transactions).
 * Real stores in temp dirs on both sides; the standby's store is closed and reopened in between.
 */
const bag = new Bag();
afterAll(() => bag.run());

const TERM = 3;

async function store(): Promise<{ s: HubStore; dir: string }> {
  const t = tempDir('axle-snapinstall-');
  bag.add(t.cleanup);
  const s = await HubStore.open(t.dir);
  return { s, dir: t.dir };
}

function msg(feed: SnapshotFeed, c: ReturnType<SnapshotFeed['next']>): MessageOf<'repl_snapshot'> {
  return {
    type: 'repl_snapshot',
    term: TERM,
    primary: 'ha',
    primaryAddr: '127.0.0.1:1',
    snapSeq: feed.seq,
    snapTerm: feed.term,
    chunk: c.chunk,
    done: c.done,
    rows: c.rows as MessageOf<'repl_snapshot'>['rows'],
  };
}

describe('a snapshot install stopped between its last chunk and its close', () => {
  it('counts as nothing after a restart, and the primary closes it with one empty chunk', async () => {
    const { s: primary } = await store();
    const pub = toBase64(generateKeyPair().publicKey);
    for (let b = 0; b < 12; b++) {
      await primary.applyAll(
        Array.from({ length: 1000 }, (_, i) => ({
          kind: 'envoy.assign' as const,
          envoy: {
            hostname: `web${b * 1000 + i}.dc1.example.com`,
            pubkey: pub,
            spokeId: 'dc1',
            epoch: b * 1000 + i + 1,
            enrolledAt: 1,
            assignedAt: 1,
          },
          reason: 'enroll' as const,
        })),
      );
    }
    const { s: first, dir } = await store();
    const applier = new StandbyApplier(first, silentLogger());
    const feed = new SnapshotFeed(primary.openSnapshot(), TERM);
    bag.add(() => feed.close());
    // Every chunk but the last through the standby's own handler; the last stored as the handler stores it, not closed.
    let c = feed.next();
    for (; !c.done; c = feed.next()) expect((await applier.snapshot(msg(feed, c), () => TERM)).ok).toBe(true);
    const held = applier.held()!;
    expect(held.chunks).toBe(c.chunk);
    await first.putSnapshotRows(c.rows, { ...held, chunks: held.chunks + 1, rows: held.rows + c.rows.length });
    await first.close();

    const standby = await HubStore.open(dir);
    bag.add(() => standby.close());
    expect(standby.installing).toBe(true);
    expect(standby.lastSeq).toBe(0);
    expect(standby.envoys.size).toBe(0);
    const again = new StandbyApplier(standby, silentLogger());
    expect(again.position().lastSeq).toBe(0);
    const progress = again.held()!;
    expect(progress).toMatchObject({ term: TERM, snapSeq: feed.seq, chunks: c.chunk + 1 });
    expect(progress.rows).toBeGreaterThanOrEqual(12_000);

    // What the hello reports lets the kept feed go on: an empty chunk that closes the install.
    expect(feed.seek(progress.chunks)).toBe(true);
    const close = feed.next();
    expect(close).toMatchObject({ chunk: progress.chunks, rows: [], done: true });
    const ack = await again.snapshot(msg(feed, close), () => TERM);
    expect(ack).toMatchObject({ ok: true, lastSeq: primary.lastSeq });
    expect(standby.installing).toBe(false);
    expect(standby.envoys.size).toBe(12_000);
    expect(new Map(standby.envoys)).toEqual(new Map(primary.envoys));

    // A feed cannot go back further than the chunk it made last: a new snapshot then.
    expect(feed.seek(0)).toBe(false);
    feed.close();
    await primary.close();
  });
});
