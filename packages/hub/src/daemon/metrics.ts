import { Metrics } from '@axle/shared';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { HubStore } from '../store/state.js';

const STATES = ['online', 'offline', 'draining', 'drained', 'partial'] as const;

/** The hub's Prometheus metrics, all prefixed `axle_hub_`. Gauges are read at scrape time. */
export class HubMetrics {
  readonly m = new Metrics('axle_hub_');
  readonly enrollments = this.m.counter('enrollments_total', 'Enrollment attempts by outcome', ['outcome']);
  readonly fanoutDuration = this.m.histogram(
    'fanout_duration_seconds',
    'Time to answer a fan-out query across spokes',
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ['query'],
  );
  readonly fanoutOutcomes = this.m.counter('fanout_spoke_outcomes_total', 'Per-spoke outcomes of fan-out queries', [
    'spoke',
    'outcome',
  ]);
  readonly probeLatency = this.m.histogram(
    'probe_latency_seconds',
    'Spoke probe round-trip time',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    ['spoke'],
  );
  readonly drains = this.m.counter('drains_total', 'Moves started (drain, reassign, failover)', ['kind']);
  readonly moved = this.m.counter('envoys_moved_total', 'Envoys re-assigned by moves', ['kind']);
  readonly spokeDown = this.m.counter('spoke_down_total', 'Times a spoke went from online to offline', ['spoke']);
  readonly api = this.m.counter('api_requests_total', 'HTTP API requests by status class', ['status']);

  constructor(fleet: SpokeRegistry, state: HubStore) {
    this.m.gauge('spokes', 'Spokes by state', ['state'], function collect() {
      this.reset();
      const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<string, number>;
      for (const id of fleet.ids()) counts[fleet.state(id)] = (counts[fleet.state(id)] ?? 0) + 1;
      for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
    });
    this.m.gauge('spoke_up', '1 if the spoke answered its last probe or push', ['spoke'], function collect() {
      this.reset();
      for (const id of fleet.ids()) this.set({ spoke: id }, fleet.health.get(id).online ? 1 : 0);
    });
    this.m.gauge('spoke_consecutive_failures', 'Consecutive failed probes per spoke', ['spoke'], function collect() {
      this.reset();
      for (const id of fleet.ids()) this.set({ spoke: id }, fleet.health.get(id).consecutiveFailures);
    });
    this.m.gauge('envoys', 'Envoys assigned per spoke in the hub directory', ['spoke'], function collect() {
      this.reset();
      for (const id of fleet.ids()) this.set({ spoke: id }, state.countOn(id));
    });
    this.m.gauge(
      'stranded_envoys',
      'Envoys a finished drain of the spoke could not place anywhere (spoke state partial)',
      ['spoke'],
      function collect() {
        this.reset();
        for (const id of fleet.ids()) this.set({ spoke: id }, fleet.stranded(id));
      },
    );
    this.m.gauge(
      'compliance_ratio',
      'Compliant / (compliant + noncompliant) per spoke, from its last stats',
      ['spoke'],
      function collect() {
        this.reset();
        for (const id of fleet.ids()) {
          const c = fleet.health.get(id).stats?.compliance;
          if (!c) continue;
          const judged = c.compliant + c.noncompliant;
          this.set({ spoke: id }, judged === 0 ? 1 : c.compliant / judged);
        }
      },
    );
    this.m.gauge(
      'envoys_by_compliance',
      'Envoys per spoke and compliance, from its last stats',
      ['spoke', 'compliance'],
      function collect() {
        this.reset();
        for (const id of fleet.ids()) {
          const c = fleet.health.get(id).stats?.compliance;
          if (!c) continue;
          for (const [k, v] of Object.entries(c)) this.set({ spoke: id, compliance: k }, v);
        }
      },
    );
    this.m.gauge('pending_enrollments', 'Enrollments waiting for approval', [], function collect() {
      this.set(state.pending.size);
    });
    this.m.gauge(
      'config_version',
      'The current published config version (0 before the first publish)',
      [],
      function collect() {
        this.set(state.configVersion);
      },
    );
    this.m.gauge('spoke_config_version', 'Config version each spoke last reported', ['spoke'], function collect() {
      this.reset();
      for (const id of fleet.ids()) {
        const v = fleet.health.get(id).stats?.configVersion;
        if (v !== undefined) this.set({ spoke: id }, v);
      }
    });
    this.m.gauge('spoke_config_lag', 'Versions each spoke is behind the current config', ['spoke'], function collect() {
      this.reset();
      for (const id of fleet.ids()) {
        const v = fleet.health.get(id).stats?.configVersion;
        if (v !== undefined) this.set({ spoke: id }, Math.max(0, state.configVersion - v));
      }
    });
    this.m.gauge('term', 'The hub term', [], function collect() {
      this.set(state.term);
    });
  }
}
