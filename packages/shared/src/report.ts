import type { Codec } from './codec.js';
import type { ResourceResult, Run } from './message-runs.js';

/** The largest run report a spoke stores unless its config says otherwise (limits.max_report_bytes). */
export const DEFAULT_MAX_REPORT_BYTES = 256 * 1024;

const MESSAGE_CHARS = 512;
const ERROR_CHARS = 2048;
const MARK = ' [truncated]';

/** Failed and drifting resources are what an operator reads first, so they are the last to go. */
const KEEP_ORDER: Record<ResourceResult['status'], number> = { failed: 0, drift: 1, changed: 2, ok: 3 };

const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}${MARK}` : s);

/**
 * `run` made to fit `maxBytes` encoded: first long messages are shortened, then results are
 * dropped (successful ones first). `counts` keep describing every resource, and `truncated`
 * says something was cut. A run that fits comes back unchanged.
 */
export function fitRun(run: Run, maxBytes: number, codec: Codec): Run {
  if (codec.size(run) <= maxBytes) return run;
  const shortened: Run = {
    ...run,
    truncated: true,
    ...(run.error !== undefined ? { error: cut(run.error, ERROR_CHARS) } : {}),
    results: run.results.map((r) => ({ ...r, message: cut(r.message, MESSAGE_CHARS) })),
  };
  if (codec.size(shortened) <= maxBytes) return shortened;
  const base = codec.size({ ...shortened, results: [] });
  const ranked = shortened.results
    .map((r, i) => ({ r, i, n: codec.size(r) + 1 }))
    .sort((a, b) => KEEP_ORDER[a.r.status] - KEEP_ORDER[b.r.status] || a.i - b.i);
  let used = base + 8;
  const keep = new Set<number>();
  for (const x of ranked) {
    if (used + x.n > maxBytes) break;
    used += x.n;
    keep.add(x.i);
  }
  return { ...shortened, results: shortened.results.filter((_, i) => keep.has(i)) };
}
