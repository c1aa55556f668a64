import {
  AxleError,
  AxleServer,
  CloseCode,
  Codec,
  CryptoPool,
  cryptoThreadsFor,
  httpLimitsOf,
  slotMetrics,
  isCanonicalHostname,
  requestTarget,
  type RouteInfo,
  ErrorCode,
  HANDLED,
  fromBase64,
  Router,
  errorText,
  loadOrCreateKeyPair,
  parseHostPort,
  reloadTransport,
  sendJson,
  silentLogger,
  startTransport,
  tlsMetrics,
  type TlsMaterial,
  type Daemon,
  type KeyPair,
  type Logger,
  type MessageOf,
  type PeerClaim,
  type SpokeStats,
} from '@axle/shared';
import { hubAddrsOf, keyFileOf, loadSpokeConfig, type SpokeConfig } from './config.js';
import { EnvoyService } from './envoys.js';
import { Fleet } from './fleet.js';
import { HubApi } from './hub-api.js';
import { SpokeQueries } from './queries.js';
import { TermKeeper } from './terms.js';
import { Witness } from './witness.js';
import { Activity, SpokeMetrics } from './metrics.js';
import { Retention } from './retention.js';
import { StatusPush } from './status-push.js';
import { Store } from './store.js';
import { ConfigSync } from './config-sync.js';
import { SpokeJobs } from './jobs.js';

export const VERSION = '0.1.0';
/** Last-seen times of envoys that only check in are written this often, not per check-in. */
const SEEN_FLUSH_MS = 15_000;

interface Running {
  store: Store;
  server: AxleServer;
  crypto: CryptoPool;
  envoys: EnvoyService;
  status: StatusPush | undefined;
  retention: Retention;
  seenTimer: NodeJS.Timeout;
}

/**
 * A partition server: authenticates its envoys by the keys the hub told it to adopt,
 * stores their runs, traits and results in LMDB, answers the hub, and pushes its status
 * to the hub, carrying on as usual when no hub can be reached.
 */
export class Spoke implements Daemon {
  readonly log: Logger;
  private readonly keyPair: KeyPair;
  private readonly fleet: Fleet;
  private readonly activity = new Activity();
  readonly metrics: SpokeMetrics;
  private terms: TermKeeper | undefined;
  private running: Running | undefined;
  private port = 0;
  private startedAt = 0;
  private stopping = false;
  private readonly sync: ConfigSync;
  private readonly jobs: SpokeJobs;
  private readonly router = this.buildRouter();
  /** The TLS files in use (reloaded on SIGHUP); undefined with insecure_transport. */
  private tls: TlsMaterial | undefined;

  constructor(
    readonly config: SpokeConfig,
    private readonly o: { logger?: Logger; configFile?: string } = {},
  ) {
    this.log = o.logger ?? silentLogger();
    this.keyPair = loadOrCreateKeyPair(keyFileOf(config)).keyPair;
    this.fleet = new Fleet(config.spanner.spoke_id);
    this.sync = new ConfigSync(
      config.data_dir,
      config.spanner.hub_pubkeys.map((k) => fromBase64(k, 32, 'hub public key')),
      this.log,
    );
    this.metrics = new SpokeMetrics(this.fleet, () => ({
      term: this.terms?.current ?? 0,
      configVersion: this.sync.version,
      perMinute: this.activity.perMinute(),
    }));
    this.jobs = new SpokeJobs({ fleet: this.fleet, log: this.log, metrics: this.metrics });
    slotMetrics(this.metrics.m, () => this.running?.server.slotTotals());
    tlsMetrics(this.metrics.m, () => this.tls);
  }

