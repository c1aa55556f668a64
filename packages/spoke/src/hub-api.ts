import {
  AxleError,
  ErrorCode,
  fingerprint,
  fromBase64,
  toBase64,
  type Connection,
  type Logger,
  type Message,
  type MessageOf,
  type PeerClaim,
  type SpokeStats,
} from '@axle/shared';
import type { Fleet } from './fleet.js';
import type { SpokeMetrics } from './metrics.js';
import type { EnvoyRecord, Store } from './store.js';
import type { SpokeQueries } from './queries.js';
import type { TermKeeper } from './terms.js';
import type { Witness } from './witness.js';

export interface HubApiDeps {
  fleet: Fleet;
  store: Store;
  terms: TermKeeper;
  queries: SpokeQueries;
  metrics: SpokeMetrics;
  log: Logger;
  hubPubkeys: string[];
  stats: () => SpokeStats;
  probe: () => MessageOf<'probe_ok'>;
  acceptConfig: (offer: MessageOf<'config_offer'>) => Promise<MessageOf<'config_ok'>>;
  /** A rollout stopped: drop its staged version, keep its revert order. */
  unstageConfig: (m: MessageOf<'config_unstage'>) => Promise<MessageOf<'config_ok'>>;
  /** An envoy's key changed or it was released: drop its open connections. */
  dropEnvoy: (hostname: string) => void;
  /** Votes and leases for replicated hubs that list this spoke as a witness. */
  witness?: Witness;
  /** Job orders relayed to envoys (jobs.ts). */
  runJob?: (msg: MessageOf<'job_dispatch'>) => Promise<Message>;
}

const HUB_TYPES = [
  'adopt',
  'release',
  'list_envoys',
  'get_envoy',
  'list_runs',
  'stats',
  'probe',
  'config_offer',
  'config_unstage',
  'job_dispatch',
] as const;
type HubRequest = MessageOf<(typeof HUB_TYPES)[number]>;
const isHubRequest = (m: Message): m is HubRequest => (HUB_TYPES as readonly string[]).includes(m.type);

/**
 * Requests from hubs: orders (adopt, release) and queries, each gated by key and term. Their
 * frames are checked and signed on the event loop, not the crypto pool (spoke.ts cryptoRoles):
 * they are few (an adopt carries a batch of envoys), signed inline they cost less than the
 * hand-off to a worker and back (bench/enroll), and a vote or lease answer never waits behind
 * envoys' checks, as on the hub.
 */
export class HubApi {
  private readonly trusted: Set<string>;

  constructor(private readonly d: HubApiDeps) {
    this.trusted = new Set(d.hubPubkeys.map((k) => toBase64(fromBase64(k, 32))));
  }

  authenticate(claim: PeerClaim): { role: string } {
    if (!this.trusted.has(toBase64(claim.pubkey))) {
      this.d.metrics.refusals.inc({ reason: 'untrusted_hub' });
      this.d.log.warn(
        { hub: claim.id, key: fingerprint(claim.pubkey), remote: claim.remoteAddress },
        'refused hub with untrusted key',
      );
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `hub ${claim.id} key ${fingerprint(claim.pubkey)} is not in this spoke's spanner.hub_pubkeys; add it there to obey this hub`,
      );
    }
    return { role: 'hub' };
  }

  attach(conn: Connection): void {
    const onRequest = async (msg: Message) => {
      try {
        const reply = await this.handle(msg, conn.peer.id);
        this.d.metrics.hubRequests.inc({ type: msg.type, result: 'ok' });
        return reply;
      } catch (e) {
        const code = e instanceof AxleError ? e.code : ErrorCode.INTERNAL;
        this.d.metrics.hubRequests.inc({ type: msg.type, result: code });
        if (code === ErrorCode.STALE_TERM)
          this.d.log.warn({ hub: conn.peer.id, type: msg.type }, 'refused order from a lower hub term');
        throw e;
      }
    };
    conn.attach({ onRequest });
  }

  private async handle(msg: Message, hubId: string): Promise<Message> {
    if (this.d.witness && (msg.type === 'vote_request' || msg.type === 'lease_ping'))
      return this.d.witness.handle(msg, hubId);
    if (!isHubRequest(msg)) throw new AxleError(ErrorCode.INVALID, `a hub may not send ${msg.type} to a spoke`);
    await this.d.terms.observe(msg.term, `hub ${hubId}`);
    switch (msg.type) {
      case 'adopt':
        return { type: 'adopted', count: await this.adopt(msg) };
      case 'release':
        return { type: 'released', count: await this.release(msg) };
      case 'list_envoys':
        return this.d.queries.list(msg);
      case 'get_envoy':
        return this.d.queries.envoy(msg);
      case 'list_runs':
        return this.d.queries.runs(msg);
      case 'stats':
        return { type: 'stats_result', stats: this.d.stats() };
      case 'probe':
        await this.d.terms.observeProof(msg.termProof);
        return this.d.probe();
      case 'config_offer':
        return this.d.acceptConfig(msg);
      case 'config_unstage':
        return this.d.unstageConfig(msg);
      case 'job_dispatch':
        if (!this.d.runJob) throw new AxleError(ErrorCode.INVALID, 'this spoke does not run jobs');
        return this.d.runJob(msg);
    }
  }

  /** Stores every adopted envoy durably before answering; an older epoch than stored is ignored. */
  private async adopt(msg: MessageOf<'adopt'>): Promise<number> {
    const writes: Promise<unknown>[] = [];
    const now = Date.now();
    let count = 0;
    for (const e of msg.envoys) {
      const prev = this.d.fleet.get(e.hostname);
      if (prev && e.epoch < prev.epoch) continue;
      count++;
      const keyChanged = prev !== undefined && !Buffer.from(prev.pubkey).equals(Buffer.from(e.pubkey));
      if (prev && !keyChanged && !prev.released && prev.epoch === e.epoch) continue;
      const next: EnvoyRecord = prev
        ? { ...withoutTarget(prev), pubkey: new Uint8Array(e.pubkey), epoch: e.epoch, released: false }
        : {
            hostname: e.hostname,
            pubkey: new Uint8Array(e.pubkey),
            epoch: e.epoch,
            enrolledAt: now,
            lastSeen: 0,
            released: false,
            compliance: 'unknown',
            lastRunAt: 0,
            configVersion: 0,
            runCount: 0,
          };
      this.d.fleet.set(next);
      writes.push(this.d.store.putEnvoy(next));
      if (keyChanged) this.d.dropEnvoy(e.hostname);
    }
    await this.d.store.durable(writes);
    // Debug: one line per batch is a synchronous write, a tenth of an adopt's cost at 1,000
    // enrollments a second, and the hub already logs each envoy's enrollment as an event.
    this.d.log.debug({ count, term: msg.term }, 'adopted envoys');
    return count;
  }

  private async release(msg: MessageOf<'release'>): Promise<number> {
    const writes: Promise<unknown>[] = [];
    let count = 0;
    for (const e of msg.envoys) {
      const prev = this.d.fleet.get(e.hostname);
      if (!prev || e.epoch < prev.epoch) continue;
      count++;
      const next: EnvoyRecord = {
        ...withoutTarget(prev),
        released: true,
        epoch: e.epoch,
        ...(e.to ? { to: e.to } : {}),
      };
      this.d.fleet.set(next);
      writes.push(this.d.store.putEnvoy(next));
    }
    await this.d.store.durable(writes);
    this.d.log.info({ count, term: msg.term }, 'released envoys');
    return count;
  }
}

function withoutTarget(r: EnvoyRecord): EnvoyRecord {
  const { to: _to, ...rest } = r;
  return rest;
}
