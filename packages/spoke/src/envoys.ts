import {
  AxleError,
  CloseCode,
  ErrorCode,
  errorText,
  fingerprint,
  requireCanonicalEnvoyId,
  type Connection,
  type Json,
  type Logger,
  type Message,
  type MessageOf,
  type PeerClaim,
  type RevertOrder,
  type Run,
  type TermProof,
} from '@axle/shared';
import { createHash } from 'node:crypto';
import type { Fleet } from './fleet.js';
import type { Activity, SpokeMetrics } from './metrics.js';
import type { EnvoyRecord, Store } from './store.js';
import type { TermKeeper } from './terms.js';

export interface EnvoyServiceDeps {
  fleet: Fleet;
  store: Store;
  metrics: SpokeMetrics;
  activity: Activity;
  log: Logger;
  keepRuns: number;
  /** Reports larger than this (as framed on the wire) are refused where they arrive. */
  maxReportBytes: number;
  terms: TermKeeper;
  configVersion: () => number;
  /** A chunk of config `version` (0: the live one). */
  configBundle: (version: number, offset: number) => MessageOf<'config_bundle'>;
  /** The hub's order moving an envoy on `applied` (a withdrawn version) back to the live one. */
  revertFor: (applied: number) => RevertOrder | undefined;
  /** Asks the hub for an envoy's secrets; the answer is sealed to the envoy and passed on untouched. */
  relaySecrets: (hostname: string, names: string[]) => Promise<Message>;
}

type Redirect = MessageOf<'redirect'>;
type Ack = Omit<MessageOf<'ack'>, 'type'>;

/**
 * Serves envoy connections: check-ins, run reports and the redirects that move an envoy
 * to the spoke that owns it now. A report is acknowledged only once its write is durable,
 * and a run id is stored at most once per envoy however often it is resent.
 */
export class EnvoyService {
  /** Reports whose writes are queued but not yet durable, by hostname + run id. */
  private readonly pending = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(private readonly d: EnvoyServiceDeps) {}

