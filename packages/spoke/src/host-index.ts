import type { Compliance } from '@axle/shared';

/**
 * In-memory indexes over the spoke's active envoys, rebuilt from the store at start (measured:
 * 100,000 hosts sort in well under a second, and keeping them in LMDB would cost a write on every
 * check-in). They answer the selective filters of `list_envoys` without a scan:
 *
 *  - host names sorted (code-unit order, the order pages come in) and reversed, so a glob's
 *    literal prefix or suffix is a binary-searched range;
 *  - the hosts of each compliance state;
 *  - hosts by the minute they were last seen, for "last seen before".
 *
 * Trait equality is indexed in the store (store.ts, trait_idx), where the traits are.
 */
const BUCKET_MS = 60_000;

export interface IndexedHost {
  hostname: string;
  compliance: Compliance;
  lastSeen: number;
}

function lowerBound(a: readonly string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as string) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const reverse = (s: string) => [...s].reverse().join('');

export class HostIndex {
  private readonly hosts = new Set<string>();
  private sortedCache: string[] | undefined;
  private reversedCache: string[] | undefined;
  private readonly byCompliance: Record<Compliance, Set<string>> = {
    compliant: new Set(),
    noncompliant: new Set(),
    unknown: new Set(),
  };
  private readonly seenBucket = new Map<string, number>();
  private readonly byBucket = new Map<number, Set<string>>();

  get size(): number {
    return this.hosts.size;
  }

  /**
   * A record changed from `prev` to `next` (undefined: not an active envoy). Membership changes
   * only when a host arrives or leaves, so the sorted names are rebuilt only then.
   */
  change(prev: IndexedHost | undefined, next: IndexedHost | undefined): void {
    if (prev && !next) {
      this.hosts.delete(prev.hostname);
      this.sortedCache = undefined;
      this.reversedCache = undefined;
      this.byCompliance[prev.compliance].delete(prev.hostname);
      const b = this.seenBucket.get(prev.hostname);
      if (b !== undefined) this.byBucket.get(b)?.delete(prev.hostname);
      this.seenBucket.delete(prev.hostname);
      return;
    }
    if (!next) return;
    if (!prev) {
      this.hosts.add(next.hostname);
      this.sortedCache = undefined;
      this.reversedCache = undefined;
    } else if (prev.compliance !== next.compliance) this.byCompliance[prev.compliance].delete(prev.hostname);
    this.byCompliance[next.compliance].add(next.hostname);
    this.seen(next.hostname, next.lastSeen);
  }

  /** Moves a host to the minute bucket of `lastSeen`: at most one move a minute per host. */
  seen(host: string, lastSeen: number): void {
    if (!this.hosts.has(host)) return;
    const b = Math.floor(lastSeen / BUCKET_MS);
    const prev = this.seenBucket.get(host);
    if (prev === b) return;
    if (prev !== undefined) {
      const set = this.byBucket.get(prev);
      set?.delete(host);
      if (set?.size === 0) this.byBucket.delete(prev);
    }
    this.seenBucket.set(host, b);
    let set = this.byBucket.get(b);
    if (!set) this.byBucket.set(b, (set = new Set()));
    set.add(host);
  }

  sorted(): string[] {
    // Plain code-unit order, the same everywhere, so the hub can merge pages from spokes.
    this.sortedCache ??= [...this.hosts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.sortedCache;
  }

  private reversed(): string[] {
    this.reversedCache ??= [...this.hosts].map(reverse).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return this.reversedCache;
  }

  /** Where hosts from `from` (exclusive when `exclusive`) start in `sorted()`. */
  position(from: string, exclusive: boolean): number {
    const s = this.sorted();
    const i = lowerBound(s, from);
    return exclusive && s[i] === from ? i + 1 : i;
  }

  /** The slice of `sorted()` whose names start with `prefix`, as [start, end). */
  prefixRange(prefix: string): [number, number] {
    const s = this.sorted();
    return [lowerBound(s, prefix), lowerBound(s, `${prefix}\uffff`)];
  }

  /** Hosts whose names end with `suffix` (unsorted). */
  withSuffix(suffix: string): string[] {
    const r = this.reversed();
    const rs = reverse(suffix);
    const out: string[] = [];
    for (let i = lowerBound(r, rs); i < r.length && (r[i] as string).startsWith(rs); i++)
      out.push(reverse(r[i] as string));
    return out;
  }

  countWithSuffix(suffix: string): number {
    const r = this.reversed();
    const rs = reverse(suffix);
    return lowerBound(r, `${rs}\uffff`) - lowerBound(r, rs);
  }

  withCompliance(c: Compliance): ReadonlySet<string> {
    return this.byCompliance[c];
  }

  /** Hosts that may have been last seen before `t` (whole minute buckets; callers check exactly). */
  seenBefore(t: number): string[] {
    const last = Math.floor(t / BUCKET_MS);
    const out: string[] = [];
    for (const [b, set] of this.byBucket) if (b <= last) for (const h of set) out.push(h);
    return out;
  }

  countSeenBefore(t: number): number {
    const last = Math.floor(t / BUCKET_MS);
    let n = 0;
    for (const [b, set] of this.byBucket) if (b <= last) n += set.size;
    return n;
  }
}
