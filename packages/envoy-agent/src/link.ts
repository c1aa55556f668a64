import { EventEmitter } from 'node:events';
import {
  AxleError,
  ErrorCode,
  connectPeer,
  errorText,
  isAxleError,
  type Connection,
  type KeyPair,
  type Logger,
  type Message,
  type MessageOf,
  type SpokeTarget,
  type TermProof,
  Codec,
  fitRun,
  verifyTermProof,
} from '@axle/shared';
import { caOf, type EnvoyConfig } from './config.js';
import { askHubs, assignmentFrom } from './hub.js';
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
  /** The spoke serves a config version other than the applied one (fetching bundles: issue 6). */
  onConfigVersion?(version: number, conn: Connection): void;
  random?: () => number;
  /** A job order from the spoke (tasks.ts): answered with the job's result. */
  onJobRun?(m: MessageOf<'job_run'>): Promise<Message>;
}

type End = { kind: 'closed' | 'failed' | 'redirected' | 'locate' | 'stopped'; reason: string };

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
 * Exponential backoff with full jitter: uniformly anywhere in [0, min(max, initial * 2^attempt)).
 * Spreads a dead spoke's envoys over the whole window instead of in synchronised waves.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  return random() * Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/** Measures reports for fitting; sizes do not depend on limits, so one serves every link. */
const sizer = new Codec();

