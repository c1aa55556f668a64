import type { Compliance, EnvoySummary } from '@axle/shared';
import { HostIndex } from './host-index.js';
import type { EnvoyRecord } from './store.js';

/**
 * The hot, in-memory view of the envoys this spoke knows: authentication looks keys up
 * here, check-ins update last-seen here, and compliance counts change as records do, so
 * stats never scan. The store is the durable copy; `dirty` lists records whose last-seen
 * moved since they were last written.
 */
export class Fleet {
  private readonly byHost = new Map<string, EnvoyRecord>();
  private readonly conns = new Map<string, number>();
  /** Names, compliance and last-seen of the active envoys, for list queries (host-index.ts). */
  readonly index = new HostIndex();
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
    this.byHost.set(next.hostname, next);
    this.account(next, +1);
    this.index.change(prev && !prev.released ? prev : undefined, next.released ? undefined : next);
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
    if (!r.released) this.index.seen(hostname, now);
    this.dirty.add(hostname);
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

  *all(): IterableIterator<EnvoyRecord> {
    yield* this.byHost.values();
  }
}
