/**
 * The hub's durable state (src/store): one LMDB store written as a log of changes and reduced
 * into records (state.ts, model.ts), the event log and its webhook delivery (events.ts,
 * webhooks.ts), API tokens and secrets (tokens.ts, secrets.ts), compliance history (history/)
 * and the replication of the change log to standbys with the election of the one primary that
 * writes it (replication/).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { AxleError, ErrorCode } from '@axle/shared';
import {
  beginInstall,
  finishInstall,
  INSTALLING,
  installProgress,
  type InstallProgress,
  putRows,
  readSnapshot,
  type SnapshotReader,
  type SnapshotRow,
} from './snapshot.js';
import { KEEP_LOG } from './replication/settings.js';
import { type Key, type Tables, writeChange } from './tables.js';
import { HubView } from './view.js';
import type {
  ApiToken,
  Change,
  ConfigBundle,
  Delivery,
  DirectoryEntry,
  HubEvent,
  JoinToken,
  LogEntry,
  Move,
  PendingEnrollment,
  RekeyAllowance,
  SecretRecord,
  SpokeAdmin,
} from './model.js';
import type { Job, JobTarget } from '../jobs/model.js';
import type { HistoryBucket, HistorySample } from './history/model.js';
import type { Rollout } from '../jobs/rollouts/model.js';

/** Old deliveries and log entries are trimmed so the store does not grow without bound. */
const KEEP_DELIVERIES = 20_000;

/**
 * Replication's say over writes, given when the store is opened: `guard` refuses to start a
 * write on a hub that may not write (a standby); `gate` holds the caller's answer until enough
 * standbys stored it; `appended` is told when entries are durable (the log shippers wake on it).
 */
export interface StoreHooks {
  guard(): void;
  gate(seq: number): Promise<void>;
  appended(lastSeq: number): void;
}

/**
 * The hub's durable state. Every write goes through `apply`/`applyAll`: the change is
 * numbered, written to the log and to its table in one LMDB transaction, and only after
 * that transaction is on disk does the in-memory view change and the caller hear back.
 * Replication ships `logSince()`; a standby replays it with the same `reduce`.
 *
 * It announces each event (an `event.add` change) to `onEvent` listeners once the write that
 * carries it is committed, so no writer can forget to announce one (store/events.ts logs them and passes
 * them on to webhooks). A standby replaying the primary's log announces nothing.
 */
export class HubStore extends HubView {
  private readonly announcer = new EventEmitter<{ event: [HubEvent] }>();
  lastSeq = 0;
  /**
   * The term of the entry at `lastSeq`, known from the moment it is numbered: an entry is
   * read back from the log only once its transaction is on disk, and a position reported
   * meanwhile (a lease ping to a witness) must not say term 0, which ranks below any candidate.
   */
  private lastTerm = 0;
  lastEventSeq = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private constructor(
    private readonly hooks: StoreHooks | undefined,
    private readonly keepLog: number,
    private readonly root: RootDatabase,
    private readonly db: Tables,
  ) {
    super();
  }

