import type { Counter, Histogram } from 'prom-client';
import type { Job } from '../model.js';
import type { HubMetrics } from '../../daemon/metrics.js';
import type { HubStore } from '../../store/state.js';
import { ROLLOUT_STATES, isActive, type Rollout } from './model.js';

/**
 * Rollout metrics, on the hub's registry (prefix axle_hub_): rollouts by state, the hosts of
 * the one running now, how much of its failure budget it has used, halts, and the time from
 * the failure that spent the budget to the rollout's halt. Gauges are read from the
 * replicated state, so a standby reports the same figures as the primary.
 */
export class RolloutMetrics {
  readonly halts: Counter;
  readonly haltSeconds: Histogram;
  readonly outcomes: Counter<'outcome'>;

  constructor(m: HubMetrics, state: HubStore, jobOf: (r: Rollout) => Job | undefined) {
    const latest = (): Rollout | undefined => {
      let best: Rollout | undefined;
      for (const r of state.rollouts.values()) if (!best || r.createdAt > best.createdAt) best = r;
      return best;
    };
    this.halts = m.m.counter('rollout_halts_total', 'Rollouts that halted themselves on their failure budget');
    this.haltSeconds = m.m.histogram(
      'rollout_halt_seconds',
      'Time from the host result that spent the failure budget to the rollout recorded as halted',
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    );
    this.outcomes = m.m.counter('rollouts_total', 'Rollouts that ended, by outcome', ['outcome']);
    m.m.gauge('rollouts', 'Rollouts kept on the hub, by state', ['state'], function collect() {
      this.reset();
      const counts = Object.fromEntries(ROLLOUT_STATES.map((s) => [s, 0])) as Record<string, number>;
      for (const r of state.rollouts.values()) counts[r.state] = (counts[r.state] ?? 0) + 1;
      for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
    });
    m.m.gauge(
      'rollout_halted',
      '1 while the latest rollout is halted on its failure budget, waiting for an operator',
      [],
      function collect() {
        this.set(latest()?.state === 'halted' ? 1 : 0);
      },
    );
    m.m.gauge(
      'rollout_hosts',
      'Hosts of the rollout in progress (or the latest), by outcome so far',
      ['outcome'],
      function collect() {
        this.reset();
        const r = latest();
        const j = r ? jobOf(r) : undefined;
        if (!j) return;
        const c = j.counts;
        this.set({ outcome: 'pending' }, c.pending);
        this.set({ outcome: 'running' }, c.running);
        this.set({ outcome: 'succeeded' }, c.succeeded);
        this.set({ outcome: 'failed' }, c.failed + c.timed_out);
        this.set({ outcome: 'skipped' }, c.skipped);
      },
    );
    m.m.gauge(
      'rollout_failure_budget_used',
      'Share of its failure budget the active rollout has used (1 = spent: it halts)',
      [],
      function collect() {
        const r = latest();
        const j = r && isActive(r) ? jobOf(r) : undefined;
        if (!r || !j) return void this.set(0);
        const c = j.counts;
        const failed = c.failed + c.timed_out;
        const ran = failed + c.succeeded;
        const rate = ran === 0 ? 0 : failed / ran;
        this.set(r.options.maxFailureRate === 0 ? (failed > 0 ? 1 : 0) : rate / r.options.maxFailureRate);
      },
    );
  }
}
