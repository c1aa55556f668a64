import {
  AxleError,
  ErrorCode,
  FailoverClient,
  connectPeer,
  errorText,
  fromBase64,
  toBase64,
  type Connection,
  type KeyPair,
  type Message,
  type Logger,
  type SpokeStats,
  type TermProof,
} from '@axle/shared';
import type { SpokeMetrics } from './metrics.js';

export interface StatusPushOptions {
  addrs: string[];
  spokeId: string;
  keyPair: KeyPair;
  /** The CA the hubs' certificates must chain to; undefined with insecure_transport. */
  ca: () => Buffer | undefined;
  hubPubkeys: string[];
  intervalMs: number;
  stats: () => SpokeStats;
  /** The hub answered with its term (and the proof of it); the spoke keeps the highest. */
  onTerm: (term: number, proof: TermProof | undefined) => Promise<void>;
  metrics: SpokeMetrics;
  log: Logger;
  /** Overrides for tests (backoff); production uses the FailoverClient defaults. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Pushes the spoke's status to a hub every interval through the failover client:
 * `hub_addr` first, then each fallback after 3 consecutive failures, round again until
 * one answers. A push also goes out as soon as a connection opens. Nothing else the
 * spoke does waits on this: with no hub reachable, envoys are served as usual.
 */
export class StatusPush {
  private readonly client: FailoverClient<Connection>;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  lastPushAt = 0;
  lastHubAddr: string | undefined;

  constructor(private readonly o: StatusPushOptions) {
    const trusted = new Set(o.hubPubkeys.map((k) => toBase64(fromBase64(k, 32))));
    this.client = new FailoverClient<Connection>({
      addrs: o.addrs,
      name: 'status push',
      failuresBeforeSwitch: 3,
      ...(o.initialBackoffMs !== undefined ? { initialBackoffMs: o.initialBackoffMs } : {}),
      maxBackoffMs: o.maxBackoffMs ?? Math.max(1000, Math.min(30_000, o.intervalMs)),
      connectTimeoutMs: Math.max(1000, Math.min(15_000, o.intervalMs)),
      connect: (addr, signal) =>
        connectPeer(addr, {
          id: o.spokeId,
          role: 'spoke',
          keyPair: o.keyPair,
          expectServerKey: (pub) => trusted.has(toBase64(pub)),
          ca: o.ca(),
          requestTimeoutMs: 10_000,
          signal,
        }),
    });
    this.client.on('connected', (_c, addr) => {
      o.log.info({ hub: addr }, 'connected to hub for status push');
      void this.push();
    });
    this.client.on('connect_error', (addr, e) =>
      o.log.debug({ hub: addr, err: errorText(e) }, 'cannot reach hub for status push'),
    );
    this.client.on('failover', (from, to, failures) =>
      o.log.warn({ from, to, failures }, 'status push moving to the next hub address'),
    );
  }

  start(): void {
    this.client.start();
    this.timer = setInterval(() => void this.push(), this.o.intervalMs);
  }

  /** Sends one status on the current connection; a failure counts toward switching address. */
  async push(): Promise<boolean> {
    const conn = this.client.current;
    if (!conn || this.busy) return false;
    this.busy = true;
    try {
      const reply = await conn.request({ type: 'status', stats: this.o.stats() }, 10_000, 'status_ok');
      this.client.reportSuccess();
      this.lastPushAt = Date.now();
      this.lastHubAddr = this.client.currentAddr;
      this.o.metrics.statusPushes.inc({ result: 'ok' });
      await this.o
        .onTerm(reply.term, reply.termProof)
        .catch((e: unknown) => this.o.log.warn({ err: errorText(e) }, 'hub answered status with a lower term'));
      return true;
    } catch (e) {
      this.o.metrics.statusPushes.inc({ result: 'error' });
      this.o.log.warn({ hub: this.client.currentAddr, err: errorText(e) }, 'status push failed');
      this.client.reportFailure(e);
      return false;
    } finally {
      this.busy = false;
    }
  }

  /**
   * A request to the hub on the status connection (secret relays). Fails at once with
   * E_UNREACHABLE when no hub is connected: the envoy's run reports it and tries next time.
   */
  async request(msg: Message, timeoutMs = 10_000): Promise<Message> {
    const conn = this.client.current;
    if (!conn?.isOpen)
      throw new AxleError(ErrorCode.UNREACHABLE, 'this spoke has no hub connection now; try again later');
    return conn.request(msg, timeoutMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.client.stop();
  }
}
