import { EventEmitter } from 'node:events';
import {
  AxleError,
  Backoff,
  ErrorCode,
  Link,
  errorText,
  isAxleError,
  type Connection,
  type KeyPair,
  type Logger,
  type Message,
  type MessageOf,
  type RevertOrder,
  type SpokeTarget,
} from '@axle/shared';
import { caOf, type EnvoyConfig } from './config.js';
import { assignFromHubs } from './hub.js';
import { NOT_OWNER, SpokeSession } from './session.js';
import type { Spool } from './spool.js';
import type { StateStore } from './state.js';
import type { Traits } from './traits.js';

/** What the link needs from the envoy that owns it. */
export interface LinkHost {
  config(): EnvoyConfig;
  keyPair: KeyPair;
  store: StateStore;
  spool: Spool;
  log: Logger;
  /** The traits to send, and their digest; sent on a new connection and whenever the digest changes. */
  traits(): { traits: Traits; digest: string } | undefined;
  configVersion(): number;
  onRunNow(reason: string): void;
  /** The spoke serves a config version other than the applied one; `revert` is the hub's order to move down to it. */
  onConfigVersion?(version: number, conn: Connection, revert?: RevertOrder): void;
  random?: () => number;
  /** A job order from the spoke (tasks.ts): answered with the job's result. */
  onJobRun?(m: MessageOf<'job_run'>): Promise<Message>;
}

export interface LinkEvents {
  connected: [spokeId: string, addr: string];
  disconnected: [spokeId: string, reason: string];
  redirected: [to: SpokeTarget | undefined, reason: string];
  located: [target: SpokeTarget | undefined, status: string];
  acked: [runId: string, duplicate: boolean];
  /** An order from a lower hub term than already seen was ignored. */
  fenced: [term: number, seen: number];
}

/**
 * Keeps this envoy attached to the spoke that owns it. Follows redirects at once, and after
 * `failures_before_locate` consecutive failures asks the hub (every hub address) where to
 * go, backing off exponentially with full jitter so a dead spoke's envoys do not stampede
 * the hub or their new spoke. Obeys only the highest hub term it has seen.
 */
export class SpokeLink extends EventEmitter<LinkEvents> {
  private stopped = false;
  private readonly stopCtl = new AbortController();
  private loopDone: Promise<void> | undefined;
  /** The shared link to the spoke assigned now; replaced when the assignment names another. */
  private link: { key: string; link: Link } | undefined;
  private session: SpokeSession | undefined;
  private needLocate = false;
  private wake: (() => void) | undefined;
  /** The largest report the current spoke stores (its check-in answer says); reports are fitted to it. */
  private readonly spokeLimits: { reportLimit?: number } = {};
  /** A locate has answered since start, so whatever hub keys exist are known. */
  private keysAsked = false;
  /** Set when the last locate found the envoy unknown to the hub (needs re-enrolling). */
  lastError: string | undefined;

  constructor(private readonly host: LinkHost) {
    super();
  }

  get connected(): { spokeId: string; addr: string } | undefined {
    const t = this.session?.conn.isOpen ? this.session.target : undefined;
    return t ? { spokeId: t.spokeId, addr: t.addr } : undefined;
  }

