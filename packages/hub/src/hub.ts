import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AxleError,
  AxleServer,
  ErrorCode,
  errorText,
  fingerprint,
  fromBase64,
  httpLimitsOf,
  slotMetrics,
  requireCanonicalEnvoyId,
  loadOrCreateKeyPair,
  parseHostPort,
  reloadTransport,
  silentLogger,
  startTransport,
  tlsMetrics,
  tlsSummary,
  toBase64,
  type Connection,
  type KeyPair,
  type Logger,
  type Message,
  type PeerClaim,
  type RouteInfo,
  type SlotTotals,
  type TlsMaterial,
} from '@axle/shared';
import { ApiAuth } from './auth.js';
import { buildHttp } from './api.js';
import { keyFileOf, loadHubConfig, type HubConfig } from './config.js';
import { Mover } from './drain.js';
import { Enrollment } from './enroll.js';
import { Epochs } from './epochs.js';
import { Events } from './events.js';
import { Fleet } from './fleet.js';
import { HubMetrics } from './metrics.js';
import { Queries } from './query.js';
import { Publisher } from './config-publish.js';
import { JobRunner } from './jobs/runner.js';
import { Router } from './router.js';
import { replicationMetrics } from './replication/metrics.js';
import { Replication } from './replication/replication.js';
import { SpokeLinks } from './spoke-links.js';
import { StateStore } from './state.js';
import { StrandedPlacer } from './stranded.js';
import { Supervisor } from './supervisor.js';
import { TermProofs } from './term-proof.js';
import { canonicalizeDirectory } from './names.js';
import { Secrets } from './secrets.js';
import { Tokens, hashSecret, newSecret } from './tokens.js';
import { Webhooks } from './webhooks.js';
import type { ImportDeps } from './import.js';

const ADMIN_TOKEN_ID = 'admin';

interface Parts {
  secrets: Secrets;
  state: StateStore;
  keyPair: KeyPair;
  termProofs: TermProofs;
  tokens: Tokens;
  fleet: Fleet;
  links: SpokeLinks;
  events: Events;
  webhooks: Webhooks;
  metrics: HubMetrics;
  enrollment: Enrollment;
  mover: Mover;
  supervisor: Supervisor;
  queries: Queries;
  auth: ApiAuth;
  server: AxleServer;
  publisher: Publisher;
  replication: Replication;
  jobs: JobRunner;
}

/**
 * The hub daemon: enrollment routing, the envoy directory, fan-out queries, spoke health,
 * auto-failover and manual moves, the HTTP API and webhooks. All durable state goes through
 * one StateStore (see state.ts).
 */
