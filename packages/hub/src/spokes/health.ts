import type { SpokeState } from '@axle/shared';
import { EventEmitter } from 'node:events';
import { LatencyWindow, errorText, type SpokeStats } from '@axle/shared';
import type { SpokeAdmin } from '../store/model.js';

export type { SpokeState } from '@axle/shared';

/** What the hub knows about a spoke's health right now (not durable: re-learnt by probing). */
export interface SpokeHealth {
  probed: boolean;
  online: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastProbeAt?: number;
  lastOkAt?: number;
  lastPushAt?: number;
  latencyMs?: number;
  lastError?: string;
  stats?: SpokeStats;
  statsAt?: number;
  window: LatencyWindow;
}

export interface HealthEvents {
  down: [spokeId: string, error: string];
  up: [spokeId: string];
  ok: [spokeId: string];
  failed: [spokeId: string, failures: number];
}

/**
 * Per-spoke health: consecutive probe failures and successes, probe latency, the last stats
 * a spoke pushed or answered. Emits `down` on the first failure after being online, `up`
 * on the first success after being offline, and `failed` with the running count so
 * auto-failover can act on its threshold.
 */
export class SpokeHealthTracker extends EventEmitter<HealthEvents> {
  private readonly book = new Map<string, SpokeHealth>();

  get(id: string): SpokeHealth {
    let h = this.book.get(id);
    if (!h)
      this.book.set(
        id,
        (h = {
          probed: false,
          online: false,
          consecutiveFailures: 0,
          consecutiveSuccesses: 0,
          window: new LatencyWindow(256),
        }),
      );
    return h;
  }

  forget(id: string): void {
    this.book.delete(id);
  }

  success(id: string, o: { latencyMs?: number; stats?: SpokeStats; push?: boolean } = {}): void {
    const h = this.get(id);
    const now = Date.now();
    const wasOnline = h.online;
    const wasProbed = h.probed;
    h.probed = true;
    h.online = true;
    h.consecutiveFailures = 0;
    h.consecutiveSuccesses++;
    h.lastOkAt = now;
    if (o.push) h.lastPushAt = now;
    else h.lastProbeAt = now;
    if (o.latencyMs !== undefined) {
      h.latencyMs = o.latencyMs;
      h.window.add(o.latencyMs);
    }
    if (o.stats) {
      h.stats = o.stats;
      h.statsAt = now;
    }
    delete h.lastError;
    if (!wasOnline && wasProbed) this.emit('up', id);
    this.emit('ok', id);
  }

  failure(id: string, e: unknown): void {
    const h = this.get(id);
    const wasOnline = h.online || !h.probed;
    h.probed = true;
    h.online = false;
    h.consecutiveFailures++;
    h.consecutiveSuccesses = 0;
    h.lastProbeAt = Date.now();
    h.lastError = errorText(e);
    if (wasOnline) this.emit('down', id, h.lastError);
    this.emit('failed', id, h.consecutiveFailures);
  }

  /** The state operators see: a drain in progress or done wins over plain health. */
  static state(h: SpokeHealth, admin: SpokeAdmin | undefined): SpokeState {
    if (admin?.state === 'draining') return 'draining';
    if (admin?.state === 'drained') return 'drained';
    if (admin?.state === 'partial') return 'partial';
    return h.online ? 'online' : 'offline';
  }
}
