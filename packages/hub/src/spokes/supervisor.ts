import { AxleError, ErrorCode, errorText, type Logger, type SpokeStats, type TermProof } from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { EnvoyMover } from '../placement/mover.js';
import type { Events } from '../store/events.js';
import type { SpokeRegistry } from './registry.js';
import type { HubMetrics } from '../daemon/metrics.js';
import type { SpokeLinks } from './spoke-links.js';
import type { HubStore } from '../store/state.js';
import type { StrandedPlacer } from '../placement/stranded.js';
import { interruptedDrains, resumeDrain } from '../placement/resume.js';

export interface SupervisorDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  mover: EnvoyMover;
  events: Events;
  metrics: HubMetrics;
  log: Logger;
  config: () => HubConfig;
  /** This hub's signed term, carried by every probe so spokes can pass it on to envoys. */
  termProof: () => TermProof;
  stranded: StrandedPlacer;
}

const RELEASE_CHUNK = 1000;

/**
 * Watches the spokes: probes each every `auto_failover.interval` (status pushes count as a
 * success too), drains a spoke after `threshold` consecutive failures when auto-failover
 * is on, and when a spoke comes back tells it to release what was moved away (so an envoy
 * that still reaches it is redirected) before it takes new envoys again. Moved envoys stay
 * where they went: a flapping spoke is never drained back and forth. Envoys a drain could not
 * place are placed as soon as a spoke can take them (stranded.ts), checked every round.
 * Health is not durable but the failover's mark on a spoke is (`auto` on its admin state): a
 * new primary's first answer from a spoke still so marked is a recovery too, though that hub
 * never saw the spoke fail.
 */
