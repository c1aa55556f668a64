import { createHmac, timingSafeEqual } from 'node:crypto';
import { backoffWindow, errorText, type Logger } from '@axle/shared';
import type { WebhookConfig } from '../daemon/config.js';
import type { Delivery, HubEvent } from './model.js';
import type { HubStore } from './state.js';

export const SIGNATURE_HEADER = 'x-axle-signature';
export const TIMESTAMP_HEADER = 'x-axle-timestamp';

/**
 * `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The timestamp is signed too so
 * a receiver can refuse an old delivery replayed to it.
 */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** For receivers (and tests): constant-time check of a delivery's signature header. */
export function verifyWebhook(secret: string, timestamp: string, body: string, header: string): boolean {
  const want = Buffer.from(signWebhook(secret, timestamp, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Sends each event to the webhooks subscribed to its type as a signed JSON POST, retrying
 * with exponential backoff (backoff, 2x, 4x ...) up to max_attempts. Every attempt's outcome
 * is written to the delivery log the API shows.
 */
export class Webhooks {
  private hooks: readonly WebhookConfig[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inflight = new Set<AbortController>();
  private stopped = false;

  constructor(
    private readonly state: HubStore,
    private readonly log: Logger,
  ) {}

  configure(hooks: readonly WebhookConfig[]): void {
    this.hooks = hooks;
  }

  onEvent(ev: HubEvent): void {
    if (this.stopped) return;
    this.hooks.forEach((hook, i) => {
      if (!hook.events.includes(ev.type)) return;
      const now = Date.now();
      const d: Delivery = {
        id: `${String(ev.seq).padStart(12, '0')}.${i}`,
        eventSeq: ev.seq,
        type: ev.type,
        url: hook.url,
        status: 'pending',
        attempts: 0,
        createdAt: now,
        updatedAt: now,
      };
      const body = JSON.stringify({
        id: d.id,
        seq: ev.seq,
        type: ev.type,
        at: new Date(ev.at).toISOString(),
        data: ev.data,
      });
      void this.save(d).then(() => this.attempt(hook, d, body));
    });
  }

  private async save(d: Delivery): Promise<void> {
    try {
      await this.state.apply({ kind: 'delivery.put', delivery: { ...d } });
    } catch (e) {
      if (!this.stopped) this.log.warn({ delivery: d.id, err: errorText(e) }, 'could not record webhook delivery');
    }
  }

  private async attempt(hook: WebhookConfig, d: Delivery, body: string): Promise<void> {
    if (this.stopped) return;
    d.attempts++;
    const ts = String(Math.floor(Date.now() / 1000));
    const ctl = new AbortController();
    this.inflight.add(ctl);
    const timer = setTimeout(() => ctl.abort(), hook.timeout);
    let ok = false;
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        body,
        signal: ctl.signal,
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'axle-hub',
          'x-axle-event': d.type,
          'x-axle-delivery': d.id,
          [TIMESTAMP_HEADER]: ts,
          [SIGNATURE_HEADER]: signWebhook(hook.secret, ts, body),
        },
      });
      await res.arrayBuffer().catch(() => undefined);
      d.lastStatus = res.status;
      ok = res.status >= 200 && res.status < 300;
      if (ok) delete d.lastError;
      else d.lastError = `HTTP ${res.status}`;
    } catch (e) {
      d.lastError = ctl.signal.aborted ? `no answer within ${hook.timeout} ms` : errorText(e);
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ctl);
    }
    if (this.stopped) return;
    d.updatedAt = Date.now();
    if (ok) {
      d.status = 'delivered';
      delete d.nextAttemptAt;
    } else if (d.attempts >= hook.max_attempts) {
      d.status = 'failed';
      delete d.nextAttemptAt;
      this.log.warn(
        { delivery: d.id, url: hook.url, attempts: d.attempts, err: d.lastError },
        'webhook delivery failed; giving up',
      );
    } else {
      const wait = backoffWindow(d.attempts - 1, { initialMs: hook.backoff });
      d.status = 'retrying';
      d.nextAttemptAt = Date.now() + wait;
      const t = setTimeout(() => {
        this.timers.delete(t);
        void this.attempt(hook, d, body);
      }, wait);
      this.timers.add(t);
    }
    await this.save(d);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inflight) c.abort();
  }
}
