import type { CostBudget, EnvoyFilter, EnvoySummary, Glob, Json } from '@axle/shared';
import type { HostIndex } from './host-index.js';
import type { EnvoyRecord } from './store.js';
import type { TraitIndex } from './trait-index.js';

/**
 * How `list_envoys` finds its page without scanning every host: of the indexes the filter can
 * use (a glob's literal prefixes or suffixes, trait equality, compliance, last seen before),
 * the one with the fewest candidates feeds the page, and the other conditions are checked on
 * those candidates only. Up to EXACT_LIMIT candidates are all checked, so `total` is exact;
 * beyond that the page is filled by walking the candidates in name order from the cursor and
 * `total` is an estimate (`totalExact: false`), extrapolated from what that walk matched.
 */
export const EXACT_LIMIT = 20_000;
/** How long a query runs before it lets check-ins in. */
const SLICE_MS = 4;

export interface ListDeps {
  index: HostIndex;
  traits: TraitIndex;
  record: (host: string) => EnvoyRecord | undefined;
  summary: (r: EnvoyRecord) => EnvoySummary;
  traitsOf: (host: string) => Record<string, Json> | undefined;
  budget: CostBudget;
  /** Encoded bytes the page's items may take, and how to measure one. */
  maxBytes: number;
  sizeOf: (item: EnvoySummary) => number;
  /** Candidates checked in full for an exact total (EXACT_LIMIT unless a test wants the broad path). */
  exactLimit?: number;
}

export interface ListPage {
  items: EnvoySummary[];
  more: boolean;
  total: number;
  totalExact: boolean;
}

interface Source {
  size: number;
  /** Every candidate (any order). */
  all: () => Iterable<string>;
  /** Candidates in name order strictly after `after`; absent for sources that are not sorted. */
  from?: (after: string | undefined) => Iterable<string>;
}

function* sortedSlice(hosts: readonly string[], lo: number, hi: number): Generator<string> {
  for (let i = lo; i < hi; i++) yield hosts[i] as string;
}

/** Merges sorted host streams, each name once. */
function* union(streams: Iterable<string>[]): Generator<string> {
  const its = streams.map((s) => s[Symbol.iterator]());
  const heads = its.map((it) => it.next());
  let last: string | undefined;
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i] as IteratorResult<string>;
      if (!h.done && (best < 0 || h.value < (heads[best] as IteratorYieldResult<string>).value)) best = i;
    }
    if (best < 0) return;
    const v = (heads[best] as IteratorYieldResult<string>).value;
    heads[best] = (its[best] as Iterator<string>).next();
    if (v !== last) yield v;
    last = v;
  }
}

function sources(filter: EnvoyFilter, glob: Glob | undefined, d: ListDeps): Source[] {
  const { index } = d;
  const out: Source[] = [
    {
      size: index.size,
      all: () => index.sorted(),
      from: (after) => sortedSlice(index.sorted(), after === undefined ? 0 : index.position(after, true), index.size),
    },
  ];
  const alts = glob?.alternatives ?? [];
  if (alts.length > 0 && alts.every((a) => a.prefix !== '')) {
    const ranges = () => alts.map((a) => index.prefixRange(a.prefix));
    const size = ranges().reduce((n, [lo, hi]) => n + (hi - lo), 0);
    out.push({
      size,
      all: () => union(ranges().map(([lo, hi]) => sortedSlice(index.sorted(), lo, hi))),
      from: (after) => {
        const start = after === undefined ? 0 : index.position(after, true);
        return union(ranges().map(([lo, hi]) => sortedSlice(index.sorted(), Math.max(lo, start), hi)));
      },
    });
  } else if (alts.length > 0 && alts.every((a) => a.suffix !== '')) {
    const suffixes = [...new Set(alts.map((a) => a.suffix))];
    out.push({
      size: suffixes.reduce((n, s) => n + index.countWithSuffix(s), 0),
      all: () => new Set(suffixes.flatMap((s) => index.withSuffix(s))),
    });
  }
  const [trait] = Object.entries(filter.traits ?? {});
  if (trait) {
    const [name, value] = trait;
    out.push({
      size: d.traits.count(name, value),
      all: () => d.traits.hosts(name, value),
      from: (after) => d.traits.hosts(name, value, after),
    });
  }
  if (filter.compliance) {
    const set = index.withCompliance(filter.compliance);
    out.push({ size: set.size, all: () => set });
  }
  if (filter.seenBefore !== undefined) {
    const t = filter.seenBefore;
    out.push({ size: index.countSeenBefore(t), all: () => index.seenBefore(t) });
  }
  return out;
}

