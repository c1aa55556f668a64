import { Glob, type EnvoyFilter } from '@axle/shared';
import type { Queries } from '../spokes/query.js';
import type { HubStore } from '../store/state.js';
import type { JobSelector } from './model.js';

export interface Resolved {
  /** Envoys that matched, with the spoke that answered for them. */
  targets: { hostname: string; spokeId: string }[];
  /** Directory envoys on spokes that did not answer (matched by host name glob only): skipped. */
  unreachable: { hostname: string; spokeId: string; reason: string }[];
  spokes: { spokeId: string; outcome: string }[];
}

const PAGE = 1000;
/** Bounds the page loop: 10,000 pages of 1,000 is far beyond any fleet the hub serves. */
const MAX_PAGES = 10_000;

/**
 * Turns a selector into host names through the hub's fan-out list query (the same merge
 * and filters as GET /envoys), page by page. A spoke that does not answer cannot say which
 * of its envoys match traits or compliance, so its directory envoys matching the host name
 * glob are returned as unreachable (the job records them as skipped, with the reason).
 */
export async function resolveTargets(q: Queries, state: HubStore, sel: JobSelector): Promise<Resolved> {
  const filter: Omit<EnvoyFilter, 'after' | 'limit'> = {
    ...(sel.match ? { match: sel.match } : {}),
    ...(sel.compliance ? { compliance: sel.compliance } : {}),
    ...(sel.traits && Object.keys(sel.traits).length > 0 ? { traits: sel.traits } : {}),
  };
  const seen = new Map<string, string>();
  const failed = new Map<string, string>();
  const spokesAsked = new Set<string>();
  let cursor: string | null | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await q.listEnvoys(filter, {
      limit: PAGE,
      ...(cursor ? { cursor } : {}),
      ...(sel.spokes?.length ? { spokes: sel.spokes } : {}),
    });
    for (const s of page.spokes) {
      spokesAsked.add(s.id);
      if (s.outcome !== 'ok' && !failed.has(s.id)) failed.set(s.id, s.outcome);
    }
    for (const e of page.items) if (!failed.has(e.spokeId)) seen.set(e.hostname, e.spokeId);
    cursor = page.cursor;
    if (!cursor) break;
  }
  const unreachable: Resolved['unreachable'] = [];
  if (failed.size > 0) {
    const glob = sel.match ? Glob.compile(sel.match) : undefined;
    for (const rec of state.envoys.values()) {
      const why = failed.get(rec.spokeId);
      if (why === undefined || seen.has(rec.hostname)) continue;
      if (glob && !glob.test(rec.hostname)) continue;
      const extra = sel.traits || sel.compliance ? '; its traits/compliance could not be checked' : '';
      unreachable.push({
        hostname: rec.hostname,
        spokeId: rec.spokeId,
        reason: `spoke ${rec.spokeId} did not answer when targets were chosen (${why})${extra}`,
      });
    }
  }
  const targets = [...seen]
    .map(([hostname, spokeId]) => ({ hostname, spokeId }))
    .sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  unreachable.sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  return {
    targets,
    unreachable,
    spokes: [...spokesAsked].map((id) => ({ spokeId: id, outcome: failed.get(id) ?? 'ok' })),
  };
}
