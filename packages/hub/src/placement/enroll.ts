/**
 * Placement (src/placement): deciding which spoke owns each envoy and making it so. The host
 * router (router.ts), enrollment (enroll.ts), drains and moves (drain.ts), import (import.ts),
 * re-registration under canonical names (names.ts), assignment epochs (epochs.ts), envoys left
 * without a spoke (stranded.ts) and the shared adopt-and-record steps (adopt.ts, adopt-queue.ts,
 * order.ts).
 */
import {
  AxleError,
  ErrorCode,
  errorText,
  fingerprint,
  fromBase64,
  toBase64,
  type Logger,
  type MessageOf,
} from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { Epochs } from './epochs.js';
import type { Events } from '../store/events.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import { KeyedLock } from '../store/lock.js';
import { AdoptQueue, RecordFailed } from './adopt-queue.js';
import type { AssignReason, Change, DirectoryEntry, JoinToken } from '../store/model.js';
import { RateLimiter } from '../http/ratelimit.js';
import type { HostRouter } from './router.js';
import type { SpokeLinks } from '../spokes/spoke-links.js';
import type { HubStore } from '../store/state.js';
import type { Tokens } from '../store/tokens.js';
import type { HubMetrics } from '../daemon/metrics.js';

export interface EnrollDeps {
  state: HubStore;
  tokens: Tokens;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  epochs: Epochs;
  events: Events;
  metrics: HubMetrics;
  log: Logger;
  config: () => HubConfig;
  router: () => HostRouter;
  hubAddrs: () => string[];
  /** This hub's key and its peers': the keys an envoy trusts for terms and bundles. */
  hubKeys: () => Uint8Array[];
}

type Assignment = MessageOf<'assignment'>;

/** Who asks to enroll or locate: the host name and key its request was signed as, and where it came from. */
export interface Asker {
  id: string;
  pubkey: Uint8Array;
  remoteAddress: string;
}

const REKEY_DEFAULT_MS = 24 * 3600 * 1000;

/** How a refused enrollment is counted in axle_enrollments_total{outcome}. */
const REFUSAL_OUTCOME: Partial<Record<string, string>> = {
  [ErrorCode.BAD_TOKEN]: 'bad_token',
  [ErrorCode.FORBIDDEN]: 'token_scope',
  [ErrorCode.CONFLICT]: 'rekey_refused',
  [ErrorCode.NO_ROUTE]: 'no_route',
};

/**
 * Enrollment and location. An enrollment checks the join token, binds host name to key,
 * routes, has the chosen spoke adopt the envoy durably, records the assignment durably
 * here, and only then answers the envoy. A spoke that fails the adopt is passed over for
 * the next candidate. Concurrent enrollments to one spoke share adopts and hub writes
 * (placement/adopt-queue.ts).
 */
export class Enrollment {
  readonly lock = new KeyedLock();
  private limiter: RateLimiter;
  private readonly queue: AdoptQueue;

  constructor(private readonly d: EnrollDeps) {
    this.limiter = new RateLimiter(d.config().enrollment.rate_limit);
    this.queue = new AdoptQueue(d);
  }

  reconfigure(): void {
    const spec = this.d.config().enrollment.rate_limit;
    const cur = this.limiter.spec;
    if (cur.requests !== spec.requests || cur.per !== spec.per || cur.burst !== spec.burst)
      this.limiter = new RateLimiter(spec);
  }

  assignmentFor(rec: DirectoryEntry): Assignment {
    return {
      type: 'assignment',
      status: 'assigned',
      target: this.d.fleet.target(rec.spokeId),
      epoch: rec.epoch,
      term: this.d.state.term,
      hubAddrs: this.d.hubAddrs(),
      hubKeys: this.d.hubKeys(),
    };
  }

  private pendingAssignment(): Assignment {
    return {
      type: 'assignment',
      status: 'pending',
      epoch: 0,
      term: this.d.state.term,
      hubAddrs: this.d.hubAddrs(),
      hubKeys: this.d.hubKeys(),
    };
  }

  private outcome(o: string): void {
    this.d.metrics.enrollments.inc({ outcome: o });
  }

