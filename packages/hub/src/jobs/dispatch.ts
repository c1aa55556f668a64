import { AxleError, ErrorCode, errorText, type JobAction, type MessageOf } from '@axle/shared';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { SpokeLinks } from '../spokes/spoke-links.js';
import type { HubStore } from '../store/state.js';

/** The hub waits this much past the target's timeout for the spoke's answer (the spoke and envoy enforce the timeout first). */
export const HUB_GRACE_MS = 3000;
/** A spoke link that is not open is opened (by a probe) within this, so a dead spoke costs seconds, not the job timeout. */
const CONNECT_TIMEOUT_MS = 3000;
/** How often one attempt follows an envoy that moved between spokes before giving up. */
const MAX_HOPS = 3;

export interface Attempt {
  status: 'succeeded' | 'failed' | 'timed_out' | 'skipped';
  reason?: string;
  exitCode?: number;
  output?: string;
  spokeId: string;
  /** True when nothing ran: the spoke or the envoy never got the order, or the envoy refused it. */
  notSent: boolean;
  /** True when the order may have run but its result was lost (a spoke or envoy link dropped). */
  unknown?: boolean;
}

export interface DispatchDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  links: SpokeLinks;
}

/**
 * Sends one target's order to the spoke that owns the envoy and waits for the envoy's result.
 * The request stays open for the whole run, so the hub holds the permit and sees a timeout
 * or a dropped spoke link itself. When the spoke says it no longer owns the envoy, or its link
 * drops, the envoy is looked up again: if the directory moved it to another spoke, the order
 * goes there; otherwise the attempt fails with the reason.
 */
export async function dispatch(
  d: DispatchDeps,
  o: { jobId: string; hostname: string; action: JobAction; timeoutMs: number; attempt: number },
): Promise<Attempt> {
  let tried: string | undefined;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const rec = d.state.envoys.get(o.hostname);
    if (!rec)
      return {
        status: 'failed',
        reason: 'the envoy is no longer in the hub directory',
        spokeId: tried ?? '-',
        notSent: true,
      };
    const spokeId = rec.spokeId;
    if (spokeId === tried) break;
    tried = spokeId;
    if (!d.links.has(spokeId))
      return { status: 'skipped', reason: `spoke ${spokeId} is not in the hub config`, spokeId, notSent: true };
    const link = d.links.get(spokeId);
    const h = d.fleet.health.get(spokeId);
    if (!link.connected) {
      // Opened by a quick probe, so an unreachable spoke is told apart from one that took the order.
      try {
        await link.request({ type: 'probe', term: d.state.term }, CONNECT_TIMEOUT_MS, 'probe_ok');
      } catch (e) {
        if (moved(d, o.hostname, spokeId)) continue;
        const known = h.probed && !h.online && h.lastError ? `; last health error: ${h.lastError}` : '';
        return {
          status: 'skipped',
          reason: `spoke ${spokeId} is unreachable: ${errorText(e)}${known}`,
          spokeId,
          notSent: true,
        };
      }
    }
    let r: MessageOf<'job_result'>;
    try {
      r = await link.request(
        {
          type: 'job_dispatch',
          term: d.state.term,
          jobId: o.jobId,
          hostname: o.hostname,
          action: o.action,
          timeoutMs: o.timeoutMs,
          attempt: o.attempt,
        },
        o.timeoutMs + HUB_GRACE_MS,
        'job_result',
      );
    } catch (e) {
      const code = e instanceof AxleError ? e.code : undefined;
      if (code === ErrorCode.TIMEOUT) {
        return {
          status: 'timed_out',
          reason: `no result from spoke ${spokeId} within ${o.timeoutMs} ms (+${HUB_GRACE_MS} ms grace)`,
          spokeId,
          notSent: false,
        };
      }
      if (
        code === ErrorCode.UNKNOWN_ENVOY ||
        code === ErrorCode.CLOSED ||
        code === ErrorCode.KEEPALIVE ||
        code === ErrorCode.UNREACHABLE
      ) {
        if (moved(d, o.hostname, spokeId)) continue;
        if (code === ErrorCode.UNKNOWN_ENVOY)
          return {
            status: 'failed',
            reason: `spoke ${spokeId} does not own the envoy (${errorText(e)})`,
            spokeId,
            notSent: true,
          };
        return {
          status: 'failed',
          reason: `spoke ${spokeId} went away while the target ran (${errorText(e)}); its outcome is unknown`,
          spokeId,
          notSent: false,
          unknown: true,
        };
      }
      return {
        status: 'failed',
        reason: `spoke ${spokeId} refused the order: ${errorText(e)}`,
        spokeId,
        notSent: true,
      };
    }
    const base = {
      spokeId,
      notSent: r.outcome === 'not_run' || r.status === 'refused',
      ...(r.outcome === 'unknown' ? { unknown: true } : {}),
      ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
      ...(r.output ? { output: r.output } : {}),
    };
    if (r.status === 'succeeded') return { status: 'succeeded', ...(r.message ? { reason: r.message } : {}), ...base };
    if (r.status === 'timed_out')
      return { status: 'timed_out', reason: r.message || `timed out after ${o.timeoutMs} ms`, ...base };
    if (r.status === 'refused') return { status: 'failed', reason: `refused by the envoy: ${r.message}`, ...base };
    return { status: 'failed', reason: r.message || 'failed', ...base };
  }
  return {
    status: 'failed',
    reason: `the envoy kept moving between spokes (last tried ${tried ?? '-'}); try again`,
    spokeId: tried ?? '-',
    notSent: true,
  };
}

function moved(d: DispatchDeps, hostname: string, from: string): boolean {
  const now = d.state.envoys.get(hostname)?.spokeId;
  return now !== undefined && now !== from;
}
