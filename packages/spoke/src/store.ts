import { mkdirSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { TraitIndex } from './trait-index.js';
import {
  AxleError,
  ErrorCode,
  errorText,
  type Compliance,
  type Json,
  type ResourceResult,
  type Issue,
  type Run,
  type RunCursor,
  type TermProof,
  termProofSchema,
  type SpokeTarget,
} from '@axle/shared';

/**
 * The spoke's LMDB environment. Writes are queued with lmdb-js's async `put`/`remove`,
 * which batches everything issued in one event turn into one transaction; callers that
 * must not acknowledge before the data is durable await `durable()` on what they queued.
 */

/** One envoy as stored. `released` envoys are tombstones kept so their check-ins can be redirected. */
export interface EnvoyRecord {
  hostname: string;
  pubkey: Uint8Array;
  epoch: number;
  enrolledAt: number;
  lastSeen: number;
  released: boolean;
  to?: SpokeTarget | undefined;
  compliance: Compliance;
  /** finishedAt of the latest run, which decides `compliance`. */
  lastRunAt: number;
  configVersion: number;
  /** Runs stored for this envoy, kept in step with the runs table for count retention. */
  runCount: number;
  traitsHash?: string | undefined;
}

export type RunKey = [hostname: string, finishedAt: number, runId: string];
type StoredRun = Omit<Run, 'results'>;
const MAX_TS = Number.MAX_SAFE_INTEGER;
/** Sorts after every host name, so a time-ordered page can start just past a cursor. */
const MAX_HOST = '\uffff';
/** How long a write may wait for its flush before it is reported failed (never acknowledged). */
const FLUSH_BOUND_MS = 30_000;
/** Free bytes below which the spoke refuses writes (see lowOnSpace). */
const SPACE_RESERVE = 16 * 2 ** 20;
const keyText = (k: RunKey): string => `${k[0]}\u0000${k[1]}\u0000${k[2]}`;

export class Store {
  private readonly root: RootDatabase;
  private readonly envoys: Database<EnvoyRecord, string>;
  private readonly traits: Database<Record<string, Json>, string>;
  /** [hostname, finishedAt, runId] -> run without its results. */
  private readonly runs: Database<StoredRun, RunKey>;
  /** Same key -> the run's per-resource results. */
  private readonly results: Database<ResourceResult[], RunKey>;
  /** [hostname, runId] -> finishedAt: makes reports idempotent by run id. */
  private readonly runIds: Database<number, [string, string]>;
  /** [finishedAt, hostname, runId] -> 1: recent runs across envoys, and age retention without a scan. */
  private readonly byTime: Database<number, [number, string, string]>;
  private readonly meta: Database<number, string>;
  /** Small records that are not numbers (the latest hub term proof); validated when read. */
  private readonly records: Database<unknown, string>;
  /** Trait equality, for list filters without a scan. */
  readonly traitIndex: TraitIndex;
  private closed = false;
  /** Runs queued for removal but not yet committed (still visible to reads until then). */
  private readonly removing = new Set<string>();

  constructor(private readonly dataDir: string) {
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // Never noSync: an acknowledged report must survive a crash (see durable()).
      this.root = open({ path: join(dataDir, 'spoke.lmdb'), maxDbs: 16, mapSize: 2 * 1024 ** 3 });
    } catch (e) {
      throw new AxleError(
        ErrorCode.INTERNAL,
        `cannot open the spoke database in ${dataDir}: ${errorText(e)}; check data_dir exists and is writable by this user`,
        { cause: e },
      );
    }
    this.envoys = this.root.openDB({ name: 'envoys' });
    this.traits = this.root.openDB({ name: 'traits' });
    this.runs = this.root.openDB({ name: 'runs' });
    this.results = this.root.openDB({ name: 'results' });
    this.runIds = this.root.openDB({ name: 'run_ids' });
    this.byTime = this.root.openDB({ name: 'runs_by_time' });
    this.meta = this.root.openDB({ name: 'meta' });
    this.records = this.root.openDB({ name: 'records' });
    this.traitIndex = new TraitIndex(this.root, this.traits, this.meta);
  }

  /**
   * Runs `fn` in one synchronous write transaction, so the writes it queues commit together
   * without an event turn each: for offline bulk loads into a stopped spoke's database.
   */
  bulk<T>(fn: () => T): T {
    return this.root.transactionSync(fn);
  }

  /** Resolves once everything queued so far is committed and flushed to disk. */
  async durable(pending: Promise<unknown>[] = []): Promise<void> {
    try {
      await Promise.all(pending);
    } catch (e) {
      throw await this.explain(e);
    }
    // Each write's own flush, not root.flushed: after a failed commit (a full disk) lmdb-js
    // never settles the root's flush promise, and a report waiting on it would hang forever.
    const flushes = pending
      .map((p) => (p as { flushed?: PromiseLike<unknown> }).flushed)
      .filter((f) => f !== undefined);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), FLUSH_BOUND_MS)));
    try {
      const done = await Promise.race([flushes.length > 0 ? Promise.all(flushes) : this.root.flushed, bound]);
      if (done === 'late')
        throw new AxleError(
          ErrorCode.INTERNAL,
          `the database did not confirm a write within ${FLUSH_BOUND_MS / 1000} s; it was not acknowledged (check the disk under ${this.dataDir})`,
        );
    } finally {
      clearTimeout(timer);
    }
  }

  private space = { at: 0, free: Number.POSITIVE_INFINITY };

  /**
   * Why writes should be refused now, or undefined. lmdb-js 3.5 can corrupt its heap and abort
   * after a write fails for lack of space, so the spoke stops writing while less than
   * SPACE_RESERVE bytes are free instead of letting LMDB hit ENOSPC. Checked at most once a second.
   */
  lowOnSpace(now = Date.now()): string | undefined {
    if (now - this.space.at >= 1000) {
      try {
        const st = statfsSync(this.dataDir);
        this.space = { at: now, free: st.bavail * st.bsize };
      } catch {
        this.space = { at: now, free: Number.POSITIVE_INFINITY };
      }
    }
    if (this.space.free >= SPACE_RESERVE) return undefined;
    return `the spoke's disk is full (${this.space.free} bytes free under ${this.dataDir}, below the ${SPACE_RESERVE / 2 ** 20} MiB reserve); nothing was stored: free space there`;
  }

  /** lmdb-js says only "Commit failed"; the reason (often a full disk) is in its commitError promise. */
  private async explain(e: unknown): Promise<unknown> {
    const why = (e as { commitError?: Promise<unknown> } | undefined)?.commitError;
    if (!why) return e;
    const cause = await Promise.race([
      why.then(
        () => undefined,
        (x: unknown) => x,
      ),
      new Promise((r) => setTimeout(r, 1000)),
    ]);
    const text = cause === undefined ? errorText(e) : errorText(cause);
    // A full disk shows up as ENOSPC or, from the page flush, as EIO: ask the file system.
    let free = Number.POSITIVE_INFINITY;
    try {
      const st = statfsSync(this.dataDir);
      free = st.bavail * st.bsize;
    } catch {
      // unknown; go by the message
    }
    const full = /No space left|ENOSPC/i.test(text) || free < 1024 * 1024;
    return new AxleError(
      ErrorCode.INTERNAL,
      full
        ? `the spoke's disk is full (${text}; ${Number.isFinite(free) ? `${free} bytes free` : 'free space unknown'}); nothing was stored: free space in ${this.dataDir}`
        : `database write failed (${text}); nothing was stored`,
      { cause: e },
    );
  }

  loadEnvoys(): EnvoyRecord[] {
    const out: EnvoyRecord[] = [];
    for (const { value } of this.envoys.getRange()) out.push({ ...value, pubkey: new Uint8Array(value.pubkey) });
    return out;
  }

  getEnvoy(hostname: string): EnvoyRecord | undefined {
    return this.envoys.get(hostname);
  }

  putEnvoy(rec: EnvoyRecord): Promise<boolean> {
    return this.envoys.put(rec.hostname, rec);
  }

  getTerm(): number {
    return this.meta.get('term') ?? 0;
  }

  putTerm(term: number): Promise<boolean> {
    return this.meta.put('term', term);
  }

  /** The hub-signed proof of the highest term seen, if one was ever received (a bad record reads as none). */
  getTermProof(): TermProof | undefined {
    const issues: Issue[] = [];
    const p = termProofSchema.parse(this.records.get('termProof'), '', issues);
    return p && issues.length === 0 ? p : undefined;
  }

  putTermProof(p: TermProof): Promise<boolean> {
    return this.records.put('termProof', p);
  }

  /** The highest hub term in which this spoke, as a replication witness, granted a vote. */
  getVoteTerm(): number {
    return this.meta.get('voteTerm') ?? 0;
  }

  putVoteTerm(term: number): Promise<boolean> {
    return this.meta.put('voteTerm', term);
  }

  getTraits(hostname: string): Record<string, Json> | undefined {
    return this.traits.get(hostname);
  }

  /** Stores a host's traits and brings the trait index in step, in the same batch. */
  putTraits(hostname: string, traits: Record<string, Json>): Promise<unknown> {
    const index = this.traitIndex.update(hostname, this.traits.get(hostname), traits);
    return Promise.all([this.traits.put(hostname, traits), ...index]);
  }

  hasRun(hostname: string, runId: string): boolean {
    return this.runIds.doesExist([hostname, runId]);
  }

  /**
   * Queues a run, its results, its id and the envoy record in one batch, plus the removal
   * of the envoy's oldest runs beyond `keep`. Returns the writes to await and how many
   * runs were removed (already subtracted from `rec.runCount` by the caller's accounting).
   */
  queueRun(rec: EnvoyRecord, run: Run, keep: number): { writes: Promise<unknown>[]; removed: number } {
    const { results, ...summary } = run;
    const key: RunKey = [run.hostname, run.finishedAt, run.id];
    const writes: Promise<unknown>[] = [
      this.runs.put(key, summary),
      this.results.put(key, results),
      this.runIds.put([run.hostname, run.id], run.finishedAt),
      this.byTime.put([run.finishedAt, run.hostname, run.id], 1),
    ];
    let removed = 0;
    const excess = rec.runCount - keep;
    if (excess > 0) {
      // Only committed runs are visible here; a run still in flight is counted next time,
      // and one already queued for removal by an earlier report is not removed twice.
      for (const k of this.runs.getKeys({
        start: [run.hostname],
        end: [run.hostname, MAX_TS],
        limit: excess + this.removing.size,
      })) {
        if (removed >= excess) break;
        if (this.removing.has(keyText(k))) continue;
        writes.push(...this.removeRun(k));
        removed++;
      }
    }
    rec.runCount -= removed;
    writes.push(this.putEnvoy(rec));
    return { writes, removed };
  }

  private removeRun(k: RunKey): Promise<boolean>[] {
    const [hostname, ts, runId] = k;
    const text = keyText(k);
    this.removing.add(text);
    const done = this.runs.remove(k);
    void done.finally(() => this.removing.delete(text)).catch(() => undefined);
    return [
      done,
      this.results.remove(k),
      this.runIds.remove([hostname, runId]),
      this.byTime.remove([ts, hostname, runId]),
    ];
  }

  /** Keys of runs that finished before `cutoff`, oldest first (age retention). */
  runsOlderThan(cutoff: number, limit: number): RunKey[] {
    const out: RunKey[] = [];
    for (const k of this.byTime.getKeys({ start: [0], end: [cutoff], limit })) out.push([k[1], k[0], k[2]]);
    return out;
  }

  /** Queues removal of runs (age retention); returns the keys actually queued. */
  queueRemoveRuns(keys: RunKey[]): { writes: Promise<unknown>[]; removed: RunKey[] } {
    const removed = keys.filter((k) => !this.removing.has(keyText(k)));
    return { writes: removed.flatMap((k) => this.removeRun(k)), removed };
  }

  private readRun(k: RunKey, withResults: boolean): Run | undefined {
    const summary = this.runs.get(k);
    if (!summary) return undefined;
    return { ...summary, results: withResults ? (this.results.get(k) ?? []) : [] };
  }

  /** The envoy's newest runs first. */
  recentRuns(hostname: string, limit: number, withResults = true): Run[] {
    return [...this.runsNewestFirst(hostname, undefined, withResults)].slice(0, Math.max(0, limit));
  }

  /**
   * Runs newest first, read lazily (a caller paging by bytes stops early), strictly before
   * `before` when given; without `hostname`, every envoy's runs by finish time.
   */
  *runsNewestFirst(hostname: string | undefined, before?: RunCursor, withResults = true): Generator<Run> {
    const keys =
      hostname === undefined
        ? this.byTime.getKeys({
            start: before ? [before.finishedAt, before.hostname ?? MAX_HOST, before.id] : [MAX_TS],
            end: [0],
            reverse: true,
          })
        : this.runs.getKeys({
            start: [hostname, before?.finishedAt ?? MAX_TS, before?.id ?? ''],
            end: [hostname],
            reverse: true,
          });
    for (const k of keys) {
      const key: RunKey = hostname === undefined ? [k[1] as string, k[0] as number, k[2] as string] : (k as RunKey);
      // The start key is inclusive: the cursor's own run was on the previous page.
      if (before && key[1] === before.finishedAt && key[2] === before.id) continue;
      const r = this.readRun(key, withResults);
      if (r) yield r;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.flushed;
    await this.root.close();
  }
}