  async enroll(msg: MessageOf<'enroll'>, asker: Asker): Promise<Assignment> {
    const host = msg.hostname;
    if (host !== asker.id) {
      this.outcome('invalid');
      throw new AxleError(
        ErrorCode.INVALID,
        `enrollment for "${host}" signed as "${asker.id}"; sign with id = the host name you enroll`,
      );
    }
    const wait = this.limiter.take(asker.remoteAddress);
    if (wait > 0) {
      this.outcome('rate_limited');
      throw new AxleError(
        ErrorCode.RATE_LIMITED,
        `too many enrollment attempts from ${asker.remoteAddress}; retry in ${Math.ceil(wait / 1000)} s`,
      );
    }
    const pubkey = toBase64(asker.pubkey);
    try {
      const a = await this.lock.run(host, () => this.enrollLocked(host, pubkey, msg.token, asker.remoteAddress));
      this.outcome(a.status === 'pending' ? 'pending' : 'assigned');
      return a;
    } catch (e) {
      const code = e instanceof AxleError ? e.code : 'E_INTERNAL';
      this.outcome(REFUSAL_OUTCOME[code] ?? 'error');
      this.d.log.info({ envoy: host, source: asker.remoteAddress, err: errorText(e) }, 'enrollment refused');
      throw e;
    }
  }

  private async enrollLocked(host: string, pubkey: string, secret: string, source: string): Promise<Assignment> {
    const { state, tokens } = this.d;
    const token = tokens.check(secret, host);
    const existing = state.envoys.get(host);
    const rekeyOk = (() => {
      const a = state.rekey.get(host);
      return a !== undefined && a.until > Date.now();
    })();
    if (existing) {
      // The same key enrolling again (a retry after a lost answer) gets the same answer.
      if (existing.pubkey === pubkey) {
        await state.settled();
        return this.assignmentFor(existing);
      }
      if (!rekeyOk) {
        throw new AxleError(
          ErrorCode.CONFLICT,
          `"${host}" is already enrolled with key ${fingerprint(fromBase64(existing.pubkey))}; ` +
            `if the host was rebuilt, an admin must allow a re-key first (POST /api/v1/envoys/${host}/rekey)`,
        );
      }
    }
    const pending = state.pending.get(host);
    if (pending && pending.pubkey === pubkey) {
      await state.settled();
      return this.pendingAssignment();
    }
    if (pending && !rekeyOk) {
      throw new AxleError(
        ErrorCode.CONFLICT,
        `an enrollment of "${host}" with another key is already waiting for approval; an admin must reject it first`,
      );
    }
    const use = tokens.reserve(token, host);
    try {
      if (this.d.config().enrollment.approval === 'manual') {
        const tok = use.commit();
        const changes: Change[] = [
          {
            kind: 'pending.add',
            enrollment: { hostname: host, pubkey, tokenId: token.id, source, requestedAt: Date.now() },
          },
          { kind: 'token.put', token: tok },
          this.d.events.change('envoy.pending', { hostname: host, source, token: token.id }),
        ];
        await state.applyAll(changes);
        use.settle();
        return this.pendingAssignment();
      }
      const rec = await this.place(
        host,
        pubkey,
        'enroll',
        existing?.spokeId,
        () => [{ kind: 'token.put', token: use.commit() }],
        { source, token: token.id },
        token,
      );
      use.settle();
      return this.assignmentFor(rec);
    } catch (e) {
      use.undo();
      throw e;
    }
  }