  get tlsMaterial(): TlsMaterial | undefined {
    return this.tls;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get publicKey(): Uint8Array {
    return this.keyPair.publicKey;
  }

  get spokeId(): string {
    return this.config.spanner.spoke_id;
  }

  get term(): number {
    return this.terms?.current ?? 0;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const c = this.config;
    this.tls = startTransport(c, this.o.configFile ?? 'spoke config', this.log);
    const store = new Store(c.data_dir);
    let crypto: CryptoPool | undefined;
    try {
      this.loadFleet(store);
      const hubKeys = c.spanner.hub_pubkeys.map((k) => fromBase64(k, 32, 'hub public key'));
      const terms = (this.terms = new TermKeeper(store, hubKeys));
      const codec = new Codec({ maxFrameBytes: c.limits.frame_bytes });
      const envoys = new EnvoyService({
        fleet: this.fleet,
        store,
        metrics: this.metrics,
        activity: this.activity,
        log: this.log,
        keepRuns: c.retention.max_runs_per_envoy,
        maxReportBytes: c.limits.max_report_bytes,
        terms,
        configVersion: () => this.sync.version,
        configBundle: (version, offset) => this.sync.chunk(version, offset),
        revertFor: (applied) => this.sync.revertFor(applied),
        relaySecrets: async (hostname, names) => {
          if (!status)
            throw new AxleError(ErrorCode.UNREACHABLE, 'this spoke has no hub address; secrets are unavailable');
          const reply = await status.request({ type: 'secret_relay', hostname, names });
          if (reply.type !== 'secret_values')
            throw new AxleError(ErrorCode.BAD_MESSAGE, `the hub answered ${reply.type}`);
          return reply;
        },
      });
      let status: StatusPush | undefined;
      let server: AxleServer | undefined;
      const hub = new HubApi({
        fleet: this.fleet,
        store,
        terms,
        queries: new SpokeQueries(this.fleet, store, codec, {
          frameBytes: c.limits.frame_bytes,
          maxConcurrent: c.limits.max_concurrent_queries,
          steps: c.limits.query_steps,
        }),
        metrics: this.metrics,
        log: this.log,
        hubPubkeys: c.spanner.hub_pubkeys,
        stats: () => this.stats(),
        probe: () => this.probe(),
        witness: new Witness(store, terms, this.log),
        acceptConfig: (o) => this.sync.accept(o),
        unstageConfig: (o) => this.sync.unstage(o),
        runJob: (m) => this.jobs.dispatch(m),
        dropEnvoy: (h) => {
          for (const conn of server?.connections ?? [])
            if (conn.peer.role === 'envoy' && conn.peer.id === h) conn.close(CloseCode.UNKNOWN_KEY);
        },
      });
      const { host, port } = parseHostPort(c.listen);
      const router = this.router;
      crypto = new CryptoPool({
        keyPair: this.keyPair,
        threads: cryptoThreadsFor(c.crypto_threads),
        onWorkerError: (e) => this.log.error({ err: errorText(e) }, 'signature worker failed; replaced'),
      });
      server = new AxleServer({
        crypto,
        cryptoRoles: ['envoy'], // a hub's frames are signed on the event loop (see HubApi)
        host,
        port,
        id: c.server_id,
        keyPair: this.keyPair,
        limits: { maxFrameBytes: c.limits.frame_bytes },
        maxConnectionsPerIp: c.limits.max_connections_per_ip,
        maxHandshakesPerIp: c.limits.max_handshakes_per_ip,
        keepaliveMs: c.limits.keepalive,
        httpLimits: httpLimitsOf(c.limits),
        ...(this.tls ? { tls: { cert: this.tls.cert, key: this.tls.key } } : {}),
        log: this.log,
        authenticate: (claim: PeerClaim) => {
          if (this.stopping) throw new AxleError(ErrorCode.CLOSED, 'spoke is shutting down; retry shortly');
          if (claim.role === 'envoy') return envoys.authenticate(claim);
          if (claim.role === 'hub') return hub.authenticate(claim);
          this.metrics.refusals.inc({ reason: 'role' });
          throw new AxleError(
            ErrorCode.UNKNOWN_KEY,
            `a spoke takes connections from envoys and hubs, not role "${claim.role}"`,
          );
        },
        onConnection: (conn) => {
          if (conn.peer.role === 'hub') return hub.attach(conn);
          envoys.attach(conn);
          this.jobs.track(conn);
        },
        http: (req, res) => {
          if (!router.handle(req, res)) {
            const path = requestTarget(req).pathname.slice(0, 200);
            sendJson(res, 404, { error: { code: ErrorCode.NOT_FOUND, message: `no route ${path}` } });
          }
        },
        onError: (e, ip) => this.log.debug({ remote: ip, err: errorText(e) }, 'connection error'),
      });
      const addr = await server.listen();
      this.port = addr.port;
      this.startedAt = Date.now();

      const hubAddrs = hubAddrsOf(c);
      if (hubAddrs.length > 0) {
        status = new StatusPush({
          addrs: hubAddrs,
          spokeId: this.spokeId,
          keyPair: this.keyPair,
          ca: () => this.tls?.ca,
          hubPubkeys: c.spanner.hub_pubkeys,
          intervalMs: c.status_interval,
          stats: () => this.stats(),
          onTerm: async (t, proof) => {
            await terms.observe(t, 'hub status reply');
            await terms.observeProof(proof);
          },
          metrics: this.metrics,
          log: this.log,
          ...(c.status_interval < 1000 ? { initialBackoffMs: 20, maxBackoffMs: Math.max(100, c.status_interval) } : {}),
        });
        status.start();
      } else {
        this.log.info('no spanner.hub_addr configured; status push is off');
      }
      const retention = new Retention({
        store,
        fleet: this.fleet,
        maxAgeMs: c.retention.max_age,
        metrics: this.metrics,
        log: this.log,
      });
      retention.start();
      const seenTimer = setInterval(() => void this.flushSeen(store), SEEN_FLUSH_MS);
      seenTimer.unref();
      this.running = { store, server, crypto, envoys, status, retention, seenTimer };
      this.log.info(
        {
          port: addr.port,
          addr: `${addr.host}:${addr.port}`,
          spokeId: this.spokeId,
          envoys: this.fleet.size,
          term: terms.current,
          cryptoThreads: crypto.threads,
        },
        'listening',
      );
    } catch (e) {
      await crypto?.close();
      await store.close().catch(() => undefined);
      throw e;
    }
  }

  /** Writes last-seen times that moved since their record was last written. */
  private async flushSeen(store: Store): Promise<void> {
    // Last-seen times wait in memory while the disk is full (see Store.lowOnSpace).
    if (!this.stopping && store.lowOnSpace()) return;
    const writes: Promise<unknown>[] = [];
    for (const h of this.fleet.dirty) {
      const r = this.fleet.get(h);
      if (r) writes.push(store.putEnvoy(r));
    }
    this.fleet.dirty.clear();
    await store
      .durable(writes)
      .catch((e: unknown) => this.log.error({ err: errorText(e) }, 'cannot write last-seen times'));
  }

  stats(): SpokeStats {
    const lat = this.activity.checkinLatency;
    return {
      spokeId: this.spokeId,
      envoys: this.fleet.size,
      connected: this.fleet.connected,
      compliance: { ...this.fleet.counts },
      checkinsPerMinute: this.activity.perMinute(),
      latencyMs: { p50: lat.percentile(50), p99: lat.percentile(99) },
      configVersion: this.sync.version,
      ...(this.sync.stagedVersion ? { staged: this.sync.stagedVersion } : {}),
      term: this.term,
      uptimeS: this.startedAt ? (Date.now() - this.startedAt) / 1000 : 0,
      version: VERSION,
    };
  }

  private probe(): MessageOf<'probe_ok'> {
    return {
      type: 'probe_ok',
      spokeId: this.spokeId,
      term: this.term,
      configVersion: this.sync.version,
      envoys: this.fleet.size,
      uptimeS: this.startedAt ? (Date.now() - this.startedAt) / 1000 : 0,
    };
  }

  /**
   * Names stored before host names were canonical (lowercase, no trailing dot) are kept on
   * disk but not served: the wire refuses them, and the hub re-registers such hosts under
   * their canonical names (see "Host names" in README.md).
   */
  private loadFleet(store: Store): void {
    const legacy: string[] = [];
    this.fleet.load(
      store.loadEnvoys().filter((r) => {
        if (isCanonicalHostname(r.hostname)) return true;
        legacy.push(r.hostname);
        return false;
      }),
    );
    if (legacy.length > 0) {
      this.log.warn(
        { count: legacy.length, hostnames: legacy.slice(0, 20) },
        'stored host names that are not canonical are not served; the hub re-registers those hosts under their canonical names',
      );
    }
  }

  /** Every HTTP route the spoke serves (method and path pattern). */
  routes(): RouteInfo[] {
    return this.router.table();
  }

  private buildRouter(): Router {
    const r = new Router();
    r.get('/metrics', async (ctx) => {
      const text = await this.metrics.m.text();
      ctx.res.writeHead(200, { 'content-type': this.metrics.m.contentType });
      ctx.res.end(text);
      return HANDLED;
    });
    r.get('/healthz', () => ({ ok: true, spokeId: this.spokeId }));
    r.get('/readyz', (ctx) => {
      const ready = this.running !== undefined && !this.stopping;
      sendJson(ctx.res, ready ? 200 : 503, { ready, spokeId: this.spokeId, envoys: this.fleet.size });
      return HANDLED;
    });
    r.get('/routes', () => ({ routes: r.table() }));
    return r;
  }

  /**
   * SIGHUP: reads the config file again for its TLS certificate and key (new connections get
   * them, open ones keep going). Other spoke settings take effect at the next start.
   */
  async reload(): Promise<void> {
    const file = this.o.configFile;
    if (!file)
      throw new AxleError(ErrorCode.INVALID, 'this spoke was started without a config file; nothing to reload');
    const next = loadSpokeConfig(file);
    const server = this.running?.server;
    this.tls = reloadTransport(this.tls, next, file, (t) => server?.setTls(t), this.log);
  }

  /** Stops taking work, lets queued reports become durable and be acknowledged, then closes LMDB. */
  async stop(): Promise<void> {
    const run = this.running;
    if (!run || this.stopping) return;
    this.stopping = true;
    await run.envoys.drain();
    // Acks are written once the awaiting handlers resume; give them that turn.
    await new Promise((r) => setImmediate(r));
    clearInterval(run.seenTimer);
    run.retention.stop();
    await Promise.all([run.server.close(1000), run.status?.stop()]);
    await run.crypto.close();
    await run.retention.idle();
    await this.flushSeen(run.store);
    await run.store.close();
    this.running = undefined;
    this.log.info('spoke stopped');
  }
}