/** Errors that mean "this spoke does not (or no longer) own you": ask the hub rather than retry. */
const NOT_OWNER = new Set<string>([
  ErrorCode.UNKNOWN_KEY,
  ErrorCode.UNKNOWN_ENVOY,
  ErrorCode.STALE_EPOCH,
  ErrorCode.UNTRUSTED,
]);
/** A report the spoke will never accept as it stands. */
const INVALID_REPORT = new Set<string>([ErrorCode.BAD_MESSAGE, ErrorCode.INVALID]);

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
  private conn: Connection | undefined;
  private connTarget: SpokeTarget | undefined;
  private endSession: ((e: End) => void) | undefined;
  /** Set once the current session's end is decided: later replies on it change nothing. */
  private ending = false;
  private needLocate = false;
  private sentDigest: string | undefined;
  private flushing = false;
  /** The connection on which reports ride on check-ins (until its spoke refuses that form). */
  private coalesce: Connection | undefined;
  private flushAgain = false;
  private wake: (() => void) | undefined;
  /** The largest report the current spoke stores (its check-in answer says); reports are fitted to it. */
  private spokeReportLimit: number | undefined;
  /** A locate has answered since start, so whatever hub keys exist are known. */
  private keysAsked = false;
  /** Set when the last locate found the envoy unknown to the hub (needs re-enrolling). */
  lastError: string | undefined;

  constructor(private readonly host: LinkHost) {
    super();
  }

  get connected(): { spokeId: string; addr: string } | undefined {
    return this.conn?.isOpen && this.connTarget
      ? { spokeId: this.connTarget.spokeId, addr: this.connTarget.addr }
      : undefined;
  }

  start(): void {
    this.loopDone ??= this.loop().catch((e: unknown) =>
      this.host.log.error({ err: errorText(e) }, 'spoke link loop crashed'),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCtl.abort();
    this.endSession?.({ kind: 'stopped', reason: 'stopping' });
    this.wake?.();
    await this.loopDone;
  }

  /**
   * A request to the spoke this envoy is connected to (secret fetches), waiting up to
   * `timeoutMs` for a connection when there is none yet (a run right after start).
   */
  async request(msg: Message, timeoutMs: number): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    while (!this.conn?.isOpen) {
      if (this.stopped || Date.now() >= deadline) {
        throw new AxleError(ErrorCode.UNREACHABLE, 'not connected to a spoke now; the next run tries again');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.conn.request(msg, Math.max(1000, deadline - Date.now()));
  }

  /** New reports are in the spool: send them now if connected. */
  kick(): void {
    const c = this.conn;
    if (c?.isOpen) void this.flush(c);
  }

  /** Check in now (e.g. after traits changed or a reload) instead of at the next interval. */
  checkinSoon(): void {
    const c = this.conn;
    if (c?.isOpen) void this.checkin(c).then((end) => this.finish(c, end));
    else this.wake?.();
  }

  /** Replies that arrive on a connection that is no longer current (or already ending) are ignored. */
  private live(conn: Connection): boolean {
    return this.conn === conn && !this.ending;
  }

  /** Ends the session of `conn` (if still current). Stale replies never get this far: see live(). */
  private finish(conn: Connection, end: End | undefined): void {
    if (!end || this.conn !== conn) return;
    this.ending = true;
    this.endSession?.(end);
  }

  private backoff(attempt: number): number {
    const c = this.host.config();
    return backoffDelay(attempt, c.backoff_initial, c.backoff_max, this.host.random ?? Math.random);
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
    const log = this.host.log;
    let failures = 0;
    let attempt = 0;
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
          delay = this.backoff(attempt++);
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
        delay = this.backoff(attempt++);
        continue;
      }
      const { end, established } = await this.session(conn, a.target);
      if (established) {
        attempt = 0;
        failures = 0;
      }
      if (end.kind === 'stopped') break;
      if (end.kind === 'redirected' || end.kind === 'locate') {
        // Followed at once; only a redirect loop (spokes sending the envoy back and forth) slows down.
        redirects = established ? 1 : redirects + 1;
        if (end.kind === 'locate') this.needLocate = true;
        if (redirects > 3) delay = this.backoff(attempt++);
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
      delay = this.backoff(established ? 0 : attempt++);
    }
  }

  private connect(target: SpokeTarget): Promise<Connection> {
    const c = this.host.config();
    return connectPeer(target.addr, {
      id: c.hostname,
      role: 'envoy',
      keyPair: this.host.keyPair,
      expectServerKey: target.pubkey,
      ca: caOf(c),
      requestTimeoutMs: c.request_timeout,
      handshakeTimeoutMs: Math.min(c.request_timeout, 10_000),
      keepaliveMs: c.keepalive,
      signal: this.stopCtl.signal,
    });
  }

  /** Asks the hubs where this envoy belongs; true once an assigned target is stored. */
  private async locate(): Promise<boolean> {
    const c = this.host.config();
    const a = this.host.store.assignment;
    const addrs = [...new Set([...c.hub_addrs, ...(a?.hubAddrs ?? [])])];
    try {
      const reply = await askHubs(
        {
          hostname: c.hostname,
          keyPair: this.host.keyPair,
          hubAddrs: addrs,
          timeoutMs: c.request_timeout,
          log: this.host.log,
          signal: this.stopCtl.signal,
          trustedKeys: this.host.store.trustedHubKeys(c.hub_pubkeys),
          ca: caOf(c),
        },
        { type: 'locate', hostname: c.hostname },
        a?.term ?? 0,
      );
      await this.host.store.saveAssignment(assignmentFrom(reply, a, c.hub_addrs));
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

  /** One connection's life: check in, send the spool, check in every interval, until it ends. */
  private async session(conn: Connection, target: SpokeTarget): Promise<{ end: End; established: boolean }> {
    const log = this.host.log;
    this.conn = conn;
    this.connTarget = target;
    this.sentDigest = undefined;
    this.coalesce = conn;
    this.ending = false;
    conn.onEvent = (m) => {
      if (m.type === 'run_now') this.host.onRunNow(m.reason || 'spoke asked');
    };
    conn.onRequest = (m) => {
      if (m.type === 'job_run' && this.host.onJobRun) return this.host.onJobRun(m);
      if (m.type === 'run_now') {
        this.host.onRunNow(m.reason || 'spoke asked');
        return { type: 'ok' };
      }
      throw new AxleError(ErrorCode.INVALID, `envoy does not take ${m.type} requests`);
    };
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<End>((resolve) => {
      this.endSession = resolve;
      void conn.closed.then((info) => resolve({ kind: 'closed', reason: `${info.code} ${info.reason}`.trim() }));
    });
    let established = false;
    try {
      const first = await Promise.race([this.checkin(conn), ended]);
      if (first) return { end: first, established };
      established = true;
      this.emit('connected', target.spokeId, target.addr);
      log.info({ spoke: target.spokeId, addr: target.addr }, 'connected to spoke');
      void this.flush(conn);
      timer = setInterval(() => {
        void this.checkin(conn).then((end) => this.finish(conn, end));
      }, this.host.config().checkin_interval);
      const end = await ended;
      if (end.kind !== 'stopped') log.info({ spoke: target.spokeId, why: end.kind, reason: end.reason }, 'left spoke');
      return { end, established };
    } finally {
      if (timer) clearInterval(timer);
      this.endSession = undefined;
      this.conn = undefined;
      conn.onEvent = undefined;
      conn.onRequest = undefined;
      conn.close();
      if (established) this.emit('disconnected', target.spokeId, 'session ended');
    }
  }

  /** Returns undefined when the spoke accepted the check-in, else why the session must end. */
  private async checkin(conn: Connection): Promise<End | undefined> {
    const c = this.host.config();
    const a = this.host.store.assignment;
    if (!a) return { kind: 'locate', reason: 'no assignment' };
    const t = this.host.traits();
    const sendTraits = t !== undefined && t.digest !== this.sentDigest;
    let reply: Message;
    try {
      reply = await conn.request({
        type: 'checkin',
        hostname: c.hostname,
        epoch: a.epoch,
        term: a.term,
        configVersion: this.host.configVersion(),
        ...(sendTraits ? { traits: t.traits } : {}),
      });
    } catch (e) {
      return this.live(conn) ? this.requestFailed(e, 'check-in') : undefined;
    }
    if (!this.live(conn)) return undefined;
    const end = await this.checkedIn(conn, reply);
    if (!end && sendTraits) this.sentDigest = t.digest;
    return end;
  }

  /** What a check-in's answer (with or without a report on it) tells this envoy; undefined when the session goes on. */
  private async checkedIn(conn: Connection, reply: Message): Promise<End | undefined> {
    if (reply.type === 'redirect') {
      // Decided here, before any await, so a second redirect on this session is ignored.
      this.ending = true;
      return this.redirected(reply);
    }
    if (reply.type !== 'checkin_ok') return { kind: 'failed', reason: `spoke answered a check-in with ${reply.type}` };
    if (reply.maxReportBytes !== undefined) this.spokeReportLimit = reply.maxReportBytes;
    const proven = this.provenTerm(reply.termProof);
    if (proven > (this.host.store.assignment?.term ?? 0)) await this.host.store.raiseTerm(proven);
    if (reply.runNow) this.host.onRunNow('spoke asked at check-in');
    if (reply.configVersion !== this.host.configVersion()) this.host.onConfigVersion?.(reply.configVersion, conn);
    return undefined;
  }

  /** The term a hub-signed proof from a trusted key vouches for; 0 when there is none or it does not verify. */
  private provenTerm(p: TermProof | undefined): number {
    if (!p) return 0;
    const trusted = this.host.store.trustedHubKeys(this.host.config().hub_pubkeys);
    if (verifyTermProof(p, trusted)) return p.term;
    this.host.log.warn({ term: p.term }, 'ignoring a term proof not signed by a trusted hub key');
    return 0;
  }

  private requestFailed(e: unknown, what: string): End {
    if (isAxleError(e) && NOT_OWNER.has(e.code)) return { kind: 'locate', reason: `${what}: ${errorText(e)}` };
    return { kind: 'failed', reason: `${what}: ${errorText(e)}` };
  }

  private async redirected(r: MessageOf<'redirect'>): Promise<End> {
    const log = this.host.log;
    const a = this.host.store.assignment;
    const term = a?.term ?? 0;
    if (r.term < term) {
      log.warn({ term: r.term, seen: term, reason: r.reason }, 'ignoring a redirect from a lower hub term');
      this.emit('fenced', r.term, term);
      return { kind: 'failed', reason: `redirect from stale term ${r.term}` };
    }
    this.emit('redirected', r.to, r.reason);
    // The spoke's own word on the term counts for nothing: only a hub's signature raises it.
    const proven = this.provenTerm(r.termProof);
    if (!r.to || (a && r.epoch < a.epoch)) {
      await this.host.store.raiseTerm(proven);
      log.info({ reason: r.reason }, 'spoke redirected this envoy to the hub');
      return { kind: 'locate', reason: r.reason };
    }
    await this.host.store.saveAssignment({
      status: 'assigned',
      target: r.to,
      epoch: r.epoch,
      term: Math.max(term, proven),
      hubAddrs: a?.hubAddrs ?? [...this.host.config().hub_addrs],
      ...(a?.hubKeys ? { hubKeys: a.hubKeys } : {}),
      updatedAt: Date.now(),
    });
    log.info({ to: r.to.spokeId, addr: r.to.addr, epoch: r.epoch, reason: r.reason }, 'redirected to another spoke');
    return { kind: 'redirected', reason: r.reason };
  }

  /**
   * Sends spooled reports oldest first; each leaves the spool only on the spoke's ack. Each
   * rides on a check-in (one frame and one signature each way); a spoke that refuses that form
   * (older than it) gets them as `report` for the rest of the session.
   */
  private async flush(conn: Connection): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    const { spool, log } = this.host;
    try {
      do {
        this.flushAgain = false;
        for (;;) {
          const batch = await spool.peek(32);
          if (batch.length === 0) break;
          for (let i = 0; i < batch.length; i++) {
            const { name, run } = batch[i]!;
            if (this.conn !== conn || !conn.isOpen) return;
            const a = this.host.store.assignment;
            if (!a) return;
            const hostname = this.host.config().hostname;
            // Fitted to what this spoke stores; the spool keeps the run as it was.
            const fitted = this.spokeReportLimit ? fitRun(run, this.spokeReportLimit, sizer) : run;
            const coalesced = this.coalesce === conn;
            let reply: Message;
            try {
              reply = await conn.request(
                coalesced
                  ? {
                      type: 'checkin',
                      hostname,
                      epoch: a.epoch,
                      term: a.term,
                      configVersion: this.host.configVersion(),
                      run: fitted,
                    }
                  : { type: 'report', hostname, epoch: a.epoch, run: fitted },
              );
            } catch (e) {
              if (coalesced && isAxleError(e, ErrorCode.BAD_MESSAGE)) {
                // Refused as a whole: an older spoke, or a run it would refuse anyway. Either way the
                // plain report says which (and rejects a bad run below).
                this.coalesce = undefined;
                log.debug({ err: errorText(e) }, 'spoke refused a report on a check-in; sending reports alone');
                i--;
                continue;
              }
              if (isAxleError(e) && INVALID_REPORT.has(e.code)) {
                await spool.reject(name, errorText(e));
                continue;
              }
              this.finish(conn, this.requestFailed(e, 'report'));
              return;
            }
            const ack = reply.type === 'ack' ? reply : reply.type === 'checkin_ok' ? reply.ack : undefined;
            if (ack && ack.runId === run.id) {
              // Acknowledged means stored, whatever happened to the session meanwhile.
              await spool.remove(name);
              log.debug({ run: run.id, duplicate: ack.duplicate }, 'report acknowledged');
              this.emit('acked', run.id, ack.duplicate);
              if (reply.type === 'checkin_ok' && this.live(conn)) this.finish(conn, await this.checkedIn(conn, reply));
              continue;
            }
            if (!this.live(conn)) return;
            if (reply.type === 'redirect') {
              this.ending = true;
              this.finish(conn, await this.redirected(reply));
              return;
            }
            this.finish(conn, { kind: 'failed', reason: `spoke answered a report with ${reply.type}` });
            return;
          }
        }
      } while (this.flushAgain);
    } catch (e) {
      log.error({ err: errorText(e) }, 'sending spooled reports failed');
    } finally {
      this.flushing = false;
    }
  }
}
