/**
 * The hub daemon as a whole (src/daemon): its config (config.ts), the wiring of its
 * subsystems (compose.ts), the Hub class that starts, reloads and stops them (hub.ts), the Prometheus registry every
 * subsystem reports into (metrics.ts), the fleet CA behind `axle-hub ca` (ca.ts) and the
 * `axle-hub` executable (axle-hub.ts, built to dist/bin/axle-hub.js).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HubInfo } from '@axle/shared';
import {
  AxleError,
  ErrorCode,
  fingerprint,
  loadOrCreateKeyPair,
  parseHostPort,
  reloadTransport,
  silentLogger,
  startTransport,
  tlsSummary,
  toBase64,
  type Logger,
  type RouteInfo,
  type SlotTotals,
  type TlsMaterial,
} from '@axle/shared';
import { HostRouter } from '../placement/router.js';
import { CommitTracker } from '../store/replication/commit.js';
import { replicationSettings } from '../store/replication/settings.js';
import { HubStore } from '../store/state.js';
import { composeHub, type HubParts } from './compose.js';
import { keyFileOf, loadHubConfig, type HubConfig } from './config.js';

/**
 * The hub daemon: enrollment routing, the envoy directory, fan-out queries, spoke health,
 * auto-failover and manual moves, the HTTP API and webhooks. All durable state goes through
 * one HubStore (see state.ts).
 */
export class Hub {
  private cfg: HubConfig;
  private router: HostRouter;
  private readonly log: Logger;
  private p: HubParts | undefined;
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
    const { keyPair, created } = loadOrCreateKeyPair(keyFileOf(cfg));
    if (created) log.info({ keyFile: keyFileOf(cfg) }, 'created hub key');
    // Replication's say over writes is given to the store as it opens (none on a single hub).
    const commits = new CommitTracker(replicationSettings(cfg));
    const state = await HubStore.open(
      cfg.data_dir,
      replicationSettings(cfg).enabled ? commits : undefined,
      cfg.replication.keep_log,
    );
    try {
      const { parts, adminSecret, routes, canonicalize } = await composeHub(
        {
          log,
          config: () => this.cfg,
          router: () => this.router,
          tls: () => this.tls,
          listenAddr: () => this.listenAddr,
          adminTokenFile: this.adminTokenFile,
          hubAddrs: () => this.hubAddrs(),
          info: () => this.info(),
          ready: () => this.readiness(),
          parts: () => this.p,
        },
        { state, keyPair, commits },
      );
      this.adminSecret = adminSecret;
      this.httpRoutes = routes;
      this.p = parts;
      const { server, replication, supervisor, jobs, rollouts, fleet } = parts;
      const a = await server.listen();
      this.listenAddr = `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
      if (replication.isPrimary) {
        supervisor.start();
        jobs.resume();
        rollouts.resumeAll();
        if (!replication.enabled) canonicalize();
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
      await this.p?.crypto.close();
      await state.close().catch(() => undefined);
      this.p = undefined;
      throw e;
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
    await p.crypto.close();
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
}