  /** Handshake check: the key must be the one the hub told us to adopt for that hostname. */
  authenticate(claim: PeerClaim): { role: string } {
    requireCanonicalEnvoyId(claim.id);
    const r = this.d.fleet.get(claim.id);
    if (!r || !Buffer.from(r.pubkey).equals(Buffer.from(claim.pubkey))) {
      this.d.metrics.refusals.inc({ reason: 'unknown_key' });
      this.d.log.warn(
        { envoy: claim.id, key: fingerprint(claim.pubkey), remote: claim.remoteAddress },
        'refused envoy with unknown key',
      );
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `envoy ${claim.id} with key ${fingerprint(claim.pubkey)} is not adopted by this spoke; enroll it through the hub`,
      );
    }
    return { role: 'envoy' };
  }

  attach(conn: Connection): void {
    const hostname = conn.peer.id;
    this.d.fleet.connect(hostname);
    void conn.closed.then(() => this.d.fleet.disconnect(hostname));
    conn.attach({ onRequest: (msg, c) => this.handle(msg, c) });
  }

  private handle(msg: Message, conn: Connection): Promise<Message> | Message {
    switch (msg.type) {
      case 'checkin':
        return this.checkin(msg, conn);
      case 'report':
        return this.report(msg, conn);
      case 'config_fetch':
        return this.d.configBundle(msg.version, msg.offset ?? 0);
      case 'secret_fetch':
        this.owner(conn.peer.id, conn);
        return this.d.relaySecrets(conn.peer.id, msg.names);
      default:
        throw new AxleError(
          ErrorCode.INVALID,
          `envoys may send checkin, report, config_fetch and secret_fetch to a spoke, not ${msg.type}`,
        );
    }
  }

  /** The record for this connection's envoy, checking the message names it and the key still matches. */
  private owner(hostname: string, conn: Connection): EnvoyRecord {
    if (hostname !== conn.peer.id) {
      throw new AxleError(ErrorCode.SENDER_MISMATCH, `connection of ${conn.peer.id} sent a message for ${hostname}`);
    }
    const r = this.d.fleet.get(hostname);
    // The record's key object is remembered per connection so the common case skips a byte compare.
    if (r && conn.state === r.pubkey) return r;
    if (!r || !Buffer.from(r.pubkey).equals(Buffer.from(conn.peer.pubkey))) {
      // Re-adopted with a new key while this link was open: the old key speaks for nobody.
      setImmediate(() => conn.close(CloseCode.UNKNOWN_KEY));
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `the key of ${hostname} on this connection is no longer the adopted one; enroll again`,
      );
    }
    conn.state = r.pubkey;
    return r;
  }

  /** The hub's own proof of the term, so envoys need not take the spoke's word for it. */
  private proof(): { termProof?: TermProof } {
    const p = this.d.terms.proof;
    return p ? { termProof: p } : {};
  }

  private redirectFor(r: EnvoyRecord, epoch: number): Redirect | undefined {
    if (r.released) {
      this.d.metrics.redirects.inc({ reason: 'released' });
      return {
        type: 'redirect',
        ...(r.to ? { to: r.to } : {}),
        epoch: r.epoch,
        term: this.d.terms.current,
        ...this.proof(),
        reason: r.to
          ? `released by this spoke; ${r.hostname} now belongs to spoke ${r.to.spokeId}`
          : 'released by this spoke; ask the hub where to go',
      };
    }
    if (epoch < r.epoch) {
      this.d.metrics.redirects.inc({ reason: 'stale_epoch' });
      return {
        type: 'redirect',
        epoch: r.epoch,
        term: this.d.terms.current,
        ...this.proof(),
        reason: `assignment epoch ${epoch} is older than this spoke's ${r.epoch}; ask the hub for the current assignment`,
      };
    }
    return undefined;
  }

  private checkin(msg: MessageOf<'checkin'>, conn: Connection): Message | Promise<Message> {
    const t0 = performance.now();
    const r = this.owner(msg.hostname, conn);
    const redirect = this.redirectFor(r, msg.epoch);
    // A report riding on a redirected check-in is not stored: the envoy resends it where it is sent.
    if (redirect) return redirect;
    // Before anything changes: a check-in whose run is refused is refused whole.
    if (msg.run) this.check(msg.hostname, msg.run, conn);
    const now = Date.now();
    this.d.fleet.seen(r.hostname, now);
    if (msg.traits) this.updateTraits(r, msg.traits);
    if (msg.configVersion !== r.configVersion) this.d.fleet.set({ ...r, configVersion: msg.configVersion });
    const ms = performance.now() - t0;
    this.d.activity.checkin(ms, now);
    this.d.metrics.checkins.inc();
    this.d.metrics.checkinSeconds.observe(ms / 1000);
    const live = this.d.configVersion();
    const revert = msg.configVersion > live ? this.d.revertFor(msg.configVersion) : undefined;
    const ok: MessageOf<'checkin_ok'> = {
      type: 'checkin_ok',
      configVersion: live,
      term: this.d.terms.current,
      runNow: false,
      ...this.proof(),
      maxReportBytes: this.d.maxReportBytes,
      ...(revert ? { revert } : {}),
    };
    if (!msg.run) return ok;
    return this.store(r.hostname, msg.run, t0).then((ack) => ({ ...ok, ack }));
  }

  /** Traits are written only when they change; an unchanged set costs one hash. */
  private updateTraits(r: EnvoyRecord, traits: Record<string, Json>): void {
    const hash = createHash('sha1').update(JSON.stringify(traits)).digest('base64');
    if (hash === r.traitsHash) return;
    // Not written (nor marked written) while the disk is full: the next check-in tries again.
    if (this.d.store.lowOnSpace()) return;
    const next = { ...this.d.fleet.get(r.hostname)!, traitsHash: hash };
    this.d.fleet.set(next);
    this.d.store
      .putTraits(r.hostname, traits)
      .catch((e: unknown) => this.d.log.error({ envoy: r.hostname, err: String(e) }, 'cannot store traits'));
    this.d.store.putEnvoy(next).catch(() => undefined);
  }

  private async report(msg: MessageOf<'report'>, conn: Connection): Promise<Message> {
    const t0 = performance.now();
    const r = this.owner(msg.hostname, conn);
    this.check(msg.hostname, msg.run, conn);
    const redirect = this.redirectFor(r, msg.epoch);
    if (redirect) return redirect;
    return { type: 'ack', ...(await this.store(r.hostname, msg.run, t0)) };
  }

  /** Refuses a run that cannot be stored as sent: over the size limit, of another host, or finished before it started. */
  private check(hostname: string, run: Run, conn: Connection): void {
    // Measured as it arrived: the frame is the report plus a small envelope (and a check-in's few fields).
    if (conn.frameBytes > this.d.maxReportBytes + 1024) {
      this.d.metrics.refusals.inc({ reason: 'report_too_large' });
      throw new AxleError(
        ErrorCode.INVALID,
        `run ${run.id} is ${conn.frameBytes} bytes, over this spoke's report limit of ${this.d.maxReportBytes} (limits.max_report_bytes); nothing stored: fit it to the limit the spoke announces at check-in`,
      );
    }
    if (run.hostname !== hostname) {
      this.d.metrics.refusals.inc({ reason: 'bad_report' });
      throw new AxleError(
        ErrorCode.INVALID,
        `report from ${hostname} carries a run of ${run.hostname}; nothing stored`,
      );
    }
    if (run.finishedAt < run.startedAt) {
      this.d.metrics.refusals.inc({ reason: 'bad_report' });
      throw new AxleError(
        ErrorCode.INVALID,
        `run ${run.id} finished (${run.finishedAt}) before it started (${run.startedAt}); nothing stored`,
      );
    }
  }

  /** Stores a checked run once per run id, resolving only when it is durable (or was already stored). */
  private async store(hostname: string, run: Run, t0: number): Promise<Ack> {
    if (this.stopping) throw new AxleError(ErrorCode.CLOSED, 'spoke is shutting down; keep the report and resend it');
    this.d.fleet.seen(hostname, Date.now());

    const key = `${run.hostname}\u0000${run.id}`;
    const inFlight = this.pending.get(key);
    if (inFlight) {
      await inFlight;
      return this.ack(run.id, true, t0);
    }
    if (this.d.store.hasRun(run.hostname, run.id)) return this.ack(run.id, true, t0);
    const low = this.d.store.lowOnSpace();
    if (low) {
      this.d.log.error({ envoy: hostname, run: run.id, err: low }, 'cannot store run report');
      throw new AxleError(ErrorCode.INTERNAL, `run ${run.id} could not be stored (${low}); keep it and resend`);
    }

    const write = this.write(hostname, run);
    this.pending.set(key, write);
    try {
      await write;
    } finally {
      this.pending.delete(key);
    }
    return this.ack(run.id, false, t0);
  }

  private ack(runId: string, duplicate: boolean, t0: number): Ack {
    this.d.metrics.reports.inc({ result: duplicate ? 'duplicate' : 'stored' });
    this.d.metrics.reportSeconds.observe((performance.now() - t0) / 1000);
    return { runId, duplicate };
  }

  /**
   * Updates the in-memory record first and writes the whole record with the run, so
   * records queued in the same batch reach disk in the order their changes were made.
   */
  private async write(hostname: string, run: Run): Promise<void> {
    const cur = this.d.fleet.get(hostname)!;
    const newer = run.finishedAt >= cur.lastRunAt;
    const next: EnvoyRecord = {
      ...cur,
      runCount: cur.runCount + 1,
      ...(newer ? { compliance: run.compliant ? 'compliant' : 'noncompliant', lastRunAt: run.finishedAt } : {}),
    };
    const { writes, removed } = this.d.store.queueRun(next, run, this.d.keepRuns);
    this.d.fleet.set(next);
    this.d.fleet.dirty.delete(hostname);
    if (removed > 0) this.d.metrics.runsExpired.inc(removed);
    try {
      await this.d.store.durable(writes);
    } catch (e) {
      // The batch did not commit: fall back to what is on disk so memory does not claim it.
      const onDisk = this.d.store.getEnvoy(hostname);
      if (onDisk) this.d.fleet.set(onDisk);
      this.d.log.error({ envoy: hostname, run: run.id, err: errorText(e) }, 'cannot store run report');
      throw new AxleError(
        ErrorCode.INTERNAL,
        `run ${run.id} could not be stored (${errorText(e)}); keep it and resend`,
      );
    }
  }

  /** Refuses new reports and waits for every queued one to be durable (and acknowledged). */
  async drain(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.pending.values()]);
  }
}