  start(): void {
    this.loopDone ??= this.loop().catch((e: unknown) =>
      this.host.log.error({ err: errorText(e) }, 'spoke link loop crashed'),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCtl.abort();
    this.session?.stop();
    this.wake?.();
    await Promise.all([this.loopDone, this.link?.link.close()]);
  }

  /**
   * A request to the spoke this envoy is connected to (secret fetches), waiting up to
   * `timeoutMs` for a connection when there is none yet (a run right after start).
   */
  async request(msg: Message, timeoutMs: number): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    let conn: Connection | undefined;
    while (!(conn = this.session?.conn)?.isOpen) {
      if (this.stopped || Date.now() >= deadline) {
        throw new AxleError(ErrorCode.UNREACHABLE, 'not connected to a spoke now; the next run tries again');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return conn.request(msg, Math.max(1000, deadline - Date.now()));
  }

  /** New reports are in the spool: send them now if connected. */
  kick(): void {
    if (this.session?.conn.isOpen) void this.session.flush();
  }

  /** Check in now (e.g. after traits changed or a reload) instead of at the next interval. */
  checkinSoon(): void {
    if (this.session?.conn.isOpen) void this.session.checkinNow();
    else this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    const host = this.host;
    const log = host.log;
    let failures = 0;
    // Read at each retry: a reload may change the window.
    const backoff = new Backoff({
      get initialMs() {
        return host.config().backoff_initial;
      },
      get maxMs() {
        return host.config().backoff_max;
      },
      random: host.random ?? Math.random,
    });
    let redirects = 0;
    let delay = 0;
    while (!this.stopped) {
      if (delay > 0) await this.sleep(delay);
      if (this.stopped) break;
      delay = 0;
      const a = this.host.store.assignment;
      // Without a hub key to check terms and bundles against, ask a hub first: its answer lists them.
      const keyless = !this.keysAsked && !this.host.config().hub_pubkeys?.length && !a?.hubKeys?.length;
      if (this.needLocate || keyless || !a?.target || a.status !== 'assigned') {
        if (await this.locate()) {
          this.needLocate = false;
          failures = 0;
        } else {
          delay = backoff.next();
        }
        continue;
      }
      let conn: Connection;
      try {
        conn = await this.connect(a.target);
      } catch (e) {
        if (this.stopped) break;
        failures += 1;
        log.warn({ spoke: a.target.spokeId, addr: a.target.addr, failures, err: errorText(e) }, 'cannot reach spoke');
        if (isAxleError(e) && NOT_OWNER.has(e.code)) this.needLocate = true;
        if (failures >= this.host.config().failures_before_locate) {
          this.needLocate = true;
          failures = 0;
        }
        delay = backoff.next();
        continue;
      }
      this.session = new SpokeSession(conn, a.target, this.host, this, this.spokeLimits);
      const { end, established } = await this.session.run();
      this.session = undefined;
      if (established) {
        backoff.reset();
        failures = 0;
      }
      if (end.kind === 'stopped') break;
      if (end.kind === 'redirected' || end.kind === 'locate') {
        // Followed at once; only a redirect loop (spokes sending the envoy back and forth) slows down.
        redirects = established ? 1 : redirects + 1;
        if (end.kind === 'locate') this.needLocate = true;
        if (redirects > 3) delay = backoff.next();
        continue;
      }
      redirects = 0;
      if (!established || end.kind === 'failed') {
        failures += 1;
        if (failures >= this.host.config().failures_before_locate) {
          this.needLocate = true;
          failures = 0;
        }
      }
      delay = established ? backoff.at(0) : backoff.next();
    }
  }

  /** Dials `target` over the shared link, made anew when the assignment (or a reload) changes what to dial. */
  private connect(target: SpokeTarget): Promise<Connection> {
    const c = this.host.config();
    const key = `${target.addr} ${Buffer.from(target.pubkey).toString('base64')} ${c.request_timeout} ${c.keepalive}`;
    let link = this.link?.key === key ? this.link.link : undefined;
    if (!link) {
      void this.link?.link.close();
      link = new Link({
        name: `spoke ${target.spokeId}`,
        addrs: [target.addr],
        id: c.hostname,
        role: 'envoy',
        keyPair: this.host.keyPair,
        serverKey: target.pubkey,
        ca: () => caOf(this.host.config()),
        requestTimeoutMs: c.request_timeout,
        keepaliveMs: c.keepalive,
        handlers: {
          onEvent: (m) => {
            if (m.type === 'run_now') this.host.onRunNow(m.reason || 'spoke asked');
          },
          onRequest: (m) => {
            if (m.type === 'job_run' && this.host.onJobRun) return this.host.onJobRun(m);
            if (m.type === 'run_now') {
              this.host.onRunNow(m.reason || 'spoke asked');
              return { type: 'ok' };
            }
            throw new AxleError(ErrorCode.INVALID, `envoy does not take ${m.type} requests`);
          },
        },
      });
      this.link = { key, link };
    }
    return link.connection(Math.min(c.request_timeout, 10_000));
  }

  /** Asks the hubs where this envoy belongs; true once an assigned target is stored. */
  private async locate(): Promise<boolean> {
    const { host } = this;
    const c = host.config();
    try {
      const { reply } = await assignFromHubs(
        { config: c, keyPair: host.keyPair, store: host.store, log: host.log, signal: this.stopCtl.signal },
        { type: 'locate', hostname: c.hostname },
      );
      this.keysAsked = true;
      this.lastError = undefined;
      this.emit('located', reply.target, reply.status);
      this.host.log.info(
        {
          status: reply.status,
          spoke: reply.target?.spokeId,
          addr: reply.target?.addr,
          epoch: reply.epoch,
          term: reply.term,
        },
        'hub located this envoy',
      );
      return reply.status === 'assigned' && reply.target !== undefined;
    } catch (e) {
      if (this.stopped) return false;
      this.lastError = errorText(e);
      const unknown = isAxleError(e, ErrorCode.UNKNOWN_ENVOY) || isAxleError(e, ErrorCode.UNKNOWN_KEY);
      this.host.log[unknown ? 'error' : 'warn'](
        { err: this.lastError },
        unknown
          ? 'the hub does not know this envoy (or its key changed); enroll it again with a join token'
          : 'no hub could locate this envoy; will retry',
      );
      return false;
    }
  }
}
