import { type CostBudget, Glob, type Compliance, type EnvoyFilter, type EnvoySummary, type Json } from '@axle/shared';
import type { EnvoyRecord } from './store.js';

/** How long a query runs before it lets check-ins in. */
const SLICE_MS = 4;

/**
 * The hot, in-memory view of the envoys this spoke knows: authentication looks keys up
 * here, check-ins update last-seen here, and compliance counts change as records do, so
 * stats never scan. The store is the durable copy; `dirty` lists records whose last-seen
 * moved since they were last written.
 */
export class Fleet {
  private readonly byHost = new Map<string, EnvoyRecord>();
  private readonly conns = new Map<string, number>();
  private sortedCache: string[] | undefined;
  readonly dirty = new Set<string>();
  readonly counts: Record<Compliance, number> = { compliant: 0, noncompliant: 0, unknown: 0 };
  private active = 0;
  private connectedActive = 0;

  constructor(readonly spokeId: string) {}

  load(records: EnvoyRecord[]): void {
    for (const r of records) this.set(r);
  }

  get(hostname: string): EnvoyRecord | undefined {
    return this.byHost.get(hostname);
  }

  /** Active (not released) envoys. */
  get size(): number {
    return this.active;
  }

  get connected(): number {
    return this.connectedActive;
  }

  /** Replaces (or adds) a record, keeping the counts in step. */
  set(next: EnvoyRecord): void {
    const prev = this.byHost.get(next.hostname);
    if (prev) this.account(prev, -1);
    if (!prev || prev.released !== next.released) this.sortedCache = undefined;
    this.byHost.set(next.hostname, next);
    this.account(next, +1);
  }

  private account(r: EnvoyRecord, sign: 1 | -1): void {
    if (r.released) return;
    this.active += sign;
    this.counts[r.compliance] += sign;
    if ((this.conns.get(r.hostname) ?? 0) > 0) this.connectedActive += sign;
  }

  isConnected(hostname: string): boolean {
    return (this.conns.get(hostname) ?? 0) > 0;
  }

  /** Counts connections per host: an envoy may reconnect before its old link is noticed dead. */
  connect(hostname: string): void {
    const n = this.conns.get(hostname) ?? 0;
    this.conns.set(hostname, n + 1);
    const r = this.byHost.get(hostname);
    if (n === 0 && r && !r.released) this.connectedActive++;
  }

  disconnect(hostname: string): void {
    const n = (this.conns.get(hostname) ?? 0) - 1;
    if (n > 0) return void this.conns.set(hostname, n);
    this.conns.delete(hostname);
    const r = this.byHost.get(hostname);
    if (r && !r.released) this.connectedActive--;
  }

  seen(hostname: string, now: number): void {
    const r = this.byHost.get(hostname);
    if (!r) return;
    r.lastSeen = now;
    this.dirty.add(hostname);
  }

  private sorted(): string[] {
    if (!this.sortedCache) {
      const hosts: string[] = [];
      for (const r of this.byHost.values()) if (!r.released) hosts.push(r.hostname);
      // Plain code-unit order, the same everywhere, so the hub can merge pages from spokes.
      hosts.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.sortedCache = hosts;
    }
    return this.sortedCache;
  }

  summary(r: EnvoyRecord): EnvoySummary {
    return {
      hostname: r.hostname,
      spokeId: this.spokeId,
      epoch: r.epoch,
      enrolledAt: r.enrolledAt,
      lastSeen: r.lastSeen,
      connected: this.isConnected(r.hostname),
      compliance: r.compliance,
      lastRunAt: r.lastRunAt,
      configVersion: r.configVersion,
    };
  }

  /**
   * One page of active envoys sorted by hostname, after the cursor `filter.after`. `total`
   * counts every match ignoring the cursor and limit. `seenBefore` is exclusive and
   * `seenAfter` inclusive, so adjacent windows neither overlap nor leave gaps.
   *
   * The scan charges its glob work to `budget` (E_QUERY_TOO_COSTLY past it) and yields to the
   * event loop every few milliseconds, so check-ins are served between slices of a long query
   * instead of waiting behind it. The page stops early, with `more`, where the reply would
   * outgrow `maxBytes`.
   */
  async list(
    filter: EnvoyFilter,
    o: {
      traitsOf: (hostname: string) => Record<string, Json> | undefined;
      budget: CostBudget;
      /** Encoded bytes the page's items may take, and how to measure one. */
      maxBytes: number;
      sizeOf: (item: EnvoySummary) => number;
    },
  ): Promise<{ items: EnvoySummary[]; more: boolean; total: number }> {
    const limit = filter.limit ?? 1000;
    const glob = filter.match ? Glob.compile(filter.match) : undefined;
    const traitWants = filter.traits ? Object.entries(filter.traits) : [];
    const items: EnvoySummary[] = [];
    let total = 0;
    let more = false;
    let bytes = 0;
    let slice = performance.now();
    const hosts = this.sorted();
    for (let i = 0; i < hosts.length; i++) {
      if ((i & 63) === 63 && performance.now() - slice > SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      }
      const h = hosts[i] as string;
      const r = this.byHost.get(h);
      if (!r || r.released) continue;
      if (filter.compliance && r.compliance !== filter.compliance) continue;
      if (filter.seenBefore !== undefined && !(r.lastSeen < filter.seenBefore)) continue;
      if (filter.seenAfter !== undefined && !(r.lastSeen >= filter.seenAfter)) continue;
      if (glob && !glob.test(h, o.budget)) continue;
      if (traitWants.length > 0) {
        o.budget.charge(traitWants.length * 16);
        if (!traitsMatch(o.traitsOf(h), traitWants)) continue;
      }
      total++;
      if (filter.after !== undefined && !(h > filter.after)) continue;
      if (more) continue;
      const s = items.length < limit ? this.summary(r) : undefined;
      const n = s ? o.sizeOf(s) : 0;
      if (s && (items.length === 0 || bytes + n <= o.maxBytes)) {
        items.push(s);
        bytes += n;
      } else more = true;
    }
    return { items, more, total };
  }

  *all(): IterableIterator<EnvoyRecord> {
    yield* this.byHost.values();
  }
}

/** Trait equality on the value's text; a dotted key reaches into nested traits ("os.family"). */
function traitsMatch(traits: Record<string, Json> | undefined, wants: [string, string][]): boolean {
  if (!traits) return false;
  for (const [key, want] of wants) {
    let v: Json | undefined = traits[key];
    if (v === undefined && key.includes('.')) {
      v = traits;
      for (const part of key.split('.')) {
        v = v !== null && typeof v === 'object' && !Array.isArray(v) ? v[part] : undefined;
        if (v === undefined) break;
      }
    }
    if (v === undefined || v === null || typeof v === 'object') return false;
    if (String(v) !== want) return false;
  }
  return true;
}
