import type { EventEmitter } from 'node:events';
import {
  Codec,
  ErrorCode,
  errorText,
  fitRun,
  isAxleError,
  verifyTermProof,
  type Connection,
  type Message,
  type MessageOf,
  type SpokeTarget,
  type TermProof,
} from '@axle/shared';
import { assignmentFrom } from './hub.js';
import type { LinkEvents, LinkHost } from './link.js';

/** Why a session ended, which decides what the link does next. */
export type End = { kind: 'closed' | 'failed' | 'redirected' | 'locate' | 'stopped'; reason: string };

/** Measures reports for fitting; sizes do not depend on limits, so one serves every session. */
const sizer = new Codec();

/** Errors that mean "this spoke does not (or no longer) own you": ask the hub rather than retry. */
export const NOT_OWNER = new Set<string>([
  ErrorCode.UNKNOWN_KEY,
  ErrorCode.UNKNOWN_ENVOY,
  ErrorCode.STALE_EPOCH,
  ErrorCode.UNTRUSTED,
]);
/** A report the spoke will never accept as it stands. */
const INVALID_REPORT = new Set<string>([ErrorCode.BAD_MESSAGE, ErrorCode.INVALID]);

/**
 * One connection's life with the spoke that owns this envoy: check in, send the spool oldest
 * first, check in every interval, follow a redirect, until the connection ends. Obeys only
 * the highest hub term it has seen. Replies that arrive once its end is decided change nothing.
 */
export class SpokeSession {
  /** Set once the session's end is decided: later replies on it change nothing. */
  private ending = false;
  /** Set when the session is over (the connection is being closed). */
  private over = false;
  private sentDigest: string | undefined;
  private flushing = false;
  private flushAgain = false;
  /** Reports ride on check-ins until this spoke refuses that form (an older spoke). */
  private coalesce = true;
  private endSession: ((e: End) => void) | undefined;

  constructor(
    readonly conn: Connection,
    readonly target: SpokeTarget,
    private readonly host: LinkHost,
    private readonly events: EventEmitter<LinkEvents>,
    /** Kept by the link across sessions: the largest report the spoke said it stores. */
    private readonly shared: { reportLimit?: number },
  ) {}

  /** Runs the session to its end; `established` once the spoke accepted the first check-in. */
  async run(): Promise<{ end: End; established: boolean }> {
    const { conn, target } = this;
    const log = this.host.log;
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<End>((resolve) => {
      this.endSession = resolve;
      void conn.closed.then((info) => resolve({ kind: 'closed', reason: `${info.code} ${info.reason}`.trim() }));
    });
    let established = false;
    try {
      const first = await Promise.race([this.checkin(), ended]);
      if (first) return { end: first, established };
      established = true;
      this.events.emit('connected', target.spokeId, target.addr);
      log.info({ spoke: target.spokeId, addr: target.addr }, 'connected to spoke');
      void this.flush();
      timer = setInterval(() => void this.checkinNow(), this.host.config().checkin_interval);
      const end = await ended;
      if (end.kind !== 'stopped') log.info({ spoke: target.spokeId, why: end.kind, reason: end.reason }, 'left spoke');
      return { end, established };
    } finally {
      if (timer) clearInterval(timer);
      this.endSession = undefined;
      this.over = true;
      conn.close();
      if (established) this.events.emit('disconnected', target.spokeId, 'session ended');
    }
  }

  /** Ends the session now (the envoy is stopping). */
  stop(): void {
    this.endSession?.({ kind: 'stopped', reason: 'stopping' });
  }

  /** Checks in now, ending the session if the spoke's answer says so. */
  async checkinNow(): Promise<void> {
    this.finish(await this.checkin());
  }

  /** Replies that arrive once the session is over (or its end decided) are ignored. */
  private live(): boolean {
    return !this.over && !this.ending;
  }

  /** Ends the session (if not over). Stale replies never get this far: see live(). */
  private finish(end: End | undefined): void {
    if (!end || this.over) return;
    this.ending = true;
    this.endSession?.(end);
  }

