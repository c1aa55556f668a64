import type { UnplacedReason } from '../model.js';
import type { Router } from '../router.js';

/**
 * Where a drain puts an envoy that must leave its spoke (README "Placement order"):
 *   1. the spoke the operator named (`drain --to`, `reassign --to`), and nothing else;
 *   2. otherwise the other spokes whose patterns match the host name, in config order;
 *   3. then the drained spoke's `failover_to` spokes, in the order listed;
 *   4. then `spanner.default_spoke`.
 * The first that can take the envoy now (online, not drained, under max_envoys) wins.
 * A pure function of the config and the spokes' refusals, so drains, the automatic
 * re-placement of stranded envoys and the API all give the same answer.
 */
export type PlacementVia = 'to' | 'pattern' | 'failover' | 'default';

/** Why an envoy could not be placed: nothing may take it, or everything that may is down or full. */
export type UnplacedCode = 'no_match' | 'unavailable';

export type Placement =
  | { ok: true; spokeId: string; via: PlacementVia }
  | { ok: false; code: UnplacedCode; reason: string };

export interface PlacementInput {
  router: Router;
  /** The spoke the envoy leaves. */
  from: string;
  /** Its `failover_to` list. */
  failoverTo: readonly string[];
  /** The operator's explicit target, if any. */
  to?: string | undefined;
  /** Why a spoke cannot take one more envoy now, or undefined when it can (Fleet.refusal). */
  refusal: (spokeId: string) => string | undefined;
}

/** Every spoke that may take `host` after leaving `from`, best first, with how each was reached. */
export function placementOrder(i: PlacementInput, host: string): { spokeId: string; via: PlacementVia }[] {
  if (i.to !== undefined) return i.to === i.from ? [] : [{ spokeId: i.to, via: 'to' }];
  const out: { spokeId: string; via: PlacementVia }[] = [];
  const seen = new Set<string>([i.from]);
  const add = (spokeId: string, via: PlacementVia) => {
    if (seen.has(spokeId)) return;
    seen.add(spokeId);
    out.push({ spokeId, via });
  };
  for (const id of i.router.matching(host)) add(id, 'pattern');
  for (const id of i.failoverTo) add(id, 'failover');
  if (i.router.defaultSpoke !== undefined) add(i.router.defaultSpoke, 'default');
  return out;
}

/**
 * The first spoke in placement order that can take `host` now, or why none can. Reasons
 * name no host, so a drain can group its stranded envoys by reason.
 */
export function place(i: PlacementInput, host: string): Placement {
  const order = placementOrder(i, host);
  if (order.length === 0) {
    const missing = [
      i.failoverTo.length === 0 ? `${i.from} has no failover_to` : undefined,
      i.router.defaultSpoke === undefined ? 'there is no default_spoke' : undefined,
    ].filter(Boolean);
    return {
      ok: false,
      code: 'no_match',
      reason: `no spoke other than ${i.from} matches their names${missing.length > 0 ? ` and ${missing.join(' and ')}` : ''}`,
    };
  }
  const passed: string[] = [];
  for (const c of order) {
    const why = i.refusal(c.spokeId);
    if (why === undefined) return { ok: true, ...c };
    passed.push(`${c.spokeId} (${why})`);
  }
  return {
    ok: false,
    code: 'unavailable',
    reason: `every spoke that may take them is down or full: ${passed.join(', ')}`,
  };
}

/** How many distinct reasons a move keeps, and how many host names each shows. */
const MAX_REASONS = 10;
const MAX_EXAMPLES = 5;

/** Tallies the envoys a move could not place by reason, bounded however many there are. */
export class UnplacedTally {
  private readonly byReason = new Map<string, UnplacedReason>();

  add(code: UnplacedReason['code'], reason: string, hosts: readonly string[]): void {
    if (hosts.length === 0) return;
    let r = this.byReason.get(`${code}\u0000${reason}`);
    if (!r) {
      if (this.byReason.size >= MAX_REASONS) {
        code = 'failed';
        reason = 'other reasons (too many distinct ones to list)';
        r = this.byReason.get(`${code}\u0000${reason}`);
      }
      if (!r) this.byReason.set(`${code}\u0000${reason}`, (r = { code, reason, count: 0, examples: [] }));
    }
    r.count += hosts.length;
    for (const h of hosts) if (r.examples.length < MAX_EXAMPLES) r.examples.push(h);
  }

  get reasons(): UnplacedReason[] {
    return [...this.byReason.values()].map((r) => ({ ...r, examples: [...r.examples] }));
  }
}
