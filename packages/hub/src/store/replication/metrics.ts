import type { HubMetrics } from '../../daemon/metrics.js';
import type { Replication } from './replication.js';

const ROLES = ['primary', 'standby', 'candidate'] as const;

/** axle_hub_role{role}, axle_hub_log_position, axle_hub_replication_lag{peer}, axle_hub_lease_valid_seconds (axle_hub_term exists). */
export function replicationMetrics(metrics: HubMetrics, r: Replication): void {
  const m = metrics.m;
  m.gauge(
    'role',
    '1 for the role this hub has now (primary, standby or candidate), 0 for the others',
    ['role'],
    function collect() {
      for (const role of ROLES) this.set({ role }, r.role === role ? 1 : 0);
    },
  );
  m.gauge('log_position', "Sequence number of the last change in this hub's replicated log", [], function collect() {
    this.set(r.logPosition());
  });
  m.gauge(
    'replication_lag',
    'Log entries a standby is behind the primary (on the primary: per standby; on a standby: its own)',
    ['peer'],
    function collect() {
      this.reset();
      for (const { peer, lag } of r.lags()) this.set({ peer }, lag);
    },
  );
  m.gauge(
    'lease_valid_seconds',
    "How long the primary's lease still runs without another majority acknowledgement (0 on a standby)",
    [],
    function collect() {
      const left = r.isPrimary ? Math.min(r.leaseValidUntil() - Date.now(), 86_400_000) : 0;
      this.set(Math.max(0, left) / 1000);
    },
  );
}