/** Trait equality on the value's text; a dotted key reaches into nested traits ("os.family"). */
export function traitsMatch(traits: Record<string, Json> | undefined, wants: [string, string][]): boolean {
  if (!traits) return false;
  for (const [key, want] of wants) {
    let v: Json | undefined = Object.hasOwn(traits, key) ? traits[key] : undefined;
    if (v === undefined && key.includes('.')) {
      v = traits;
      for (const part of key.split('.')) {
        v =
          v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, part)
            ? (v as Record<string, Json>)[part]
            : undefined;
        if (v === undefined) break;
      }
    }
    if (v === undefined || v === null || typeof v === 'object') return false;
    if (String(v) !== want) return false;
  }
  return true;
}

export async function listPage(filter: EnvoyFilter, glob: Glob | undefined, d: ListDeps): Promise<ListPage> {
  const limit = filter.limit ?? 1000;
  const wants = Object.entries(filter.traits ?? {});
  const matches = (h: string): EnvoyRecord | undefined => {
    const r = d.record(h);
    if (!r || r.released) return undefined;
    if (filter.compliance && r.compliance !== filter.compliance) return undefined;
    if (filter.seenBefore !== undefined && !(r.lastSeen < filter.seenBefore)) return undefined;
    if (filter.seenAfter !== undefined && !(r.lastSeen >= filter.seenAfter)) return undefined;
    if (glob && !glob.test(h, d.budget)) return undefined;
    if (wants.length > 0) {
      d.budget.charge(wants.length * 16);
      if (!traitsMatch(d.traitsOf(h), wants)) return undefined;
    }
    return r;
  };
  const items: EnvoySummary[] = [];
  let bytes = 0;
  /** Adds `r` to the page if it fits; false once the page is full. */
  const take = (r: EnvoyRecord): boolean => {
    if (items.length >= limit) return false;
    const s = d.summary(r);
    const n = d.sizeOf(s);
    if (items.length > 0 && bytes + n > d.maxBytes) return false;
    items.push(s);
    bytes += n;
    return true;
  };
  let slice = performance.now();
  let i = 0;
  const breathe = async () => {
    if ((++i & 63) === 0 && performance.now() - slice > SLICE_MS) {
      await new Promise((r) => setImmediate(r));
      slice = performance.now();
    }
  };

  const all = sources(filter, glob, d);
  let best = all.reduce((a, b) => (b.size < a.size ? b : a));
  if (best.size <= (d.exactLimit ?? EXACT_LIMIT)) {
    // Few enough to check them all: the page and an exact total.
    const hosts = [...best.all()];
    if (!best.from) hosts.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let total = 0;
    let more = false;
    for (const h of hosts) {
      await breathe();
      const r = matches(h);
      if (!r) continue;
      total++;
      if (filter.after !== undefined && !(h > filter.after)) continue;
      if (!more && !take(r)) more = true;
    }
    return { items, more, total, totalExact: true };
  }
  // Broad: walk candidates in name order from the cursor until the page is full.
  if (!best.from) best = all[0] as Source;
  let scanned = 0;
  let matched = 0;
  let more = false;
  for (const h of (best.from as NonNullable<Source['from']>)(filter.after)) {
    await breathe();
    scanned++;
    const r = matches(h);
    if (!r) continue;
    matched++;
    if (!take(r)) {
      more = true;
      break;
    }
  }
  const whole = !more && filter.after === undefined;
  const total = whole ? matched : Math.round(best.size * (scanned > 0 ? matched / scanned : 0));
  return { items, more, total: Math.max(total, items.length), totalExact: whole };
}