  /** Returns undefined when the spoke accepted the check-in, else why the session must end. */
  async checkin(): Promise<End | undefined> {
    const conn = this.conn;
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
      return this.live() ? this.requestFailed(e, 'check-in') : undefined;
    }
    if (!this.live()) return undefined;
    const end = await this.checkedIn(reply);
    if (!end && sendTraits) this.sentDigest = t.digest;
    return end;
  }

  /** What a check-in's answer (with or without a report on it) tells this envoy; undefined when the session goes on. */
  private async checkedIn(reply: Message): Promise<End | undefined> {
    const conn = this.conn;
    if (reply.type === 'redirect') {
      // Decided here, before any await, so a second redirect on this session is ignored.
      this.ending = true;
      return this.redirected(reply);
    }
    if (reply.type !== 'checkin_ok') return { kind: 'failed', reason: `spoke answered a check-in with ${reply.type}` };
    if (reply.maxReportBytes !== undefined) this.shared.reportLimit = reply.maxReportBytes;
    const proven = this.provenTerm(reply.termProof);
    if (proven > (this.host.store.assignment?.term ?? 0)) await this.host.store.raiseTerm(proven);
    if (reply.runNow) this.host.onRunNow('spoke asked at check-in');
    if (reply.configVersion !== this.host.configVersion())
      this.host.onConfigVersion?.(reply.configVersion, conn, reply.revert);
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
      this.events.emit('fenced', r.term, term);
      return { kind: 'failed', reason: `redirect from stale term ${r.term}` };
    }
    this.events.emit('redirected', r.to, r.reason);
    // The spoke's own word on the term counts for nothing: only a hub's signature raises it.
    const proven = this.provenTerm(r.termProof);
    if (!r.to || (a && r.epoch < a.epoch)) {
      await this.host.store.raiseTerm(proven);
      log.info({ reason: r.reason }, 'spoke redirected this envoy to the hub');
      return { kind: 'locate', reason: r.reason };
    }
    await this.host.store.saveAssignment(
      assignmentFrom(
        { status: 'assigned', target: r.to, epoch: r.epoch, term: proven },
        a,
        this.host.config().hub_addrs,
      ),
    );
    log.info({ to: r.to.spokeId, addr: r.to.addr, epoch: r.epoch, reason: r.reason }, 'redirected to another spoke');
    return { kind: 'redirected', reason: r.reason };
  }

  /**
   * Sends spooled reports oldest first; each leaves the spool only on the spoke's ack. Each
   * rides on a check-in (one frame and one signature each way); a spoke that refuses that form
   * (older than it) gets them as `report` for the rest of the session.
   */
  async flush(): Promise<void> {
    const conn = this.conn;
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
            if (this.over || !conn.isOpen) return;
            const a = this.host.store.assignment;
            if (!a) return;
            const hostname = this.host.config().hostname;
            // Fitted to what this spoke stores; the spool keeps the run as it was.
            const fitted = this.shared.reportLimit ? fitRun(run, this.shared.reportLimit, sizer) : run;
            const coalesced = this.coalesce;
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
                this.coalesce = false;
                log.debug({ err: errorText(e) }, 'spoke refused a report on a check-in; sending reports alone');
                i--;
                continue;
              }
              if (isAxleError(e) && INVALID_REPORT.has(e.code)) {
                await spool.reject(name, errorText(e));
                continue;
              }
              this.finish(this.requestFailed(e, 'report'));
              return;
            }
            const ack = reply.type === 'ack' ? reply : reply.type === 'checkin_ok' ? reply.ack : undefined;
            if (ack && ack.runId === run.id) {
              // Acknowledged means stored, whatever happened to the session meanwhile.
              await spool.remove(name);
              log.debug({ run: run.id, duplicate: ack.duplicate }, 'report acknowledged');
              this.events.emit('acked', run.id, ack.duplicate);
              if (reply.type === 'checkin_ok' && this.live()) this.finish(await this.checkedIn(reply));
              continue;
            }
            if (!this.live()) return;
            if (reply.type === 'redirect') {
              this.ending = true;
              this.finish(await this.redirected(reply));
              return;
            }
            this.finish({ kind: 'failed', reason: `spoke answered a report with ${reply.type}` });
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