  /**
   * Routes `host`, has the first candidate that answers adopt it, then records the
   * assignment (with `extra` changes in the same transaction) and the event.
   */
  async place(
    host: string,
    pubkey: string,
    reason: AssignReason,
    from: string | undefined,
    extra: () => Change[],
    info: Record<string, unknown> = {},
    token?: JoinToken,
  ): Promise<DirectoryEntry> {
    const { fleet, state } = this.d;
    const router = this.d.router();
    const scope = token?.spokes;
    if (scope) {
      // The token binds the partition: its route must land on a spoke it names, not merely match its pattern.
      const first = router.first(host);
      if (first === undefined || !scope.includes(first)) {
        throw new AxleError(
          ErrorCode.FORBIDDEN,
          `join token ${token.id} may enroll only into spoke${scope.length > 1 ? 's' : ''} ${scope.join(', ')}; "${host}" would go to ${first === undefined ? 'no spoke' : `spoke ${first}`}`,
        );
      }
    }
    const candidates = router
      .candidates(host, (id) => fleet.refusal(id))
      .filter((c) => scope === undefined || scope.includes(c.spokeId));
    const failures: string[] = [];
    for (const c of candidates) {
      const release = fleet.hold(c.spokeId);
      try {
        const why = fleet.refusal(c.spokeId, 0);
        if (why) {
          failures.push(`${c.spokeId} (${why})`);
          continue;
        }
        return await this.queue.place(c.spokeId, {
          hostname: host,
          pubkey,
          record: (epoch, now) => {
            const prev = state.envoys.get(host);
            const rec: DirectoryEntry = {
              hostname: host,
              pubkey,
              spokeId: c.spokeId,
              epoch,
              enrolledAt: prev?.pubkey === pubkey ? prev.enrolledAt : now,
              assignedAt: now,
            };
            const changes: Change[] = [
              { kind: 'envoy.assign', envoy: rec, reason, ...(from !== undefined ? { from } : {}) },
              ...extra(),
              this.d.events.change('envoy.enrolled', { hostname: host, spoke: c.spokeId, epoch, via: c.via, ...info }),
            ];
            return { changes, result: rec };
          },
        });
      } catch (e) {
        if (e instanceof RecordFailed || (e instanceof AxleError && e.code === ErrorCode.STALE_TERM)) throw e;
        failures.push(`${c.spokeId} (${errorText(e)})`);
        this.d.log.warn({ envoy: host, spoke: c.spokeId, err: errorText(e) }, 'adopt failed; trying the next spoke');
      } finally {
        release();
      }
    }
    throw new AxleError(
      ErrorCode.NO_ROUTE,
      `no spoke could adopt "${host}": ${failures.join('; ')}; check the spokes' health (GET /api/v1/spokes)`,
    );
  }

  locate(msg: MessageOf<'locate'>, asker: Asker): Assignment {
    const host = msg.hostname;
    const pubkey = toBase64(asker.pubkey);
    if (host !== asker.id) throw new AxleError(ErrorCode.INVALID, `locate for "${host}" signed as "${asker.id}"`);
    const rec = this.d.state.envoys.get(host);
    if (rec && rec.pubkey === pubkey) return this.assignmentFor(rec);
    const p = this.d.state.pending.get(host);
    if (p && p.pubkey === pubkey) return this.pendingAssignment();
    throw new AxleError(
      ErrorCode.UNKNOWN_ENVOY,
      `"${host}" with this key is not enrolled at this hub; enroll it with a join token`,
    );
  }

  async approve(host: string, by: string): Promise<DirectoryEntry> {
    return this.lock.run(host, async () => {
      const p = this.d.state.pending.get(host);
      if (!p)
        throw new AxleError(
          ErrorCode.NOT_FOUND,
          `no pending enrollment for "${host}"; list them with GET /api/v1/enrollments/pending`,
        );
      const prev = this.d.state.envoys.get(host);
      this.d.metrics.enrollments.inc({ outcome: 'approved' });
      return this.place(
        host,
        p.pubkey,
        'enroll',
        prev?.spokeId,
        () => [],
        { approvedBy: by, token: p.tokenId },
        this.d.state.tokens.get(p.tokenId),
      );
    });
  }

  async reject(host: string, by: string): Promise<void> {
    await this.lock.run(host, async () => {
      const p = this.d.state.pending.get(host);
      if (!p)
        throw new AxleError(
          ErrorCode.NOT_FOUND,
          `no pending enrollment for "${host}"; list them with GET /api/v1/enrollments/pending`,
        );
      this.d.metrics.enrollments.inc({ outcome: 'rejected' });
      await this.d.events.record('envoy.rejected', { hostname: host, by }, [
        { kind: 'pending.remove', hostname: host },
      ]);
    });
  }

  async allowRekey(host: string, by: string, ttlMs = REKEY_DEFAULT_MS): Promise<number> {
    const until = Date.now() + ttlMs;
    await this.d.events.record('envoy.rekey_allowed', { hostname: host, by, until: new Date(until).toISOString() }, [
      { kind: 'envoy.rekey_allow', allowance: { hostname: host, by, until } },
    ]);
    return until;
  }
}
