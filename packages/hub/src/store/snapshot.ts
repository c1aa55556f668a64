import type { RootDatabase } from 'lmdb';
import { AxleError, ErrorCode } from '@axle/shared';
import type { LogEntry } from './model.js';
import type { Key, Tables } from './tables.js';

/** One row of a snapshot: a table's key and value as stored. */
export interface SnapshotRow {
  table: string;
  key: unknown;
  value: unknown;
}

/** A consistent read of every table, iterated lazily (see HubStore.openSnapshot). */
export interface SnapshotReader {
  seq: number;
  term: number;
  rows: Iterator<SnapshotRow>;
  close: () => void;
}

/** The `meta` values a snapshot carries; the rest of `meta` (position, term, votes) is the hub's own. */
const SNAPSHOT_META = ['epochCeiling', 'lastEventSeq'];

/**
 * Set in `meta` while a snapshot is being installed chunk by chunk: the tables then hold part
 * of one, so the hub counts as holding nothing (log position 0) until the last chunk, even
 * across a restart. Its value says which snapshot and how many of its chunks are stored
 * (written with each chunk's rows), so the primary that sent it can go on from there.
 */
export const INSTALLING = 'snapshotInstalling';

/** A snapshot a standby holds part of: the sending primary's term, the snapshot's position, the chunks stored. */
export interface InstallProgress {
  term: number;
  snapSeq: number;
  snapTerm: number;
  chunks: number;
  rows: number;
}

/** The install under way as stored, or undefined (none, or a mark of an earlier release that says only "installing"). */
export function installProgress(db: Tables): InstallProgress | undefined {
  const v = db.meta.get(INSTALLING) as Partial<InstallProgress> | true | undefined;
  if (typeof v !== 'object' || v === null) return undefined;
  const { term, snapSeq, snapTerm, chunks, rows } = v;
  const nat = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!nat(term) || !nat(snapSeq) || !nat(snapTerm) || !nat(chunks) || !nat(rows)) return undefined;
  return { term, snapSeq, snapTerm, chunks, rows };
}

export function readSnapshot(root: RootDatabase, db: Tables): SnapshotReader {
  const transaction = root.useReadTransaction();
  const seq = (db.meta.get('lastSeq', { transaction }) as number | undefined) ?? 0;
  const term = seq === 0 ? 0 : ((db.log.get(seq, { transaction }) as LogEntry | undefined)?.term ?? 1);
  function* rows(): Generator<SnapshotRow> {
    for (const [table, d] of Object.entries(db)) {
      if (table === 'meta' || table === 'log') continue;
      for (const { key, value } of d.getRange({ transaction })) yield { table, key, value };
    }
    for (const k of SNAPSHOT_META) {
      const v = db.meta.get(k, { transaction });
      if (v !== undefined) yield { table: 'meta', key: k, value: v };
    }
  }
  return { seq, term, rows: rows(), close: () => transaction.done() };
}

/** Empties every table but `meta` and marks the store as installing `snap`, no chunk stored yet (the first step of an install). */
export async function beginInstall(root: RootDatabase, db: Tables, snap: InstallProgress): Promise<void> {
  await root.transaction(() => {
    db.meta.put(INSTALLING, { ...snap, chunks: 0, rows: 0 } satisfies InstallProgress);
    db.meta.put('lastSeq', 0);
    for (const k of SNAPSHOT_META) db.meta.remove(k);
  });
  // One table at a time, each its own transaction: a standby that held a million rows is not
  // stalled for all of them at once; the mark above already says the tables are partial.
  for (const [name, d] of Object.entries(db)) if (name !== 'meta') await d.clearAsync();
  await root.flushed;
}

/**
 * Stores one chunk's rows and, in the same transaction, the install's progress with it; a row
 * for the log, an unknown table or a `meta` key of the hub's own is refused first.
 */
export async function putRows(
  root: RootDatabase,
  db: Tables,
  rows: SnapshotRow[],
  progress: InstallProgress,
): Promise<void> {
  const tables = db as Record<string, Tables['meta']>;
  for (const r of rows) {
    if (!Object.hasOwn(tables, r.table) || r.table === 'log')
      throw new AxleError(ErrorCode.INVALID, `snapshot names an unknown table "${String(r.table)}"`);
    if (r.table === 'meta' && !SNAPSHOT_META.includes(r.key as string))
      throw new AxleError(ErrorCode.INVALID, `snapshot carries meta key "${String(r.key)}", which is not replicated`);
  }
  await root.transaction(() => {
    for (const r of rows) tables[r.table]!.put(r.key as Key, r.value);
    db.meta.put(INSTALLING, progress);
  });
}

/** Ends an install at (seq, term): the log restarts at `seq`, the mark goes; the local term is kept when higher. */
export async function finishInstall(
  root: RootDatabase,
  db: Tables,
  at: { seq: number; term: number; keepTerm: number },
): Promise<void> {
  const { seq, term } = at;
  await root.transaction(() => {
    // The snapshot's last entry is kept so the next append can check (prevSeq, prevTerm).
    if (seq > 0) db.log.put(seq, { seq, at: Date.now(), term, change: { kind: 'term.set', term } } satisfies LogEntry);
    db.meta.put('lastSeq', seq);
    db.meta.put('term', at.keepTerm);
    db.meta.remove(INSTALLING);
  });
  await root.flushed;
}
