/**
 * The hub daemon as a whole (src/daemon): its config (config.ts), the Hub class that wires
 * the subsystems together and starts and stops them (hub.ts), the Prometheus registry every
 * subsystem reports into (metrics.ts), the fleet CA behind `axle-hub ca` (ca.ts) and the
 * `axle-hub` executable (axle-hub.ts, built to dist/bin/axle-hub.js).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HubInfo } from '@axle/shared';
import {
  AxleError,
  AxleServer,
  ErrorCode,
  errorText,
  fingerprint,
  fromBase64,
  httpLimitsOf,
  slotMetrics,
  loadOrCreateKeyPair,
  parseHostPort,
  reloadTransport,
  silentLogger,
  startTransport,
  tlsMetrics,
  tlsSummary,
  toBase64,
  type KeyPair,
  type Logger,
  type RouteInfo,
  type SlotTotals,
  type TlsMaterial,
} from '@axle/shared';
import { ApiAuth } from '../http/auth.js';
import { buildHttp } from '../http/api.js';
import { keyFileOf, loadHubConfig, type HubConfig } from './config.js';
import { EnvoyMover } from '../placement/mover.js';
import { Enrollment } from '../placement/enroll.js';
import { Epochs } from '../placement/epochs.js';
import { Events } from '../store/events.js';
import { SpokeRegistry } from '../spokes/registry.js';
import { HubMetrics } from './metrics.js';
import { Queries } from '../spokes/query.js';
import { Publisher } from '../jobs/config-publish.js';
import { JobRunner } from '../jobs/runner.js';
import { ComplianceHistory } from '../store/history/sampler.js';
import { RolloutRunner } from '../jobs/rollouts/runner.js';
import { HostRouter } from '../placement/router.js';
import { replicationMetrics } from '../store/replication/metrics.js';
import { Replication } from '../store/replication/replication.js';
import { CommitTracker } from '../store/replication/commit.js';
import { replicationSettings } from '../store/replication/settings.js';
import { SpokeLinks } from '../spokes/spoke-links.js';
import { HubStore } from '../store/state.js';
import { StrandedPlacer } from '../placement/stranded.js';
import { Supervisor } from '../spokes/supervisor.js';
import { TermProofs } from '../store/replication/term-proof.js';
import { canonicalizeDirectory } from '../placement/names.js';
import { Secrets } from '../store/secrets.js';
import { Tokens, hashSecret } from '../store/tokens.js';
import { ensureAdminToken } from './admin-token.js';
import { attachPeer, authenticatePeer } from './listener.js';
import { Webhooks } from '../store/webhooks.js';
import type { ImportDeps } from '../placement/import.js';

interface Parts {
  secrets: Secrets;
  state: HubStore;
  keyPair: KeyPair;
  termProofs: TermProofs;
  tokens: Tokens;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  events: Events;
  webhooks: Webhooks;
  metrics: HubMetrics;
  enrollment: Enrollment;
  mover: EnvoyMover;
  supervisor: Supervisor;
  queries: Queries;
  auth: ApiAuth;
  server: AxleServer;
  publisher: Publisher;
  replication: Replication;
  jobs: JobRunner;
  rollouts: RolloutRunner;
  history: ComplianceHistory;
}

/**
 * The hub daemon: enrollment routing, the envoy directory, fan-out queries, spoke health,
 * auto-failover and manual moves, the HTTP API and webhooks. All durable state goes through
 * one HubStore (see state.ts).
 */
export class Hub {
  private cfg: HubConfig;
  private router: HostRouter;
  private readonly log: Logger;
  private p: Parts | undefined;
  private listenAddr = '';
  private adminSecret = '';
  private stopping = false;
  private httpRoutes: (() => RouteInfo[]) | undefined;
  /** The TLS files in use (reloaded on SIGHUP); undefined with insecure_transport. */
  private tls: TlsMaterial | undefined;

  constructor(
    config: HubConfig,
    private readonly o: { logger?: Logger; configFile?: string } = {},
  ) {
    this.cfg = config;
    this.log = o.logger ?? silentLogger();
    this.router = new HostRouter(config.spanner.spokes, config.spanner.default_spoke);
  }

  get addr(): string {
    return this.listenAddr;
  }