export class Hub {
  private cfg: HubConfig;
  private router: Router;
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
    this.router = new Router(config.spanner.spokes, config.spanner.default_spoke);
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
    const state = await StateStore.open(cfg.data_dir);
    try {
      const config = () => this.cfg;
      const router = () => this.router;
      const tokens = new Tokens(state);
      const fleet = new Fleet(state, cfg);
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
      let moverRef: Mover | undefined;
      let secretsRef: Secrets | undefined;
      let canonicalizeRef: (() => void) | undefined;
      let jobsRef: JobRunner | undefined;
      const replication = new Replication({
        state,
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
          canonicalizeRef?.();
          void secretsRef
            ?.sealForPeers()
            .catch((e: unknown) => log.warn({ err: errorText(e) }, 'could not seal secrets for every peer hub'));
        },
        onStandby: async () => {
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
      const mover = new Mover({
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
      const secrets = new Secrets({ state, events, keyPair, log, config });
      secretsRef = secrets;
      const auth = new ApiAuth(tokens, cfg.api.rate_limit, this.adminTokenFile);
      await this.ensureAdminToken(tokens, state, replication.enabled);
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
        authenticate: (claim) => this.authenticate(claim),
        onConnection: (conn) => this.onConnection(conn),
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
      };
      replicationMetrics(metrics, replication);
      slotMetrics(metrics.m, () => server.slotTotals());
      tlsMetrics(metrics.m, () => this.tls);
      const a = await server.listen();
      this.listenAddr = `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
      if (replication.isPrimary) {
        supervisor.start();
        jobs.resume();
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

  /** Writes a random admin token to <data_dir>/admin.token (0600) on first start; keeps the store in step with the file. */
  private async ensureAdminToken(tokens: Tokens, state: StateStore, replicated = false): Promise<void> {
    const file = this.adminTokenFile;
    let secret: string;
    if (existsSync(file)) {
      secret = readFileSync(file, 'utf8').trim();
      if (secret.length < 16)
        throw new AxleError(
          ErrorCode.BAD_CONFIG,
          `${file} holds no usable token; delete it and restart the hub to make a new one`,
        );
    } else {
      secret = newSecret('axa');
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, `${secret}\n`, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, file);
      this.log.info({ file }, 'wrote the admin API token; use it with the axle CLI (--token or AXLE_TOKEN)');
    }
    this.adminSecret = secret;
    if (replicated) {
      // A standby cannot write: each hub accepts its own file, and the primary records it as admin.<id> for the others.
      tokens.localAdmin = {
        id: `admin.${this.cfg.server_id}`,
        hash: hashSecret(secret),
        role: 'admin',
        name: `admin.${this.cfg.server_id}`,
        createdAt: Date.now(),
      };
      return;
    }
    const cur = state.apiTokens.get(ADMIN_TOKEN_ID);
    if (!cur || cur.hash !== hashSecret(secret) || cur.revokedAt !== undefined)
      await tokens.createApi('admin', 'admin', secret, ADMIN_TOKEN_ID);
    this.adminSecret = secret;
  }

  /** A move that was running when the hub stopped did not finish; say so rather than leave it "running". */
  private async markInterruptedMoves(state: StateStore): Promise<void> {
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

  private authenticate(claim: PeerClaim): { role: string } {
    if (claim.role === 'envoy') {
      requireCanonicalEnvoyId(claim.id);
      return { role: 'envoy' };
    }
    if (claim.role === 'hub' && this.p) return this.p.replication.authenticate(claim);
    if (claim.role === 'spoke') {
      const s = this.cfg.spanner.spokes.find((x) => x.id === claim.id);
      if (!s)
        throw new AxleError(
          ErrorCode.UNKNOWN_KEY,
          `spoke "${claim.id}" is not in this hub's spanner.spokes; add it (id, addr, patterns, pubkey) and reload the hub`,
        );
      if (s.pubkey !== toBase64(claim.pubkey)) {
        throw new AxleError(
          ErrorCode.UNKNOWN_KEY,
          `spoke "${claim.id}" presented key ${fingerprint(claim.pubkey)}, not the pubkey in the hub config; run axle-spoke keygen and update spanner.spokes`,
        );
      }
      return { role: 'spoke' };
    }
    throw new AxleError(
      ErrorCode.UNKNOWN_KEY,
      `role "${claim.role}" is not served by the hub (envoys enroll and locate here; spokes push status)`,
    );
  }

  private onConnection(conn: Connection): void {
    const p = this.p;
    if (!p) return conn.close();
    if (conn.peer.role === 'envoy') {
      conn.onRequest = async (msg: Message, c: Connection): Promise<Message> => {
        // A standby tells the envoy where the primary is (the error names its address).
        if ((msg.type === 'enroll' || msg.type === 'locate') && !p.replication.isPrimary)
          throw p.replication.notPrimary();
        if (msg.type === 'enroll') return p.enrollment.enroll(msg, c);
        if (msg.type === 'locate') return p.enrollment.locate(msg, c);
        throw new AxleError(
          ErrorCode.INVALID,
          `the hub serves envoys only enroll and locate, not ${msg.type}; send check-ins and reports to your spoke`,
        );
      };
      conn.onEvent = () => undefined;
      return;
    }
    if (conn.peer.role === 'hub') return p.replication.attachInbound(conn);
    if (conn.peer.role === 'spoke') {
      const id = conn.peer.id;
      conn.onRequest = (msg: Message): Message => {
        if (msg.type === 'secret_relay') {
          if (!p.fleet.has(id))
            throw new AxleError(ErrorCode.UNKNOWN_KEY, `spoke ${id} is no longer in the hub config`);
          if (!p.replication.isPrimary) throw p.replication.notPrimary();
          return p.secrets.deliver(id, msg);
        }
        if (msg.type !== 'status')
          throw new AxleError(
            ErrorCode.INVALID,
            `the hub takes only status pushes and secret requests from spokes, not ${msg.type}`,
          );
        if (msg.stats.spokeId !== id)
          throw new AxleError(
            ErrorCode.INVALID,
            `status for spoke ${msg.stats.spokeId} on a connection authenticated as ${id}`,
          );
        if (!p.fleet.has(id)) throw new AxleError(ErrorCode.UNKNOWN_KEY, `spoke ${id} is no longer in the hub config`);
        if (msg.stats.term > p.state.term) {
          // The spoke has followed a newer primary: this hub is stale.
          void p.replication.learnTerm(msg.stats.term, `spoke ${id}`);
          throw new AxleError(
            ErrorCode.STALE_TERM,
            `this hub is at term ${p.state.term} but spoke ${id} follows term ${msg.stats.term}; push to the current primary`,
          );
        }
        if (!p.replication.isPrimary) throw p.replication.notPrimary();
        p.supervisor.onStatus(id, msg.stats);
        return { type: 'status_ok', term: p.state.term, termProof: p.termProofs.current() };
      };
      conn.onEvent = () => undefined;
      return;
    }
    conn.close();
  }

  private info(): Record<string, unknown> {
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
    const router = new Router(merged.spanner.spokes, merged.spanner.default_spoke);
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