  /**
   * `hooks`: replication's say over writes (replication/commit.ts); none on a single hub.
   * `keepLog`: log entries kept for standbys that fall behind (`replication.keep_log`).
   */
  static async open(dir: string, hooks?: StoreHooks, keepLog = KEEP_LOG): Promise<HubStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let root: RootDatabase;
    try {
      root = open({ path: join(dir, 'hub.lmdb'), maxDbs: 32, compression: false });
    } catch (e) {
      throw new AxleError(
        ErrorCode.INTERNAL,
        `cannot open the hub store in ${dir}: ${(e as Error).message}; check the directory and its permissions`,
        { cause: e },
      );
    }
    const sub = (name: string) => root.openDB<unknown, Key>({ name });
    const s = new HubStore(hooks, keepLog, root, {
      meta: sub('meta'),
      log: sub('log'),
      envoys: sub('envoys'),
      tokens: sub('tokens'),
      apitokens: sub('apitokens'),
      pending: sub('pending'),
      rekey: sub('rekey'),
      spokes: sub('spokes'),
      releases: sub('releases'),
      moves: sub('moves'),
      events: sub('events'),
      deliveries: sub('deliveries'),
      bundles: sub('bundles'),
      jobs: sub('jobs'),
      jobtargets: sub('jobtargets'),
      secrets: sub('secrets'),
      secretheld: sub('secretheld'),
      rollouts: sub('rollouts'),
      history: sub('history'),
      historyh: sub('historyh'),
    });
    s.load();
    if (s.db.meta.get('term') === undefined) await s.apply({ kind: 'term.set', term: 1 });
    return s;
  }

  private load(): void {
    const d = this.db;
    this.term = (d.meta.get('term') as number | undefined) ?? 1;
    this.epochCeiling = (d.meta.get('epochCeiling') as number | undefined) ?? 0;
    this.lastSeq = (d.meta.get('lastSeq') as number | undefined) ?? 0;
    this.lastEventSeq = (d.meta.get('lastEventSeq') as number | undefined) ?? 0;
    // Part of a snapshot, its install cut short: nothing here is a position to build on.
    if (d.meta.get(INSTALLING) !== undefined) {
      this.lastSeq = 0;
      this.lastTerm = 0;
      return;
    }
    this.lastTerm = this.storedTermAt(this.lastSeq) ?? 0;
    for (const { value } of d.envoys.getRange()) this.indexEnvoy(value as DirectoryEntry);
    for (const { value } of d.tokens.getRange()) this.tokens.set((value as JoinToken).id, value as JoinToken);
    for (const { value } of d.apitokens.getRange()) this.apiTokens.set((value as ApiToken).id, value as ApiToken);
    for (const { value } of d.pending.getRange())
      this.pending.set((value as PendingEnrollment).hostname, value as PendingEnrollment);
    for (const { value } of d.rekey.getRange())
      this.rekey.set((value as RekeyAllowance).hostname, value as RekeyAllowance);
    for (const { value } of d.spokes.getRange()) this.spokeAdmin.set((value as SpokeAdmin).id, value as SpokeAdmin);
    for (const { key, value } of d.releases.getRange()) {
      const [spoke, host] = key as [string, string];
      this.addRelease(spoke, host, typeof value === 'number' ? value : 0);
    }
    for (const { value } of d.moves.getRange()) this.moves.set((value as Move).id, value as Move);
    for (const { value } of d.bundles.getRange()) this.indexBundle(value as ConfigBundle);
    for (const { value } of d.jobs.getRange()) this.jobs.set((value as Job).id, value as Job);
    for (const { value } of d.secrets.getRange()) this.secrets.set((value as SecretRecord).name, value as SecretRecord);
    for (const { value } of d.rollouts.getRange()) this.rollouts.set((value as Rollout).id, value as Rollout);
    for (const { value } of d.history.getRange()) this.history.raw.push(value as HistorySample);
    for (const { value } of d.historyh.getRange()) this.history.hourly.push(value as HistoryBucket);
  }

  /** The version of secret `name` each host was last sealed, read from the store (not kept in memory). */
  secretHolders(name: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const { key, value } of this.db.secretheld.getRange({ start: [name], end: [name, '\uffff'] })) {
      out.set((key as [string, string])[1], value as number);
    }
    return out;
  }

  /** Calls `fn` with each event once the write carrying it is committed (never for a standby's replay). */
  onEvent(fn: (ev: HubEvent) => void): void {
    this.announcer.on('event', fn);
  }

  /** Applies one change durably; resolves with its log sequence number once it is on disk. */
  apply(change: Change): Promise<number> {
    return this.applyAll([change]);
  }

  /** Applies several changes in one transaction: all of them are durable, or none. */
  applyAll(changes: Change[]): Promise<number> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, 'the hub store is closed'));
    if (changes.length === 0) return Promise.resolve(this.lastSeq);
    try {
      this.hooks?.guard();
    } catch (e) {
      return Promise.reject(e);
    }
    const at = Date.now();
    const term = this.term;
    const entries: LogEntry[] = changes.map((change) => {
      if (change.kind === 'event.add' && change.event.seq === 0) change.event.seq = ++this.lastEventSeq;
      return { seq: ++this.lastSeq, at, term, change };
    });
    this.lastTerm = term;
    const done = this.commit(entries, (last) => this.hooks?.appended(last));
    const hooks = this.hooks;
    const committed = hooks
      ? done.then(async (seq) => {
          await hooks.gate(seq);
          return seq;
        })
      : done;
    return committed.then((seq) => {
      for (const c of changes) if (c.kind === 'event.add') this.announcer.emit('event', c.event);
      return seq;
    });
  }

  /**
   * Resolves once everything written so far is committed, as a write's answer would be. An
   * answer read from the view rather than written (an import or enrollment found done
   * already) waits for this: the write that made it may be on this disk alone, its caller
   * told it failed, and a retry must not hear "done" for what a failover can still lose.
   */
  async settled(): Promise<void> {
    const seq = this.lastSeq;
    const written = this.chain;
    this.hooks?.guard();
    await written;
    await this.hooks?.gate(seq);
  }

  /**
   * A standby's side of replication: appends entries numbered by the primary (they must
   * follow `lastSeq`), durably, then updates the in-memory view. Resolves with the new lastSeq.
   */
  applyReplicated(entries: LogEntry[]): Promise<number> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, 'the hub store is closed'));
    if (entries.length === 0) return Promise.resolve(this.lastSeq);
    if (entries[0]!.seq !== this.lastSeq + 1) {
      return Promise.reject(
        new AxleError(ErrorCode.INTERNAL, `replicated entry ${entries[0]!.seq} does not follow ${this.lastSeq}`),
      );
    }
    const last = entries[entries.length - 1]!;
    this.lastSeq = last.seq;
    this.lastTerm = last.term ?? 1;
    for (const e of entries)
      if (e.change.kind === 'event.add') this.lastEventSeq = Math.max(this.lastEventSeq, e.change.event.seq);
    return this.commit(entries);
  }

  /**
   * Writes numbered log entries, their changes and the log position in one transaction, and
   * once it is on disk updates the in-memory view and calls `committed`. Chained so the view
   * changes in log order, each step after its commit. Resolves with the last entry's seq.
   */
  private commit(entries: LogEntry[], committed?: (last: number) => void): Promise<number> {
    const last = this.lastSeq;
    const eventSeq = this.lastEventSeq;
    const run = this.root.transaction(() => {
      for (const e of entries) {
        this.db.log.put(e.seq, e);
        if (e.seq > this.keepLog) this.db.log.remove(e.seq - this.keepLog);
        writeChange(this.db, e.change);
      }
      this.db.meta.put('lastSeq', last);
      this.db.meta.put('lastEventSeq', eventSeq);
    });
    const done = this.chain
      .then(() => run)
      .then(async () => {
        await this.root.flushed;
        for (const e of entries) this.reduce(e.change);
        committed?.(last);
        return last;
      });
    this.chain = done.catch(() => undefined);
    return done;
  }

  /** The term of the log entry at `seq` (0 for seq 0; undefined for an entry no longer kept). */
  termAt(seq: number): number | undefined {
    if (seq === this.lastSeq) return this.lastTerm;
    return this.storedTermAt(seq);
  }

  /** This store's log position: its last entry and that entry's term (0@0 while it holds part of a snapshot). */
  position(): { lastSeq: number; lastTerm: number } {
    return { lastSeq: this.lastSeq, lastTerm: this.lastTerm };
  }

  private storedTermAt(seq: number): number | undefined {
    if (seq === 0) return 0;
    const e = this.db.log.get(seq) as LogEntry | undefined;
    return e ? (e.term ?? 1) : undefined;
  }

  /** The oldest log entry still kept (1 when nothing was trimmed). */
  firstLogSeq(): number {
    for (const { key } of this.db.log.getRange({ limit: 1 })) return key as number;
    return this.lastSeq + 1;
  }

  /** A durable value outside the log (per-hub election state such as the vote of a term). */
  getMeta<T>(key: string): T | undefined {
    return this.db.meta.get(key) as T | undefined;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    await this.db.meta.put(key, value);
    await this.root.flushed;
  }

  /** Raises the term durably without a log entry (a vote or a higher term seen on the wire). */
  async raiseTerm(term: number): Promise<void> {
    if (term <= this.term) return;
    this.term = term;
    await this.putMeta('term', term);
  }

  /**
   * Every row of every table and the log position they reflect, from one read transaction so
   * the snapshot stays consistent however long it takes to send. Rows are read as `rows` is
   * iterated: a primary sending a million to a standby reads a chunk between sends instead of
   * blocking its event loop for all of them (long enough to lose its lease). `close()` ends
   * the transaction; a standby installs the rows with beginSnapshot, putSnapshotRows, finishSnapshot.
   */
  openSnapshot(): SnapshotReader {
    return readSnapshot(this.root, this.db);
  }

  /**
   * A standby starts installing a snapshot: every table is emptied and the store holds nothing
   * (log position 0) until finishSnapshot, so a standby never keeps a whole snapshot in memory
   * and a partial one is never taken for a position, even after a restart.
   */
  async beginSnapshot(snap: InstallProgress): Promise<void> {
    await this.chain;
    this.lastSeq = 0;
    this.lastTerm = 0;
    this.clearView();
    await beginInstall(this.root, this.db, snap);
  }

  /** One chunk of the snapshot being installed, durably with the progress it brings (the in-memory view is built at the end). */
  putSnapshotRows(rows: SnapshotRow[], progress: InstallProgress): Promise<void> {
    return putRows(this.root, this.db, rows, progress);
  }

  /** The snapshot this standby holds part of, as stored; undefined when none is being installed. */
  installProgress(): InstallProgress | undefined {
    return installProgress(this.db);
  }

  /** Part of a snapshot is stored (its install not finished): the tables are not a state to serve or lead from. */
  get installing(): boolean {
    return this.db.meta.get(INSTALLING) !== undefined;
  }

  /** The snapshot taken at (seq, term) on the primary is all stored: the log restarts at `seq`; the view is rebuilt. */
  async finishSnapshot(seq: number, term: number): Promise<void> {
    await finishInstall(this.root, this.db, { seq, term, keepTerm: Math.max(this.term, term) });
    this.clearView();
    this.load();
  }

  /** A published bundle with its bytes, read from the store. */
  bundle(version: number): ConfigBundle | undefined {
    const b = this.db.bundles.get(version) as ConfigBundle | undefined;
    return b
      ? { ...b, hash: new Uint8Array(b.hash), signature: new Uint8Array(b.signature), data: new Uint8Array(b.data) }
      : undefined;
  }

  /** A job's targets as stored, in host name order. */
  jobTargets(jobId: string): JobTarget[] {
    const out: JobTarget[] = [];
    for (const { value } of this.db.jobtargets.getRange({ start: [jobId], end: [jobId, '\uffff'] }))
      out.push(value as JobTarget);
    return out;
  }

  /** Events after `after`, oldest first, optionally of some types. */
  events(o: { after?: number; limit?: number; types?: string[] } = {}): HubEvent[] {
    const out: HubEvent[] = [];
    const limit = o.limit ?? 100;
    for (const { value } of this.db.events.getRange({ start: (o.after ?? 0) + 1 })) {
      const ev = value as HubEvent;
      if (o.types && !o.types.includes(ev.type)) continue;
      out.push(ev);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Most recent deliveries first. */
  deliveries(limit = 100): Delivery[] {
    const out: Delivery[] = [];
    for (const { value } of this.db.deliveries.getRange({ reverse: true, limit: Math.min(limit, KEEP_DELIVERIES) }))
      out.push(value as Delivery);
    return out.sort((a, b) => b.createdAt - a.createdAt || b.id.localeCompare(a.id));
  }

  /** The ordered change log after `seq`, for replication and audits. */
  logSince(seq: number, limit = 1000): LogEntry[] {
    const out: LogEntry[] = [];
    for (const { value } of this.db.log.getRange({ start: seq + 1, limit })) out.push(value as LogEntry);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.root.close();
  }
}
