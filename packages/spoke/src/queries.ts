import {
  type Codec,
  CostBudget,
  Glob,
  type Json,
  type Message,
  type MessageOf,
  type Run,
  type RunCursor,
  fitRun,
  replyBudget,
} from '@axle/shared';
import type { Fleet } from './fleet.js';
import { listPage } from './list-plan.js';
import { QueryGate } from './query-gate.js';
import type { Store } from './store.js';

export interface SpokeQueryLimits {
  frameBytes: number;
  maxConcurrent: number;
  steps: number;
}

/**
 * The hub's read queries: envoy pages, one envoy's detail, recent runs. Every answer fits the
 * frame limit by construction (pages stop where the next item would not fit and say where to
 * go on; a single item too large on its own is truncated and marked), every glob is charged
 * to a per-query budget, and only a few run at once (QueryGate).
 */
export class SpokeQueries {
  private readonly gate: QueryGate;
  private readonly budget: number;

  constructor(
    private readonly fleet: Fleet,
    private readonly store: Store,
    private readonly codec: Codec,
    private readonly limits: SpokeQueryLimits,
  ) {
    this.gate = new QueryGate(limits.maxConcurrent);
    this.budget = replyBudget(limits.frameBytes);
  }

  list(msg: MessageOf<'list_envoys'>): Promise<Message> {
    const glob = msg.filter.match ? Glob.compile(msg.filter.match) : undefined;
    return this.gate.run(async () => ({
      type: 'envoy_page',
      ...(await listPage(msg.filter, glob, {
        index: this.fleet.index,
        traits: this.store.traitIndex,
        record: (h) => this.fleet.get(h),
        summary: (r) => this.fleet.summary(r),
        traitsOf: (h) => this.store.getTraits(h),
        budget: new CostBudget(this.limits.steps),
        maxBytes: this.budget,
        sizeOf: (s) => this.codec.size(s),
      })),
    }));
  }

  envoy(msg: MessageOf<'get_envoy'>): Promise<Message> {
    return this.gate.run((): Message => {
      const r = this.fleet.get(msg.hostname);
      if (!r || r.released) return { type: 'envoy_detail', runs: [] };
      const envoy = this.fleet.summary(r);
      const stored = this.store.getTraits(r.hostname);
      const traits = stored ? this.fitTraits(stored, this.budget / 2) : undefined;
      const left = this.budget - this.codec.size(envoy) - (traits ? this.codec.size(traits.traits) : 0);
      const page = this.pageRuns(this.store.runsNewestFirst(r.hostname, msg.runsBefore), msg.runs ?? 10, left);
      return {
        type: 'envoy_detail',
        envoy,
        ...(traits ? { traits: traits.traits, ...(traits.truncated ? { traitsTruncated: true } : {}) } : {}),
        runs: page.runs,
        ...(page.next ? { runsNext: page.next } : {}),
      };
    });
  }

  runs(msg: MessageOf<'list_runs'>): Promise<Message> {
    return this.gate.run((): Message => {
      const page = this.pageRuns(this.store.runsNewestFirst(msg.hostname, msg.before), msg.limit, this.budget);
      return { type: 'run_list', runs: page.runs, ...(page.next ? { next: page.next } : {}) };
    });
  }

  /** Up to `max` runs within `bytes`; `next` is set when the bytes ran out first. */
  private pageRuns(runs: Iterable<Run>, max: number, bytes: number): { runs: Run[]; next?: RunCursor } {
    const out: Run[] = [];
    let used = 0;
    for (const run of runs) {
      if (out.length >= max) break;
      let r = run;
      let n = this.codec.size(r);
      if (used + n > bytes) {
        const last = out.at(-1);
        if (last) return { runs: out, next: { finishedAt: last.finishedAt, id: last.id, hostname: last.hostname } };
        r = fitRun(run, Math.max(1024, bytes), this.codec);
        n = this.codec.size(r);
      }
      out.push(r);
      used += n;
    }
    return { runs: out };
  }

  /** Traits that would crowd out everything else keep only the keys that fit, in order. */
  private fitTraits(t: Record<string, Json>, bytes: number): { traits: Record<string, Json>; truncated: boolean } {
    if (this.codec.size(t) <= bytes) return { traits: t, truncated: false };
    const out: Record<string, Json> = {};
    let used = 0;
    for (const [k, v] of Object.entries(t)) {
      const n = this.codec.size({ [k]: v });
      if (used + n > bytes) continue;
      out[k] = v;
      used += n;
    }
    return { traits: out, truncated: true };
  }
}
