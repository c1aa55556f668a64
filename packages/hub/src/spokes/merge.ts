import { AxleError, ErrorCode, parse, runCursorSchema, type RunCursor } from '@axle/shared';

/**
 * Paging across spokes. Each spoke returns its page sorted by host name; the hub merges the
 * pages k-way and remembers, per spoke, the last host name it handed out from that spoke.
 * That map is the composite cursor the API gives back (opaque base64url JSON), so the next
 * page asks each spoke for what comes after its own position, and a spoke that missed a
 * page (timeout) resumes where it was.
 */
export type Cursor = Record<string, string>;

const MAX_CURSOR_CHARS = 64 * 1024;

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c), 'utf8').toString('base64url');
}

export function decodeCursor(s: string | null | undefined): Cursor {
  if (!s) return {};
  const fail = (): never => {
    throw new AxleError(
      ErrorCode.INVALID,
      'cursor is not one this hub handed out; pass back the "cursor" value from the previous page unchanged',
    );
  };
  if (s.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(s)) return fail();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    return fail();
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail();
  const out: Cursor = {};
  for (const [k, h] of Object.entries(v as Record<string, unknown>)) {
    if (typeof h !== 'string' || h.length > 253 || k.length > 64) return fail();
    out[k] = h;
  }
  return out;
}

/** Where a page of runs ended, handed out opaque (base64url JSON) like the envoy cursor. */
export function encodeRunCursor(c: RunCursor): string {
  return Buffer.from(JSON.stringify(c), 'utf8').toString('base64url');
}

export function decodeRunCursor(s: string | null | undefined): RunCursor | undefined {
  if (!s) return undefined;
  let v: unknown;
  try {
    if (s.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(s)) throw new Error('not base64url');
    v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  } catch {
    throw new AxleError(
      ErrorCode.INVALID,
      'runs cursor is not one this hub handed out; pass back "runsCursor" unchanged',
    );
  }
  return parse(runCursorSchema, v, 'runs cursor', ErrorCode.INVALID);
}

export interface SourcePage<T> {
  source: string;
  items: readonly T[];
  /** The source has more after its last item. */
  more: boolean;
}

export interface Merged<T> {
  items: T[];
  /** Per source, the key of the last item taken from it in this page. */
  taken: Record<string, string>;
  /** Whether any source still has items beyond this page. */
  more: boolean;
}

/**
 * Merges sorted pages into one sorted page of at most `limit` items. Uses a binary heap,
 * so merging k pages of n items is O(n log k). Equal keys from different sources both
 * appear (a host caught mid-move), in source order.
 */
export function kWayMerge<T>(pages: readonly SourcePage<T>[], key: (t: T) => string, limit: number): Merged<T> {
  const heads: { page: number; idx: number; k: string }[] = [];
  const less = (a: { page: number; k: string }, b: { page: number; k: string }) =>
    a.k < b.k || (a.k === b.k && a.page < b.page);
  const push = (h: { page: number; idx: number; k: string }) => {
    heads.push(h);
    let i = heads.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heads[i]!, heads[p]!)) break;
      [heads[i], heads[p]] = [heads[p]!, heads[i]!];
      i = p;
    }
  };
  const pop = () => {
    const top = heads[0]!;
    const last = heads.pop()!;
    if (heads.length > 0) {
      heads[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heads.length && less(heads[l]!, heads[m]!)) m = l;
        if (r < heads.length && less(heads[r]!, heads[m]!)) m = r;
        if (m === i) break;
        [heads[i], heads[m]] = [heads[m]!, heads[i]!];
        i = m;
      }
    }
    return top;
  };
  pages.forEach((p, i) => {
    const first = p.items[0];
    if (first !== undefined) push({ page: i, idx: 0, k: key(first) });
  });
  const items: T[] = [];
  const taken: Record<string, string> = {};
  while (items.length < limit && heads.length > 0) {
    const h = pop();
    const page = pages[h.page]!;
    items.push(page.items[h.idx]!);
    taken[page.source] = h.k;
    const next = page.items[h.idx + 1];
    if (next !== undefined) push({ page: h.page, idx: h.idx + 1, k: key(next) });
    // A source that stopped short (its page filled by bytes) may hold keys below the other
    // sources' next ones: the merged page must end where that source's page ended.
    else if (page.more) break;
  }
  const more = heads.length > 0 || pages.some((p) => p.more);
  return { items, taken, more };
}
