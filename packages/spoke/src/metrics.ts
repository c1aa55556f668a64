import { LatencyWindow, Metrics } from '@axle/shared';
import type { Fleet } from './fleet.js';

/**
 * Check-in rate and latency come from memory: a 60-slot ring of per-second counts and a
 * window of recent latencies, so stats and status pushes cost nothing per envoy.
 */
export class Activity {
  private readonly slots = new Uint32Array(60);
  private slotSecond = 0;
  readonly checkinLatency = new LatencyWindow(4096);

  checkin(latencyMs: number, now = Date.now()): void {
    const sec = Math.floor(now / 1000);
    this.advance(sec);
    this.slots[sec % 60] = (this.slots[sec % 60] ?? 0) + 1;
    this.checkinLatency.add(latencyMs);
  }

  private advance(sec: number): void {
    if (sec === this.slotSecond) return;
    // Clear the slots skipped since the last check-in (all of them after a minute of quiet).
    const gap = Math.min(60, sec - this.slotSecond);
    for (let i = 1; i <= gap; i++) this.slots[(this.slotSecond + i) % 60] = 0;
    this.slotSecond = sec;
  }

  /** Check-ins in the last 60 seconds. */
  perMinute(now = Date.now()): number {
    this.advance(Math.floor(now / 1000));
    let n = 0;
    for (const v of this.slots) n += v;
    return n;
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class SpokeMetrics {
  readonly m = new Metrics('axle_spoke_');
  readonly checkins = this.m.counter('checkins_total', 'Envoy check-ins answered with checkin_ok.');
  readonly reports = this.m.counter<'result'>('reports_total', 'Run reports by outcome (stored, duplicate).', [
    'result',
  ]);
  readonly redirects = this.m.counter<'reason'>('redirects_total', 'Check-ins and reports answered with a redirect.', [
    'reason',
  ]);
  readonly refusals = this.m.counter<'reason'>('refusals_total', 'Connections and requests refused.', ['reason']);
  readonly hubRequests = this.m.counter<'type' | 'result'>(
    'hub_requests_total',
    'Requests from hubs by type and outcome.',
    ['type', 'result'],
  );
  readonly statusPushes = this.m.counter<'result'>('status_pushes_total', 'Status pushes to the hub by outcome.', [
    'result',
  ]);
  readonly runsExpired = this.m.counter('runs_expired_total', 'Runs removed by retention (count or age).');
  readonly checkinSeconds = this.m.histogram('checkin_duration_seconds', 'Time to answer a check-in.', LATENCY_BUCKETS);
  readonly reportSeconds = this.m.histogram(
    'report_ack_duration_seconds',
    'Time from receiving a run report to acknowledging it durably.',
    LATENCY_BUCKETS,
  );

  constructor(fleet: Fleet, state: () => { term: number; configVersion: number; perMinute: number }) {
    this.m.gauge('envoys', 'Envoys this spoke owns.', [], function () {
      this.set(fleet.size);
    });
    this.m.gauge('envoys_connected', 'Owned envoys with an open connection.', [], function () {
      this.set(fleet.connected);
    });
    this.m.gauge<'state'>(
      'envoys_by_compliance',
      'Owned envoys by the compliance of their latest run.',
      ['state'],
      function () {
        for (const [state, n] of Object.entries(fleet.counts)) this.set({ state }, n);
      },
    );
    this.m.gauge('term', 'Highest hub term this spoke has seen.', [], function () {
      this.set(state().term);
    });
    this.m.gauge('config_version', 'Config version this spoke serves.', [], function () {
      this.set(state().configVersion);
    });
    this.m.gauge('checkins_last_minute', 'Check-ins answered in the last 60 seconds.', [], function () {
      this.set(state().perMinute);
    });
  }
}