export class Supervisor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly flushing = new Map<string, Promise<number>>();
  private readonly recovering = new Map<string, Promise<void>>();
  /** Spokes that answered since this hub became primary. */
  private readonly answered = new Set<string>();
  /** Whether this term's first probe round, and the resuming of drains after it, are done. */
  private settled = false;
  private round: Promise<void> | undefined;

  constructor(private readonly d: SupervisorDeps) {
    const h = d.fleet.health;
    h.on('down', (id, err) => {
      d.metrics.spokeDown.inc({ spoke: id });
      void d.events.record('spoke.down', { spoke: id, error: err }).catch(() => undefined);
    });
    h.on('up', (id) => void this.recovered(id));
    h.on('ok', (id) => {
      if (!this.answered.has(id)) {
        this.answered.add(id);
        this.firstAnswer(id);
      }
      if ((d.state.releases.get(id)?.size ?? 0) > 0 && !this.flushing.has(id))
        void this.flushReleases(id).catch(() => undefined);
    });
    h.on('failed', (id, n) => this.maybeFailover(id, n));
  }

  /** Starts probing (on becoming primary); after the first round, resumes the drains the last primary left unfinished. */
  start(): void {
    this.stopped = false;
    this.settled = false;
    this.answered.clear();
    let first = true;
    const tick = () => {
      if (this.stopped) return;
      this.round = this.probeAll()
        .then(async () => {
          if (!first) return;
          first = false;
          await this.resumeInterrupted();
          this.settled = true;
        })
        .then(() => this.placeStranded('a spoke has room or is back'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.d.config().spanner.auto_failover.interval);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round?.catch(() => undefined);
    await Promise.allSettled([...this.flushing.values(), ...this.recovering.values()]);
  }

  /** Places stranded envoys that a spoke can take now (primary only: a no-op while stopped). */
  placeStranded(trigger: string, changed = false): void {
    if (this.stopped) return;
    try {
      this.d.stranded.check(trigger, changed);
    } catch (e) {
      this.d.log.error({ err: errorText(e) }, 'could not look for a home for stranded envoys; will look again');
    }
  }

  async probeAll(): Promise<void> {
    await Promise.all(this.d.fleet.ids().map((id) => this.probe(id)));
  }

  async probe(id: string): Promise<void> {
    const { links, state, fleet, metrics, config } = this.d;
    if (!links.has(id)) return;
    const cfg = config();
    // The fan-out timeout, not the interval: a short interval must not turn a busy spoke into a dead one.
    const timeout = cfg.fanout.timeout;
    const start = performance.now();
    try {
      const link = links.get(id);
      await link.request({ type: 'probe', term: state.term, termProof: this.d.termProof() }, timeout, 'probe_ok');
      const ms = performance.now() - start;
      metrics.probeLatency.observe({ spoke: id }, ms / 1000);
      let stats: SpokeStats | undefined;
      try {
        stats = (await link.request({ type: 'stats', term: state.term }, timeout, 'stats_result')).stats;
      } catch {
        // The probe answered; stats are a nicety refreshed next round.
      }
      if (this.stopped || !fleet.has(id)) return;
      fleet.health.success(id, { latencyMs: ms, ...(stats ? { stats } : {}) });
    } catch (e) {
      if (this.stopped || !fleet.has(id)) return;
      if (e instanceof AxleError && e.code === ErrorCode.STALE_TERM) {
        this.d.log.error(
          { spoke: id, term: state.term, err: errorText(e) },
          'spoke has seen a higher hub term; another hub is primary',
        );
      }
      fleet.health.failure(id, e);
    }
  }

  /** A status push from the spoke: as good as a successful probe. */
  onStatus(id: string, stats: SpokeStats): void {
    if (!this.d.fleet.has(id)) return;
    this.d.fleet.health.success(id, { stats, push: true });
  }

  /**
   * Drains a stopped or deposed primary left unfinished go on. A failover whose spoke answered
   * the first probe round is not: by the rule for a failed-over spoke that comes back
   * (recovered), it takes envoys again and keeps what it still has, the moved ones stay moved.
   * Health is not durable, hence the probe round first; a manual drain resumes whatever the
   * spoke's health, as the operator asked for it.
   */
  private async resumeInterrupted(): Promise<void> {
    const { fleet, log } = this.d;
    try {
      for (const m of interruptedDrains(this.d)) {
        if (this.stopped) return;
        const id = m.from as string;
        if (m.kind === 'failover' && fleet.health.get(id).online) {
          log.info(
            { spoke: id, move: m.id },
            `spoke ${id} answers again; its interrupted failover is not resumed and it takes envoys again`,
          );
          await this.recovered(id);
          continue;
        }
        resumeDrain(this.d, m);
      }
    } catch (e) {
      log.error({ err: errorText(e) }, 'could not resume interrupted drains; they stay draining');
    }
  }

  private maybeFailover(id: string, failures: number): void {
    const { config, state, mover, log } = this.d;
    const af = config().spanner.auto_failover;
    if (!af.enabled || failures < af.threshold || this.stopped) return;
    const admin = state.spokeAdmin.get(id);
    if (admin && admin.state !== 'active') return;
    if (mover.drainOf(id)) return;
    log.warn({ spoke: id, failures, threshold: af.threshold }, 'spoke failed its probes; draining its envoys');
    try {
      mover.start({ kind: 'failover', from: id, by: 'auto-failover' });
    } catch (e) {
      log.error({ spoke: id, err: errorText(e) }, 'could not start the auto-failover drain');
    }
  }

  /**
   * The first answer this primary has from `id`. A spoke the failover drained (or is draining)
   * under an earlier primary, or under this hub before it restarted, is back: the same recovery
   * as `up`. A failover left `draining` is settled after the first round instead
   * (resumeInterrupted), which also sees whether the spoke answered. A spoke drained by hand
   * (`auto` false) stays as the operator left it.
   */
  private firstAnswer(id: string): void {
    const admin = this.d.state.spokeAdmin.get(id);
    if (!admin?.auto || admin.state === 'active' || this.stopped || this.recovering.has(id)) return;
    if (admin.state === 'draining' && !this.settled) return;
    this.d.log.info(
      { spoke: id, admin: admin.state, move: admin.moveId },
      `spoke ${id} answers; the failover had drained it, so it takes envoys again`,
    );
    void this.recovered(id);
  }

  /** Once at a time per spoke: `up`, a first answer and a failover given up may all see the same return. */
  private recovered(id: string): Promise<void> {
    const cur = this.recovering.get(id);
    if (cur) return cur;
    const p = this.recover(id).finally(() => this.recovering.delete(id));
    this.recovering.set(id, p);
    return p;
  }

  private async recover(id: string): Promise<void> {
    const { state, mover, events, log } = this.d;
    const admin = state.spokeAdmin.get(id);
    let released = 0;
    try {
      if (admin?.auto && admin.state !== 'active') {
        const running = mover.drainOf(id);
        if (running) await mover.cancelAndWait(running.id);
      }
      released = await this.flushReleases(id);
      const now = state.spokeAdmin.get(id);
      const changes =
        now?.auto && now.state !== 'active'
          ? [
              {
                kind: 'spoke.admin' as const,
                admin: { ...now, state: 'active' as const, auto: false, reason: 'recovered', since: Date.now() },
              },
            ]
          : [];
      await events.record('spoke.up', { spoke: id, released }, changes);
    } catch (e) {
      log.warn({ spoke: id, err: errorText(e) }, 'spoke is back but releasing moved envoys failed; will retry');
    }
    this.placeStranded(`spoke ${id} is back online`, true);
  }

  /** Tells `id` to release every envoy that was moved off it, with where each went. */
  flushReleases(id: string): Promise<number> {
    const cur = this.flushing.get(id);
    if (cur) return cur;
    const p = this.doFlush(id).finally(() => this.flushing.delete(id));
    this.flushing.set(id, p);
    return p;
  }

  private async doFlush(id: string): Promise<number> {
    const { state, fleet, links, config } = this.d;
    let total = 0;
    for (;;) {
      const pending = state.releases.get(id);
      if (!pending || pending.size === 0 || !links.has(id)) return total;
      const chunk = [...pending.keys()].slice(0, RELEASE_CHUNK);
      const items = [];
      for (const h of chunk) {
        const rec = state.envoys.get(h);
        if (!rec || rec.spokeId === id) continue;
        items.push({
          hostname: h,
          epoch: Math.max(rec.epoch, pending.get(h) ?? 0),
          ...(fleet.has(rec.spokeId) ? { to: fleet.target(rec.spokeId) } : {}),
        });
      }
      if (items.length > 0) {
        await links
          .get(id)
          .request(
            { type: 'release', term: state.term, envoys: items },
            Math.max(config().fanout.timeout, 10_000),
            'released',
          );
      }
      await state.apply({ kind: 'release.done', spokeId: id, hostnames: chunk });
      total += items.length;
    }
  }
}
