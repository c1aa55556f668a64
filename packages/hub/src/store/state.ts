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
import { open, type Database, type RootDatabase } from 'lmdb';
import { AxleError, ErrorCode } from '@axle/shared';
import type {
  ApiToken,
  Change,
  ConfigBundle,
  ConfigBundleMeta,
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

/** Old events and deliveries are trimmed so the store does not grow without bound. */
const KEEP_EVENTS = 50_000;
const KEEP_DELIVERIES = 20_000;
const KEEP_LOG = 1_000_000;

type Key = string | number | (string | number)[];

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
 * It emits `event` for each event (an `event.add` change) once the write that carries it is
 * committed, so no writer can forget to announce one (store/events.ts logs them and passes
 * them on to webhooks). A standby replaying the primary's log announces nothing.
 */
export class HubStore extends EventEmitter<{ event: [HubEvent] }> {
  term = 1;
  epochCeiling = 0;
  lastSeq = 0;
  lastEventSeq = 0;
  readonly envoys = new Map<string, DirectoryEntry>();
  readonly perSpoke = new Map<string, number>();
  readonly tokens = new Map<string, JoinToken>();
  readonly apiTokens = new Map<string, ApiToken>();
  readonly pending = new Map<string, PendingEnrollment>();
  readonly rekey = new Map<string, RekeyAllowance>();
  readonly spokeAdmin = new Map<string, SpokeAdmin>();
  /** spokeId -> host names it must still be told to release. */
  readonly releases = new Map<string, Set<string>>();
  readonly moves = new Map<string, Move>();
  /** Published config versions without their bytes (read those with `bundle()`), newest last. */
  readonly bundles = new Map<number, ConfigBundleMeta>();
  /** Jobs without their targets (read those with `jobTargets()`). */
  readonly jobs = new Map<string, Job>();
  readonly secrets = new Map<string, SecretRecord>();
  readonly rollouts = new Map<string, Rollout>();
  /** Compliance samples of the last day, oldest first, and hourly buckets before that (history/). */
  readonly history: { raw: HistorySample[]; hourly: HistoryBucket[] } = { raw: [], hourly: [] };
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly hooks: StoreHooks | undefined,
    private readonly root: RootDatabase,
    private readonly db: Record<
      | 'meta'
      | 'log'
      | 'envoys'
      | 'tokens'
      | 'apitokens'
      | 'pending'
      | 'rekey'
      | 'spokes'
      | 'releases'
      | 'moves'
      | 'events'
      | 'deliveries'
      | 'bundles'
      | 'jobs'
      | 'jobtargets'
      | 'secrets'
      | 'secretheld'
      | 'rollouts'
      | 'history'
      | 'historyh',
      Database<unknown, Key>
    >,
  ) {
    super();
  }

  /** `hooks`: replication's say over writes (replication/commit.ts); none on a single hub. */
  static async open(dir: string, hooks?: StoreHooks): Promise<HubStore> {
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
    const s = new HubStore(hooks, root, {
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
    for (const { value } of d.envoys.getRange()) this.indexEnvoy(value as DirectoryEntry);
    for (const { value } of d.tokens.getRange()) this.tokens.set((value as JoinToken).id, value as JoinToken);
    for (const { value } of d.apitokens.getRange()) this.apiTokens.set((value as ApiToken).id, value as ApiToken);
    for (const { value } of d.pending.getRange())
      this.pending.set((value as PendingEnrollment).hostname, value as PendingEnrollment);
    for (const { value } of d.rekey.getRange())
      this.rekey.set((value as RekeyAllowance).hostname, value as RekeyAllowance);
    for (const { value } of d.spokes.getRange()) this.spokeAdmin.set((value as SpokeAdmin).id, value as SpokeAdmin);
    for (const { key } of d.releases.getRange()) {
      const [spoke, host] = key as [string, string];
      this.releaseSet(spoke).add(host);
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
    const last = this.lastSeq;
    const eventSeq = this.lastEventSeq;
    const run = this.root.transaction(() => {
      for (const e of entries) {
        this.db.log.put(e.seq, e);
        if (e.seq > KEEP_LOG) this.db.log.remove(e.seq - KEEP_LOG);
        this.write(e.change);
      }
      this.db.meta.put('lastSeq', last);
      this.db.meta.put('lastEventSeq', eventSeq);
    });
    // Chained so the in-memory view changes in log order, each step after its commit.
    const done = this.chain
      .then(() => run)
      .then(async () => {
        await this.root.flushed;
        for (const e of entries) this.reduce(e.change);
        this.hooks?.appended(last);
        return last;
      });
    this.chain = done.catch(() => undefined);
    const hooks = this.hooks;
    const committed = hooks
      ? done.then(async (seq) => {
          await hooks.gate(seq);
          return seq;
        })
      : done;
    return committed.then((seq) => {
      for (const c of changes) if (c.kind === 'event.add') this.emit('event', c.event);
      return seq;
    });
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
    this.lastSeq = entries[entries.length - 1]!.seq;
    for (const e of entries)
      if (e.change.kind === 'event.add') this.lastEventSeq = Math.max(this.lastEventSeq, e.change.event.seq);
    const last = this.lastSeq;
    const eventSeq = this.lastEventSeq;
    const run = this.root.transaction(() => {
      for (const e of entries) {
        this.db.log.put(e.seq, e);
        if (e.seq > KEEP_LOG) this.db.log.remove(e.seq - KEEP_LOG);
        this.write(e.change);
      }
      this.db.meta.put('lastSeq', last);
      this.db.meta.put('lastEventSeq', eventSeq);
    });
    const done = this.chain
      .then(() => run)
      .then(async () => {
        await this.root.flushed;
        for (const e of entries) this.reduce(e.change);
        return last;
      });
    this.chain = done.catch(() => undefined);
    return done;
  }

  /** The term of the log entry at `seq` (0 for seq 0 or an entry no longer kept). */
  termAt(seq: number): number | undefined {
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
   * Every row of every table and the log position they reflect, read in one transaction
   * so the snapshot is consistent; a standby installs it with `installSnapshot`.
   */
  snapshotRows(): { seq: number; term: number; rows: { table: string; key: unknown; value: unknown }[] } {
    return this.root.transactionSync(() => {
      const seq = (this.db.meta.get('lastSeq') as number | undefined) ?? 0;
      const rows: { table: string; key: unknown; value: unknown }[] = [];
      for (const [table, db] of Object.entries(this.db)) {
        if (table === 'meta' || table === 'log') continue;
        for (const { key, value } of db.getRange()) rows.push({ table, key, value });
      }
      for (const k of ['epochCeiling', 'lastEventSeq']) {
        const v = this.db.meta.get(k);
        if (v !== undefined) rows.push({ table: 'meta', key: k, value: v });
      }
      return { seq, term: this.termAt(seq) ?? 1, rows };
    });
  }

  /**
   * Replaces the whole state with a snapshot taken at (seq, term) on the primary: tables
   * are cleared, rows written, the log restarted at `seq`, in one transaction; then the
   * in-memory view is rebuilt. The local term is kept when higher.
   */
  async installSnapshot(
    seq: number,
    term: number,
    rows: { table: string; key: unknown; value: unknown }[],
  ): Promise<void> {
    const tables = this.db as Record<string, Database<unknown, Key>>;
    for (const r of rows)
      if (!tables[r.table] || r.table === 'log')
        throw new AxleError(ErrorCode.INVALID, `snapshot names an unknown table "${r.table}"`);
    const keepTerm = Math.max(this.term, term);
    await this.chain;
    await this.root.transaction(() => {
      for (const [name, db] of Object.entries(tables))
        if (name !== 'meta') for (const k of [...db.getKeys()]) db.remove(k);
      const meta = this.db.meta;
      for (const k of ['epochCeiling', 'lastEventSeq']) meta.remove(k);
      for (const r of rows) tables[r.table]!.put(r.key as Key, r.value);
      // The snapshot's last entry is kept so the next append can check (prevSeq, prevTerm).
      if (seq > 0)
        this.db.log.put(seq, { seq, at: Date.now(), term, change: { kind: 'term.set', term } } satisfies LogEntry);
      meta.put('lastSeq', seq);
      meta.put('term', keepTerm);
    });
    await this.root.flushed;
    for (const m of [
      this.envoys,
      this.perSpoke,
      this.tokens,
      this.apiTokens,
      this.pending,
      this.rekey,
      this.spokeAdmin,
      this.releases,
      this.moves,
      this.bundles,
      this.jobs,
      this.secrets,
      this.rollouts,
    ])
      m.clear();
    this.history.raw.length = 0;
    this.history.hourly.length = 0;
    this.load();
  }

  /** The durable side of a change: the table rows it writes (inside the transaction). */
  private write(c: Change): void {
    const d = this.db;
    switch (c.kind) {
      case 'term.set':
        return void d.meta.put('term', Math.max(c.term, (d.meta.get('term') as number | undefined) ?? 0));
      case 'epoch.reserve':
        return void d.meta.put('epochCeiling', c.upTo);
      case 'envoy.assign': {
        d.envoys.put(c.envoy.hostname, c.envoy);
        d.releases.remove([c.envoy.spokeId, c.envoy.hostname]);
        d.rekey.remove(c.envoy.hostname);
        d.pending.remove(c.envoy.hostname);
        if (c.from !== undefined && c.from !== c.envoy.spokeId) d.releases.put([c.from, c.envoy.hostname], 1);
        return;
      }
      case 'envoy.remove':
        return void d.envoys.remove(c.hostname);
      case 'envoy.rekey_allow':
        return void d.rekey.put(c.allowance.hostname, c.allowance);
      case 'release.done':
        for (const h of c.hostnames) d.releases.remove([c.spokeId, h]);
        return;
      case 'token.put':
        return void d.tokens.put(c.token.id, c.token);
      case 'apitoken.put':
        return void d.apitokens.put(c.token.id, c.token);
      case 'pending.add':
        return void d.pending.put(c.enrollment.hostname, c.enrollment);
      case 'pending.remove':
        return void d.pending.remove(c.hostname);
      case 'spoke.admin':
        return void d.spokes.put(c.admin.id, c.admin);
      case 'move.put':
        return void d.moves.put(c.move.id, c.move);
      case 'event.add':
        d.events.put(c.event.seq, c.event);
        if (c.event.seq > KEEP_EVENTS) d.events.remove(c.event.seq - KEEP_EVENTS);
        return;
      case 'delivery.put':
        return void d.deliveries.put(c.delivery.id, c.delivery);
      case 'bundle.put':
        return void d.bundles.put(c.bundle.version, c.bundle);
      case 'bundle.drop':
        return void d.bundles.remove(c.version);
      case 'bundle.stage': {
        const b = d.bundles.get(c.version) as ConfigBundle | undefined;
        if (b) d.bundles.put(c.version, staged(b, c));
        return;
      }
      case 'rollout.put':
        return void d.rollouts.put(c.rollout.id, c.rollout);
      case 'rollout.drop':
        return void d.rollouts.remove(c.id);
      case 'history.add':
        return void d.history.put(c.sample.at, c.sample);
      case 'history.rollup':
        if (c.bucket) d.historyh.put(c.bucket.at, c.bucket);
        for (const k of d.history.getKeys({ end: c.rawBefore })) d.history.remove(k);
        for (const k of d.historyh.getKeys({ end: c.hourlyBefore })) d.historyh.remove(k);
        return;
      case 'job.put':
        return void d.jobs.put(c.job.id, c.job);
      case 'job.targets':
        for (const t of c.targets) d.jobtargets.put([c.jobId, t.hostname], t);
        return;
      case 'job.drop':
        d.jobs.remove(c.jobId);
        for (const k of d.jobtargets.getKeys({ start: [c.jobId], end: [c.jobId, '\uffff'] })) d.jobtargets.remove(k);
        return;
      case 'secret.put':
        return void d.secrets.put(c.secret.name, c.secret);
      case 'secret.drop':
        d.secrets.remove(c.name);
        for (const k of d.secretheld.getKeys({ start: [c.name], end: [c.name, '\uffff'] })) d.secretheld.remove(k);
        return;
      case 'secret.held':
        for (const h of c.held) d.secretheld.put([c.name, h.hostname], h.version);
        return;
    }
  }

  /** The in-memory side of a change, applied after it is durable. */
  private reduce(c: Change): void {
    switch (c.kind) {
      case 'term.set':
        this.term = Math.max(this.term, c.term);
        return;
      case 'epoch.reserve':
        this.epochCeiling = Math.max(this.epochCeiling, c.upTo);
        return;
      case 'envoy.assign': {
        const prev = this.envoys.get(c.envoy.hostname);
        if (prev) this.bump(prev.spokeId, -1);
        this.indexEnvoy(c.envoy);
        this.releases.get(c.envoy.spokeId)?.delete(c.envoy.hostname);
        this.rekey.delete(c.envoy.hostname);
        this.pending.delete(c.envoy.hostname);
        if (c.from !== undefined && c.from !== c.envoy.spokeId) this.releaseSet(c.from).add(c.envoy.hostname);
        return;
      }
      case 'envoy.remove': {
        const prev = this.envoys.get(c.hostname);
        if (prev) {
          this.bump(prev.spokeId, -1);
          this.envoys.delete(c.hostname);
        }
        return;
      }
      case 'envoy.rekey_allow':
        this.rekey.set(c.allowance.hostname, c.allowance);
        return;
      case 'release.done': {
        const set = this.releases.get(c.spokeId);
        for (const h of c.hostnames) set?.delete(h);
        return;
      }
      case 'token.put':
        this.tokens.set(c.token.id, c.token);
        return;
      case 'apitoken.put':
        this.apiTokens.set(c.token.id, c.token);
        return;
      case 'pending.add':
        this.pending.set(c.enrollment.hostname, c.enrollment);
        return;
      case 'pending.remove':
        this.pending.delete(c.hostname);
        return;
      case 'spoke.admin':
        this.spokeAdmin.set(c.admin.id, c.admin);
        return;
      case 'move.put':
        this.moves.set(c.move.id, c.move);
        return;
      case 'event.add':
        return;
      case 'delivery.put':
        return;
      case 'bundle.put':
        this.indexBundle(c.bundle);
        return;
      case 'bundle.drop':
        this.bundles.delete(c.version);
        return;
      case 'bundle.stage': {
        const b = this.bundles.get(c.version);
        if (b) this.bundles.set(c.version, staged(b, c));
        return;
      }
      case 'rollout.put':
        this.rollouts.set(c.rollout.id, c.rollout);
        return;
      case 'rollout.drop':
        this.rollouts.delete(c.id);
        return;
      case 'history.add': {
        const raw = this.history.raw;
        if (raw.length === 0 || raw[raw.length - 1]!.at < c.sample.at) raw.push(c.sample);
        return;
      }
      case 'history.rollup': {
        // Samples arrive in time order, so both lists stay sorted and are cut at their front.
        const h = this.history;
        const cut = h.raw.findIndex((s) => s.at >= c.rawBefore);
        h.raw.splice(0, cut === -1 ? h.raw.length : cut);
        if (c.bucket) h.hourly.push(c.bucket);
        const first = h.hourly.findIndex((b) => b.at >= c.hourlyBefore);
        h.hourly.splice(0, first === -1 ? h.hourly.length : first);
        return;
      }
      case 'job.put':
        this.jobs.set(c.job.id, c.job);
        return;
      case 'job.targets':
        return;
      case 'job.drop':
        this.jobs.delete(c.jobId);
        return;
      case 'secret.put':
        this.secrets.set(c.secret.name, c.secret);
        return;
      case 'secret.drop':
        this.secrets.delete(c.name);
        return;
      case 'secret.held':
        return;
    }
  }

  private indexBundle(b: ConfigBundle): void {
    const { data, ...meta } = b;
    this.bundles.set(b.version, { ...meta, bytes: data.length });
  }

  /** The current (live) config version: the highest published that is not staged or withdrawn, 0 before the first. */
  get configVersion(): number {
    let v = 0;
    for (const [k, b] of this.bundles) if (k > v && b.stage === undefined) v = k;
    return v;
  }

  /** The highest version ever numbered here (staged and withdrawn included): the next one goes past it. */
  get latestVersion(): number {
    let v = 0;
    for (const k of this.bundles.keys()) if (k > v) v = k;
    return v;
  }

  /** A published bundle with its bytes, read from the store. */
  bundle(version: number): ConfigBundle | undefined {
    const b = this.db.bundles.get(version) as ConfigBundle | undefined;
    return b
      ? { ...b, hash: new Uint8Array(b.hash), signature: new Uint8Array(b.signature), data: new Uint8Array(b.data) }
      : undefined;
  }

  private indexEnvoy(e: DirectoryEntry): void {
    this.envoys.set(e.hostname, e);
    this.bump(e.spokeId, 1);
  }

  private bump(spokeId: string, d: number): void {
    this.perSpoke.set(spokeId, (this.perSpoke.get(spokeId) ?? 0) + d);
  }

  private releaseSet(spokeId: string): Set<string> {
    let s = this.releases.get(spokeId);
    if (!s) this.releases.set(spokeId, (s = new Set()));
    return s;
  }

  countOn(spokeId: string): number {
    return this.perSpoke.get(spokeId) ?? 0;
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

/** A bundle record after a `bundle.stage` change: live (no stage), or withdrawn with its revert order. */
function staged<T extends { stage?: 'staged' | 'withdrawn'; revert?: unknown }>(
  b: T,
  c: Extract<Change, { kind: 'bundle.stage' }>,
): T {
  const { stage: _s, revert: _r, ...rest } = b;
  return (c.stage === 'live' ? rest : { ...rest, stage: 'withdrawn', ...(c.revert ? { revert: c.revert } : {}) }) as T;
}