  get publicKey(): Uint8Array {
    if (!this.p) throw new AxleError(ErrorCode.INTERNAL, 'the hub is not started');
    return this.p.keyPair.publicKey;
  }

  get adminToken(): string {
    return this.adminSecret || readFileSync(this.adminTokenFile, 'utf8').trim();
  }

  get config(): HubConfig {
    return this.cfg;
  }

  private get adminTokenFile(): string {
    return join(this.cfg.data_dir, 'admin.token');
  }

  get tlsMaterial(): TlsMaterial | undefined {
    return this.tls;
  }

  private get source(): string {
    return this.o.configFile ?? 'hub config';
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    const log = this.log;
    this.tls = startTransport(cfg, this.source, log);
    const ca = () => this.tls?.ca;
    const { keyPair, created } = loadOrCreateKeyPair(keyFileOf(cfg));
    if (created) log.info({ keyFile: keyFileOf(cfg) }, 'created hub key');
    // Replication's say over writes is given to the store as it opens (none on a single hub).
    const commits = new CommitTracker(replicationSettings(cfg));
    const state = await HubStore.open(cfg.data_dir, replicationSettings(cfg).enabled ? commits : undefined);
    try {
      const config = () => this.cfg;
      const router = () => this.router;
      const tokens = new Tokens(state);
      const fleet = new SpokeRegistry(state, cfg);
      const links = new SpokeLinks({ id: cfg.server_id, keyPair, ca }, log);
      links.sync(cfg.spanner.spokes);
      const events = new Events(state, log);
      const webhooks = new Webhooks(state, log);
      webhooks.configure(cfg.webhooks);
      events.on('event', (ev) => webhooks.onEvent(ev));
      const metrics = new HubMetrics(fleet, state);
      const epochs = new Epochs(state);
      const termProofs = new TermProofs(keyPair, state);
      let supervisorRef: Supervisor | undefined;
      let moverRef: EnvoyMover | undefined;
      let secretsRef: Secrets | undefined;
      let canonicalizeRef: (() => void) | undefined;
      let jobsRef: JobRunner | undefined;
      let rolloutsRef: RolloutRunner | undefined;
      const replication = new Replication({
        state,
        commits,
        keyPair,
        ca,
        log,
        config,
        selfAddr: () => this.listenAddr,
        adminHash: () => hashSecret(this.adminSecret),
        // Scheduled work (probes, auto-failover, catch-up releases, moves) runs only on the primary.
        onPrimary: async () => {
          epochs.resync();
          await this.markInterruptedMoves(state).catch((e: unknown) =>
            log.warn({ err: errorText(e) }, 'could not mark interrupted moves'),
          );
          supervisorRef?.start();
          jobsRef?.resume();
          rolloutsRef?.resumeAll();
          canonicalizeRef?.();
          void secretsRef
            ?.sealForPeers()
            .catch((e: unknown) => log.warn({ err: errorText(e) }, 'could not seal secrets for every peer hub'));
        },
        onStandby: async () => {
          rolloutsRef?.halt();
          jobsRef?.halt();
          await supervisorRef?.stop();
          await moverRef?.stop();
        },
      });
      links.onStaleTerm = (id) => replication.onStaleTerm(`spoke ${id}`);
      const hubAddrs = () => this.hubAddrs();
      const hubKeys = () => [keyPair.publicKey, ...this.cfg.spanner.peers.map((x) => fromBase64(x.pubkey, 32))];
      const enrollment = new Enrollment({
        state,
        tokens,
        fleet,
        links,
        epochs,
        events,
        metrics,
        log,
        config,
        router,
        hubAddrs,
        hubKeys,
      });
      let supervisor: Supervisor | undefined;
      const mover = new EnvoyMover({
        state,
        fleet,
        links,
        epochs,
        events,
        metrics,
        log,
        config,
        router,
        onMoved: (id) => {
          if (fleet.has(id) && fleet.health.get(id).online) void supervisor?.flushReleases(id).catch(() => undefined);
        },
      });
      const stranded = new StrandedPlacer({ state, fleet, mover, log, config, router });
      supervisor = new Supervisor({
        state,
        fleet,
        links,
        mover,
        events,
        metrics,
        log,
        config,
        stranded,
        termProof: () => termProofs.current(),
      });
      supervisorRef = supervisor;
      moverRef = mover;
      const queries = new Queries({ state, fleet, links, metrics, config });
      const jobs = new JobRunner({ state, fleet, links, queries, metrics, log, config });
      jobsRef = jobs;
      const publisher = new Publisher({ state, fleet, links, events, keyPair, log, config });
      const rollouts = new RolloutRunner({ state, jobs, publisher, events, keyPair, metrics, log });
      rolloutsRef = rollouts;
      const history = new ComplianceHistory({ state, fleet, log, config, canWrite: () => replication.isPrimary });
      const secrets = new Secrets({ state, events, keyPair, log, config });
      secretsRef = secrets;
      const auth = new ApiAuth(tokens, cfg.api.rate_limit, this.adminTokenFile);
      this.adminSecret = await ensureAdminToken(this.adminTokenFile, {
        tokens,
        state,
        serverId: cfg.server_id,
        log,
        replicated: replication.enabled,
      });
      if (!replication.enabled) await this.markInterruptedMoves(state);
      const importDeps: ImportDeps = { state, fleet, links, epochs, events, log, config, router };
      canonicalizeRef = () =>
        void canonicalizeDirectory(importDeps).catch((e: unknown) =>
          log.warn({ err: errorText(e) }, 'could not re-register non-canonical host names; will try at the next start'),
        );
      const { host, port } = parseHostPort(cfg.listen);
      const partsForHttp = {
        state,
        tokens,
        fleet,
        enrollment,
        mover,
        queries,
        supervisor,
        auth,
        metrics,
        events,
        importDeps,
        publisher,
        jobs,
        rollouts,
        history,
        secrets,
        log,
        config,
      };
      const http = buildHttp({
        ...partsForHttp,
        info: () => this.info(),
        ready: () => this.readiness(),
        replication,
        hubAddrs,
        listenAddr: () => this.listenAddr,
        tls: () => this.tls,
        hubKeys,
      });
      this.httpRoutes = http.routes;
      const server = new AxleServer({
        host,
        port,
        id: cfg.server_id,
        keyPair,
        maxConnectionsPerIp: cfg.limits.max_connections_per_ip,
        maxHandshakesPerIp: cfg.limits.max_handshakes_per_ip,
        httpLimits: httpLimitsOf(cfg.limits),
        ...(this.tls ? { tls: { cert: this.tls.cert, key: this.tls.key } } : {}),
        log,
        authenticate: (claim) => authenticatePeer(this.cfg, this.p?.replication, claim),
        onConnection: (conn) => attachPeer(this.p, conn),
        http: http.handler,
        onError: (e, ip) => log.debug({ source: ip, err: errorText(e) }, 'connection refused'),
      });
      this.p = {
        secrets,
        state,
        keyPair,
        termProofs,
        tokens,
        fleet,
        links,
        events,
        webhooks,
        metrics,
        enrollment,
        mover,
        supervisor,
        queries,
        auth,
        server,
        publisher,
        replication,
        jobs,
        rollouts,
        history,
      };
      replicationMetrics(metrics, replication);
      slotMetrics(metrics.m, () => server.slotTotals());
      tlsMetrics(metrics.m, () => this.tls);
      const a = await server.listen();
      this.listenAddr = `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
      if (replication.isPrimary) {
        supervisor.start();
        jobs.resume();
        rollouts.resumeAll();
        if (!replication.enabled) canonicalizeRef();
      }
      replication.start();
      log.info(
        {
          port: a.port,
          addr: this.listenAddr,
          publicKey: toBase64(keyPair.publicKey),
          fingerprint: fingerprint(keyPair.publicKey),
          term: state.term,
          spokes: fleet.ids().length,
          envoys: state.envoys.size,
        },
        'listening',
      );
    } catch (e) {
      await state.close().catch(() => undefined);
      this.p = undefined;
      throw e;
    }
  }

  /** A move that was running when the hub stopped did not finish; say so rather than leave it "running". */
  private async markInterruptedMoves(state: HubStore): Promise<void> {
    for (const m of state.moves.values()) {
      if (m.state === 'running')
        await state.apply({ kind: 'move.put', move: { ...m, state: 'interrupted', finishedAt: Date.now() } });
    }
  }

  private hubAddrs(): string[] {
    const out: string[] = [];
    const { host } = parseHostPort(this.cfg.listen);
    if (this.cfg.public_addr !== undefined) out.push(this.cfg.public_addr);
    else if (host !== '0.0.0.0' && host !== '::' && this.listenAddr) out.push(this.listenAddr);
    for (const p of this.cfg.spanner.peers) out.push(p.addr);
    return out;
  }

  private info(): HubInfo {
    const p = this.p!;
    return {
      id: this.cfg.server_id,
      addr: this.listenAddr,
      publicKey: toBase64(p.keyPair.publicKey),
      fingerprint: fingerprint(p.keyPair.publicKey),
      term: p.state.term,
      role: p.replication.role,
      logSeq: p.state.lastSeq,
      envoys: p.state.envoys.size,
      replication: p.replication.status(),
      spokes: Object.fromEntries(p.fleet.ids().map((id) => [id, p.fleet.state(id)])),
      pendingEnrollments: p.state.pending.size,
      approval: this.cfg.enrollment.approval,
      autoFailover: this.cfg.spanner.auto_failover,
      tls: this.tls ? tlsSummary(this.tls) : { insecure: true },
    };
  }

  private readiness(): { ready: boolean; why?: string } {
    if (!this.p || this.stopping) return { ready: false, why: 'the hub is starting or stopping' };
    return { ready: true };
  }

  /** Re-reads the config file: spokes added, removed or changed without dropping other links. */
  async reload(): Promise<void> {
    const file = this.o.configFile;
    if (!file) throw new AxleError(ErrorCode.INVALID, 'this hub was started without a config file; nothing to reload');
    const next = loadHubConfig(file);
    const fixed = ['server_id', 'listen', 'data_dir', 'key_file'] as const;
    const ignored = fixed.filter((k) => next[k] !== this.cfg[k]);
    if (ignored.length > 0) this.log.warn({ keys: ignored }, 'these settings take effect only after a restart');
    const merged: HubConfig = {
      ...next,
      server_id: this.cfg.server_id,
      listen: this.cfg.listen,
      data_dir: this.cfg.data_dir,
      ...(this.cfg.key_file !== undefined ? { key_file: this.cfg.key_file } : {}),
    };
    const router = new HostRouter(merged.spanner.spokes, merged.spanner.default_spoke);
    const server = this.p?.server;
    // Checked before anything changes: bad TLS files fail the whole reload.
    this.tls = reloadTransport(this.tls, merged, file, (t) => server?.setTls(t), this.log);
    this.cfg = merged;
    this.router = router;
    const p = this.p;
    if (!p) return;
    p.fleet.configure(merged);
    const diff = p.links.sync(merged.spanner.spokes);
    for (const id of diff.removed) p.fleet.health.forget(id);
    for (const c of p.server.connections) {
      if (c.peer.role === 'spoke' && !p.fleet.has(c.peer.id)) c.close();
    }
    p.enrollment.reconfigure();
    p.auth.configure(merged.api.rate_limit);
    p.webhooks.configure(merged.webhooks);
    this.log.info({ ...diff, spokes: p.fleet.ids() }, 'config reloaded');
    for (const id of [...diff.added, ...diff.changed]) void p.supervisor.probe(id);
    // A spoke added (or a pattern, failover_to or default_spoke) may give stranded envoys a home.
    p.supervisor.placeStranded('the hub config was reloaded', true);
  }

  async stop(): Promise<void> {
    const p = this.p;
    if (!p || this.stopping) return;
    this.stopping = true;
    p.rollouts.halt();
    p.jobs.halt();
    await p.replication.stop();
    await p.supervisor.stop();
    await p.mover.stop();
    await p.publisher.stop();
    await p.secrets.stop();
    p.webhooks.stop();
    await p.server.close(500);
    p.links.closeAll();
    await p.state.close();
    this.p = undefined;
    this.stopping = false;
  }

  /** Every HTTP route the hub serves (method and path pattern), from its router's table. */
  routes(): RouteInfo[] {
    return this.httpRoutes?.() ?? [];
  }

  /** Per-address connection slots now held on the hub's port. */
  slotTotals(): SlotTotals | undefined {
    return this.p?.server.slotTotals();
  }

  /** For tests and benchmarks in this package: the live parts. */
  get internals(): Parts | undefined {
    return this.p;
  }
}
