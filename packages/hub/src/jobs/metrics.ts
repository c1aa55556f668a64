import type { Counter, Histogram } from 'prom-client';
import type { HubMetrics } from '../daemon/metrics.js';
import type { HubStore } from '../store/state.js';

export interface JobGauges {
  /** Targets running now, over every job. */
  running(): number;
  /** Targets running longer than their timeout plus the grace the hub allows. */
  overdue(): number;
}

/**
 * Job metrics, on the hub's registry (prefix axle_hub_): how long jobs take, target outcomes
 * overall and per spoke (the spoke success rate is succeeded / all of
 * axle_hub_job_spoke_targets_total), what runs now and what is stuck.
 */
export class JobMetrics {
  readonly duration: Histogram<'action' | 'state'>;
  readonly targets: Counter<'outcome'>;
  readonly spokeTargets: Counter<'spoke' | 'outcome'>;
  readonly retries: Counter;

  constructor(m: HubMetrics, state: HubStore, g: JobGauges) {
    this.duration = m.m.histogram(
      'job_duration_seconds',
      "Time from a job's start to its end, by action and final state",
      [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
      ['action', 'state'],
    );
    this.targets = m.m.counter(
      'job_targets_total',
      'Job targets finished, by outcome (succeeded, failed, timed_out, skipped)',
      ['outcome'],
    );
    this.spokeTargets = m.m.counter(
      'job_spoke_targets_total',
      'Job target attempts answered through each spoke, by outcome',
      ['spoke', 'outcome'],
    );
    this.retries = m.m.counter('job_retries_total', 'Job target attempts that were retried after a failure');
    m.m.gauge('job_targets_running', 'Job targets running now, over every job', [], function collect() {
      this.set(g.running());
    });
    m.m.gauge(
      'job_targets_overdue',
      'Job targets running past their timeout (plus grace): stuck',
      [],
      function collect() {
        this.set(g.overdue());
      },
    );
    m.m.gauge('jobs', 'Jobs kept on the hub, by state', ['state'], function collect() {
      this.reset();
      const counts: Record<string, number> = { running: 0, succeeded: 0, failed: 0, stopped: 0, cancelled: 0 };
      for (const j of state.jobs.values()) counts[j.state] = (counts[j.state] ?? 0) + 1;
      for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
    });
  }
}
