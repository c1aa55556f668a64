import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { AxleError, ErrorCode } from '@axle/shared';
import type {
  ApiToken, Change, Delivery, EnvoyRecord, HubEvent, JoinToken, LogEntry, Move, PendingEnrollment, RekeyAllowance, SpokeAdmin,
} from './model.js';

/** Old events and deliveries are trimmed so the store does not grow without bound. */
const KEEP_EVENTS = 50_000;
const KEEP_DELIVERIES = 20_000;
const KEEP_LOG = 1_000_000;

type Key = string | number | (string | number)[];

/**
 * The hub's durable state. Every write goes through `apply`/`applyAll`: the change is
 * numbered, written to the log and to its table in one LMDB transaction, and only after
 * that transaction is on disk does the in-memory view change and the caller hear back.
 * Replication ships `logSince()`; a standby replays it with the same `reduce`.
 */
export class StateStore {
  term = 1;
  epochCeiling = 0;
  lastSeq = 0;
  lastEventSeq = 0;
  readonly envoys = new Map<string, EnvoyRecord>();
  readonly perSpoke = new Map<string, number>();
  readonly tokens = new Map<string, JoinToken>();
  readonly apiTokens = new Map<string, ApiToken>();
  readonly pending = new Map<string, PendingEnrollment>();
  readonly rekey = new Map<string, RekeyAllowance>();
  readonly spokeAdmin = new Map<string, SpokeAdmin>();
  /** spokeId -> host names it must still be told to release. */
  readonly releases = new Map<string, Set<string>>();
  readonly moves = new Map<string, Move>();
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly db: Record<'meta' | 'log' | 'envoys' | 'tokens' | 'apitokens' | 'pending' | 'rekey' | 'spokes' | 'releases' | 'moves' | 'events' | 'deliveries', Database<unknown, Key>>,
  ) {}

  static async open(dir: string): Promise<StateStore> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let root: RootDatabase;
    try {
      root = open({ path: join(dir, 'hub.lmdb'), maxDbs: 16, compression: false });
    } catch (e) {
      throw new AxleError(ErrorCode.INTERNAL, `cannot open the hub store in ${dir}: ${(e as Error).message}; check the directory and its permissions`, { cause: e });
    }
    const sub = (name: string) => root.openDB<unknown, Key>({ name });
    const s = new StateStore(root, {
      meta: sub('meta'), log: sub('log'), envoys: sub('envoys'), tokens: sub('tokens'), apitokens: sub('apitokens'),
      pending: sub('pending'), rekey: sub('rekey'), spokes: sub('spokes'), releases: sub('releases'), moves: sub('moves'),
      events: sub('events'), deliveries: sub('deliveries'),
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
    for (const { value } of d.envoys.getRange()) this.indexEnvoy(value as EnvoyRecord);
    for (const { value } of d.tokens.getRange()) this.tokens.set((value as JoinToken).id, value as JoinToken);
    for (const { value } of d.apitokens.getRange()) this.apiTokens.set((value as ApiToken).id, value as ApiToken);
    for (const { value } of d.pending.getRange()) this.pending.set((value as PendingEnrollment).hostname, value as PendingEnrollment);
    for (const { value } of d.rekey.getRange()) this.rekey.set((value as RekeyAllowance).hostname, value as RekeyAllowance);
    for (const { value } of d.spokes.getRange()) this.spokeAdmin.set((value as SpokeAdmin).id, value as SpokeAdmin);
    for (const { key } of d.releases.getRange()) {
      const [spoke, host] = key as [string, string];
      this.releaseSet(spoke).add(host);
    }
    for (const { value } of d.moves.getRange()) this.moves.set((value as Move).id, value as Move);
  }

  /** Applies one change durably; resolves with its log sequence number once it is on disk. */
  apply(change: Change): Promise<number> {
    return this.applyAll([change]);
  }

  /** Applies several changes in one transaction: all of them are durable, or none. */
  applyAll(changes: Change[]): Promise<number> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, 'the hub store is closed'));
    if (changes.length === 0) return Promise.resolve(this.lastSeq);
    const at = Date.now();
    const entries: LogEntry[] = changes.map((change) => {
      if (change.kind === 'event.add' && change.event.seq === 0) change.event.seq = ++this.lastEventSeq;
      return { seq: ++this.lastSeq, at, change };
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
    const done = this.chain.then(() => run).then(async () => {
      await this.root.flushed;
      for (const e of entries) this.reduce(e.change);
      return last;
    });
    this.chain = done.catch(() => undefined);
    return done;
  }

  /** The durable side of a change: the table rows it writes (inside the transaction). */
  private write(c: Change): void {
    const d = this.db;
    switch (c.kind) {
      case 'term.set': return void d.meta.put('term', c.term);
      case 'epoch.reserve': return void d.meta.put('epochCeiling', c.upTo);
      case 'envoy.assign': {
        d.envoys.put(c.envoy.hostname, c.envoy);
        d.releases.remove([c.envoy.spokeId, c.envoy.hostname]);
        d.rekey.remove(c.envoy.hostname);
        d.pending.remove(c.envoy.hostname);
        if (c.from !== undefined && c.from !== c.envoy.spokeId) d.releases.put([c.from, c.envoy.hostname], 1);
        return;
      }
      case 'envoy.remove': return void d.envoys.remove(c.hostname);
      case 'envoy.rekey_allow': return void d.rekey.put(c.allowance.hostname, c.allowance);
      case 'release.done':
        for (const h of c.hostnames) d.releases.remove([c.spokeId, h]);
        return;
      case 'token.put': return void d.tokens.put(c.token.id, c.token);
      case 'apitoken.put': return void d.apitokens.put(c.token.id, c.token);
      case 'pending.add': return void d.pending.put(c.enrollment.hostname, c.enrollment);
      case 'pending.remove': return void d.pending.remove(c.hostname);
      case 'spoke.admin': return void d.spokes.put(c.admin.id, c.admin);
      case 'move.put': return void d.moves.put(c.move.id, c.move);
      case 'event.add':
        d.events.put(c.event.seq, c.event);
        if (c.event.seq > KEEP_EVENTS) d.events.remove(c.event.seq - KEEP_EVENTS);
        return;
      case 'delivery.put': return void d.deliveries.put(c.delivery.id, c.delivery);
    }
  }

  /** The in-memory side of a change, applied after it is durable. */
  private reduce(c: Change): void {
    switch (c.kind) {
      case 'term.set': this.term = c.term; return;
      case 'epoch.reserve': this.epochCeiling = Math.max(this.epochCeiling, c.upTo); return;
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
      case 'envoy.rekey_allow': this.rekey.set(c.allowance.hostname, c.allowance); return;
      case 'release.done': {
        const set = this.releases.get(c.spokeId);
        for (const h of c.hostnames) set?.delete(h);
        return;
      }
      case 'token.put': this.tokens.set(c.token.id, c.token); return;
      case 'apitoken.put': this.apiTokens.set(c.token.id, c.token); return;
      case 'pending.add': this.pending.set(c.enrollment.hostname, c.enrollment); return;
      case 'pending.remove': this.pending.delete(c.hostname); return;
      case 'spoke.admin': this.spokeAdmin.set(c.admin.id, c.admin); return;
      case 'move.put': this.moves.set(c.move.id, c.move); return;
      case 'event.add': return;
      case 'delivery.put': return;
    }
  }

  private indexEnvoy(e: EnvoyRecord): void {
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
    for (const { value } of this.db.deliveries.getRange({ reverse: true, limit: Math.min(limit, KEEP_DELIVERIES) })) out.push(value as Delivery);
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
