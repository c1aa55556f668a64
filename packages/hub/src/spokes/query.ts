import type { Coverage, EnvoyPage, FleetStats, SpokeReport } from '@axle/shared';
import { AxleError, ErrorCode, type EnvoyFilter, type EnvoySummary, type Run, type RunCursor } from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import { fanOut, type FanOutOutcome, type SpokeAnswer } from './fanout.js';
import type { SpokeRegistry } from './registry.js';
import type { HubMetrics } from '../daemon/metrics.js';
import { decodeCursor, encodeCursor, encodeRunCursor, kWayMerge } from './merge.js';
import type { SpokeLinks } from './spoke-links.js';
import type { HubStore } from '../store/state.js';

export interface QueryDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  metrics: HubMetrics;
  config: () => HubConfig;
}

export type { Coverage, EnvoyPage, FleetStats, SpokeReport } from '@axle/shared';

/**
 * Queries that fan out to spokes: the envoy list (k-way merged by host name, paged with a
 * composite per-spoke cursor), one envoy's detail, fleet stats (summed), spoke detail.
 * Every answer says how each spoke fared and what share of the directory it covers.
 */
export class Queries {
  constructor(private readonly d: QueryDeps) {}

  private opts() {
    const f = this.d.config().fanout;
    return { timeoutMs: f.timeout, maxParallel: f.max_parallel, retries: f.retries, backoffMs: f.backoff };
  }

  private targets(spokes?: string[]): string[] {
    if (!spokes || spokes.length === 0) return this.d.fleet.ids();
    for (const s of spokes) this.d.fleet.config(s);
    return spokes;
  }

  private report<T>(
    answers: SpokeAnswer<T>[],
    query: string,
  ): { spokes: SpokeReport[]; coverage: Coverage; partial: boolean } {
    let answered = 0;
    let total = 0;
    for (const a of answers) {
      const n = this.d.state.countOn(a.spokeId);
      total += n;
      if (a.outcome === 'ok') answered += n;
      this.d.metrics.fanoutOutcomes.inc({
        spoke: a.spokeId,
        outcome: a.outcome.startsWith('error') ? 'error' : a.outcome,
      });
      if (query === 'stats' || query === 'list') {
        if (a.outcome === 'ok') this.d.fleet.health.get(a.spokeId).lastOkAt = Date.now();
      }
    }
    return {
      spokes: answers.map((a) => ({ id: a.spokeId, outcome: a.outcome, ms: a.ms, attempts: a.attempts })),
      coverage: { answered, total, ratio: total === 0 ? 1 : answered / total },
      partial: answers.some((a) => a.outcome !== 'ok'),
    };
  }

  async listEnvoys(
    filter: Omit<EnvoyFilter, 'after' | 'limit'>,
    o: { limit: number; cursor?: string | null; spokes?: string[] },
  ): Promise<EnvoyPage> {
    const stop = this.d.metrics.fanoutDuration.startTimer({ query: 'list' });
    const cursor = decodeCursor(o.cursor);
    const ids = this.targets(o.spokes);
    const { links, state } = this.d;
    const answers = await fanOut(
      ids,
      async (id, timeoutMs) => {
        const f: EnvoyFilter = {
          ...filter,
          limit: o.limit,
          ...(cursor[id] !== undefined ? { after: cursor[id] } : {}),
        };
        return links.get(id).request({ type: 'list_envoys', term: state.term, filter: f }, timeoutMs, 'envoy_page');
      },
      this.opts(),
    );
    refuseRequestFaults(answers);
    const pages = answers
      .filter((a) => a.value)
      .map((a) => ({ source: a.spokeId, items: a.value!.items, more: a.value!.more }));
    const merged = kWayMerge(pages, (e) => e.hostname, o.limit);
    const next = { ...cursor, ...merged.taken };
    stop();
    const answered = answers.filter((a) => a.value);
    const matched = {
      count: answered.reduce((n, a) => n + (a.value?.total ?? 0), 0),
      exact: answered.length === answers.length && answered.every((a) => a.value?.totalExact !== false),
    };
    return {
      items: merged.items,
      cursor: merged.more ? encodeCursor(next) : null,
      matched,
      ...this.report(answers, 'list'),
    };
  }

