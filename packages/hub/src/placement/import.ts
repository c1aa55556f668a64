import { AxleError, ErrorCode, errorText, fromBase64, type ImportResult, type Logger } from '@axle/shared';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { Change } from '../store/model.js';
import { type AdoptDeps, adoptOn, recordChanges } from './adopt.js';
import type { HostRouter } from './router.js';

export interface ImportDeps extends AdoptDeps {
  fleet: SpokeRegistry;
  log: Logger;
  router: () => HostRouter;
}

const CHUNK = 1000;

/**
 * Registers envoys whose keys are already known (a fleet migrated from another system, or
 * pre-provisioned hosts) without a join token each: the same routing, adopt-then-record
 * path as enrollment, in batches of up to 1000 per spoke.
 */
export async function importEnvoys(
  d: ImportDeps,
  list: { hostname: string; pubkey: string }[],
  by: string,
): Promise<ImportResult> {
  const res: ImportResult = {
    imported: 0,
    already: 0,
    conflicts: [],
    unrouted: [],
    failed: 0,
    errors: [],
    perSpoke: {},
  };
  const groups = new Map<string, { hostname: string; pubkey: string }[]>();
  const holds: (() => void)[] = [];
  const seen = new Set<string>();
  const router = d.router();
  try {
    for (const e of list) {
      fromBase64(e.pubkey, 32, `public key of ${e.hostname}`);
      if (seen.has(e.hostname)) throw new AxleError(ErrorCode.INVALID, `"${e.hostname}" appears twice in the import`);
      seen.add(e.hostname);
      const cur = d.state.envoys.get(e.hostname);
      if (cur) {
        if (cur.pubkey === e.pubkey) res.already++;
        else res.conflicts.push(e.hostname);
        continue;
      }
      let target: string | undefined;
      try {
        target = router.candidates(e.hostname, (id) => d.fleet.refusal(id))[0]?.spokeId;
      } catch {
        target = undefined;
      }
      if (target === undefined) {
        res.unrouted.push(e.hostname);
        continue;
      }
      holds.push(d.fleet.hold(target));
      let g = groups.get(target);
      if (!g) groups.set(target, (g = []));
      g.push(e);
    }
    await Promise.all(
      [...groups].map(async ([spokeId, items]) => {
        for (let i = 0; i < items.length; i += CHUNK) {
          const chunk = items.slice(i, i + CHUNK);
          try {
            const adopted = await adoptOn(d, spokeId, chunk);
            const now = Date.now();
            const changes: Change[] = adopted.map(
              (e): Change => ({
                kind: 'envoy.assign',
                envoy: { ...e, spokeId, enrolledAt: now, assignedAt: now },
                reason: 'import',
              }),
            );
            changes.push(
              d.events.change('envoy.enrolled', {
                spoke: spokeId,
                via: 'import',
                by,
                count: chunk.length,
                hostnames: chunk.slice(0, 100).map((e) => e.hostname),
              }),
            );
            await recordChanges(d, changes);
            res.imported += chunk.length;
            res.perSpoke[spokeId] = (res.perSpoke[spokeId] ?? 0) + chunk.length;
          } catch (e) {
            res.failed += chunk.length;
            if (res.errors.length < 10) res.errors.push(`${spokeId}: ${errorText(e)}`);
            d.log.warn({ spoke: spokeId, count: chunk.length, err: errorText(e) }, 'import batch failed');
          }
        }
      }),
    );
    if (res.already > 0) await d.state.settled();
  } finally {
    for (const h of holds) h();
  }
  return res;
}