  async envoy(
    hostname: string,
    runs: number,
    runsBefore?: RunCursor,
  ): Promise<{
    directory: unknown;
    detail?: {
      envoy?: EnvoySummary;
      traits?: unknown;
      traitsTruncated?: boolean;
      runs: Run[];
      runsCursor: string | null;
    };
    spoke: SpokeReport;
  }> {
    const rec = this.d.state.envoys.get(hostname);
    if (!rec)
      throw new AxleError(
        ErrorCode.NOT_FOUND,
        `no envoy "${hostname}" in the directory; list envoys with GET /api/v1/envoys?match=GLOB`,
      );
    const [a] = await fanOut(
      [rec.spokeId],
      (id, t) =>
        this.d.links
          .get(id)
          .request(
            { type: 'get_envoy', term: this.d.state.term, hostname, runs, ...(runsBefore ? { runsBefore } : {}) },
            t,
            'envoy_detail',
          ),
      this.opts(),
    );
    const ans = a!;
    const v = ans.value;
    return {
      directory: { ...rec, state: this.d.fleet.has(rec.spokeId) ? this.d.fleet.state(rec.spokeId) : 'unknown' },
      ...(v
        ? {
            detail: {
              ...(v.envoy ? { envoy: v.envoy } : {}),
              ...(v.traits ? { traits: v.traits } : {}),
              ...(v.traitsTruncated ? { traitsTruncated: true } : {}),
              runs: v.runs,
              runsCursor: v.runsNext ? encodeRunCursor(v.runsNext) : null,
            },
          }
        : {}),
      spoke: { id: ans.spokeId, outcome: ans.outcome, ms: ans.ms, attempts: ans.attempts },
    };
  }

  async stats(spokes?: string[]): Promise<FleetStats> {
    const stop = this.d.metrics.fanoutDuration.startTimer({ query: 'stats' });
    const ids = this.targets(spokes);
    const answers = await fanOut(
      ids,
      (id, t) => this.d.links.get(id).request({ type: 'stats', term: this.d.state.term }, t, 'stats_result'),
      this.opts(),
    );
    const sum = {
      envoys: 0,
      connected: 0,
      compliance: { compliant: 0, noncompliant: 0, unknown: 0 },
      checkinsPerMinute: 0,
    };
    const perSpoke: FleetStats['perSpoke'] = [];
    for (const a of answers) {
      if (!a.value) continue;
      const s = a.value.stats;
      this.d.fleet.health.get(a.spokeId).stats = s;
      this.d.fleet.health.get(a.spokeId).statsAt = Date.now();
      sum.envoys += s.envoys;
      sum.connected += s.connected;
      sum.compliance.compliant += s.compliance.compliant;
      sum.compliance.noncompliant += s.compliance.noncompliant;
      sum.compliance.unknown += s.compliance.unknown;
      sum.checkinsPerMinute += s.checkinsPerMinute;
      perSpoke.push({ ...s, state: this.d.fleet.state(a.spokeId) });
    }
    const judged = sum.compliance.compliant + sum.compliance.noncompliant;
    stop();
    return {
      ...sum,
      complianceRatio: judged === 0 ? 1 : sum.compliance.compliant / judged,
      perSpoke,
      ...this.report(answers, 'stats'),
    };
  }

  async recentRuns(
    spokeId: string,
    limit: number,
    before?: RunCursor,
  ): Promise<{ runs: Run[]; cursor: string | null; outcome: FanOutOutcome }> {
    const [a] = await fanOut(
      [spokeId],
      (id, t) =>
        this.d.links
          .get(id)
          .request({ type: 'list_runs', term: this.d.state.term, limit, ...(before ? { before } : {}) }, t, 'run_list'),
      this.opts(),
    );
    const next = a?.value?.next;
    return {
      runs: a?.value?.runs ?? [],
      cursor: next ? encodeRunCursor(next) : null,
      outcome: a?.outcome ?? 'unreachable',
    };
  }
}

/**
 * A spoke that refused the query itself (too costly, a filter it will not take) refused it
 * for every spoke: answer that as the request's error, not as a partial page.
 */
function refuseRequestFaults(answers: SpokeAnswer<unknown>[]): void {
  const fault = answers.find((a) => a.code === ErrorCode.QUERY_TOO_COSTLY || a.code === ErrorCode.INVALID);
  if (fault) {
    throw new AxleError(
      fault.code as ErrorCode,
      `spoke ${fault.spokeId} refused the query: ${fault.outcome.replace(/^error: (E_[A-Z_]+: )?/, '')}`,
    );
  }
}
