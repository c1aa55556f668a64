/**
 * The hub's composition root: each subsystem built once around the opened store and handed
 * the others it works with. The Hub (hub.ts) starts, reloads and stops what is built here.
 */
import {
  AxleServer,
  CryptoPool,
  cryptoThreadsFor,
  errorText,
  fromBase64,
  httpLimitsOf,
  parseHostPort,
  slotMetrics,
  tlsMetrics,
  type HubInfo,
  type KeyPair,
  type Logger,
  type RouteInfo,
  type TlsMaterial,
} from '@axle/shared';
import { ApiAuth } from '../http/auth.js';
import { buildHttp } from '../http/api.js';
import { Publisher } from '../jobs/config-publish.js';
import { RolloutRunner } from '../jobs/rollouts/runner.js';
import { JobRunner } from '../jobs/runner.js';
import { Enrollment } from '../placement/enroll.js';
import { Epochs } from '../placement/epochs.js';
import type { ImportDeps } from '../placement/import.js';
import { EnvoyMover } from '../placement/mover.js';
import { canonicalizeDirectory } from '../placement/names.js';
import { markInterruptedMoves } from '../placement/resume.js';
import type { HostRouter } from '../placement/router.js';
import { StrandedPlacer } from '../placement/stranded.js';
import { Queries } from '../spokes/query.js';
import { SpokeRegistry } from '../spokes/registry.js';
import { SpokeLinks } from '../spokes/spoke-links.js';
import { Supervisor } from '../spokes/supervisor.js';
import { Events } from '../store/events.js';
import { ComplianceHistory } from '../store/history/sampler.js';
import type { CommitTracker } from '../store/replication/commit.js';
import { replicationMetrics } from '../store/replication/metrics.js';
import { Replication } from '../store/replication/replication.js';
import { TermProofs } from '../store/replication/term-proof.js';
import { Secrets } from '../store/secrets.js';
import type { HubStore } from '../store/state.js';
import { Tokens, hashSecret } from '../store/tokens.js';
import { Webhooks } from '../store/webhooks.js';
import { ensureAdminToken } from './admin-token.js';
import type { HubConfig } from './config.js';
import { attachPeer, authenticatePeer } from './listener.js';
import { HubMetrics } from './metrics.js';

/** The hub's subsystems, wired. */
export interface HubParts {
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
  /** Signature checks and signatures of the server's handshakes and frames, off the event loop. */
  crypto: CryptoPool;
  publisher: Publisher;
  replication: Replication;
  jobs: JobRunner;
  rollouts: RolloutRunner;
  history: ComplianceHistory;
}

/** What the parts need of the Hub itself: what a reload or the listener changes, read when used. */
export interface HubShell {
  log: Logger;
  config: () => HubConfig;
  router: () => HostRouter;
  /** The TLS files in use (reloaded on SIGHUP); undefined with insecure_transport. */
  tls: () => TlsMaterial | undefined;
  /** The address the listener got (empty until it listens). */
  listenAddr: () => string;
  adminTokenFile: string;
  /** Every hub's address (this one's and its peers'), as envoys are told them. */
  hubAddrs: () => string[];
  info: () => HubInfo;
  ready: () => { ready: boolean; why?: string };
  /** The parts as the Hub holds them (undefined until started and after stop), for the listener. */
  parts: () => HubParts | undefined;
}

export interface ComposedHub {
  parts: HubParts;
  /** The admin.token secret (written on first start). */
  adminSecret: string;
  routes: () => RouteInfo[];
  /** Re-registers non-canonical host names in the directory, in the background. */
  canonicalize: () => void;
}

/** Builds the hub's parts; nothing listens and no scheduled work runs until the Hub starts them. */
export async function composeHub(
  shell: HubShell,
  { state, keyPair, commits }: { state: HubStore; keyPair: KeyPair; commits: CommitTracker },
): Promise<ComposedHub> {
  const { log, config, router, hubAddrs, tls } = shell;
  const cfg = config();
  const ca = () => tls()?.ca;
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
  const importDeps: ImportDeps = { state, fleet, links, epochs, events, log, config, router };
  const canonicalize = () =>
    void canonicalizeDirectory(importDeps).catch((e: unknown) =>
      log.warn({ err: errorText(e) }, 'could not re-register non-canonical host names; will try at the next start'),
    );
  // Replication is built before the parts its role changes start and stop (they need it in
  // turn); it calls onPrimary/onStandby only once started, after everything here is set.
  let supervisorRef: Supervisor | undefined;
  let moverRef: EnvoyMover | undefined;
  let secretsRef: Secrets | undefined;
  let jobsRef: JobRunner | undefined;
  let rolloutsRef: RolloutRunner | undefined;
  let adminSecret = '';
  const replication = new Replication({
    state,
    commits,
    keyPair,
    ca,
    log,
    config,
    selfAddr: shell.listenAddr,
    adminHash: () => hashSecret(adminSecret),
    // Scheduled work (probes, auto-failover, catch-up releases, moves) runs only on the primary.
    // The supervisor resumes interrupted drains after its first probe round (resume.ts).
    onPrimary: async () => {
      epochs.resync();
      await markInterruptedMoves(state).catch((e: unknown) =>
        log.warn({ err: errorText(e) }, 'could not mark interrupted moves'),
      );
      supervisorRef?.start();
      jobsRef?.resume();
      rolloutsRef?.resumeAll();
      canonicalize();
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
  const hubKeys = () => [keyPair.publicKey, ...config().spanner.peers.map((x) => fromBase64(x.pubkey, 32))];
  // What enrollment and the mover both place envoys with.
  const placing = { state, fleet, links, epochs, events, metrics, log, config, router };
  const enrollment = new Enrollment({ ...placing, tokens, hubAddrs, hubKeys });
  let supervisor: Supervisor | undefined;
  const mover = new EnvoyMover({
    ...placing,
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
  const auth = new ApiAuth(tokens, cfg.api.rate_limit, shell.adminTokenFile);
  adminSecret = await ensureAdminToken(shell.adminTokenFile, {
    tokens,
    state,
    serverId: cfg.server_id,
    log,
    replicated: replication.enabled,
  });
  if (!replication.enabled) await markInterruptedMoves(state);
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
  const crypto = new CryptoPool({
    keyPair,
    // Two cores left to the event loop and LMDB's writer: an enrollment now needs only a verify
    // and a sign here, and handing those to a worker cost about as much as doing them (bench/enroll
    // on 2 cores: 1,109-1,143 enroll/s without a worker, 991-1,072 with one).
    threads: cryptoThreadsFor(cfg.crypto_threads, 2),
    onWorkerError: (e) => log.error({ err: errorText(e) }, 'signature worker failed; replaced'),
  });
  const http = buildHttp({
    ...partsForHttp,
    info: shell.info,
    ready: shell.ready,
    replication,
    hubAddrs,
    listenAddr: shell.listenAddr,
    tls,
    hubKeys,
    envoyRequests: { crypto, publicKey: keyPair.publicKey },
  });
  const tlsNow = tls();
  const server = new AxleServer({
    crypto,
    // Envoys are the many (enrollments, locates). Peers and spokes stay on the event loop: a lease
    // ack queued behind envoy checks on a busy machine could cost the primary its lease.
    cryptoRoles: ['envoy'],
    host,
    port,
    id: cfg.server_id,
    keyPair,
    maxConnectionsPerIp: cfg.limits.max_connections_per_ip,
    maxHandshakesPerIp: cfg.limits.max_handshakes_per_ip,
    httpLimits: httpLimitsOf(cfg.limits),
    ...(tlsNow ? { tls: { cert: tlsNow.cert, key: tlsNow.key } } : {}),
    log,
    authenticate: (claim) => authenticatePeer(config(), shell.parts()?.replication, claim),
    onConnection: (conn) => attachPeer(shell.parts(), conn),
    http: http.handler,
    onError: (e, ip) => log.debug({ source: ip, err: errorText(e) }, 'connection refused'),
  });
  const parts: HubParts = {
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
    crypto,
    publisher,
    replication,
    jobs,
    rollouts,
    history,
  };
  replicationMetrics(metrics, replication);
  slotMetrics(metrics.m, () => server.slotTotals());
  tlsMetrics(metrics.m, tls);
  return { parts, adminSecret, routes: http.routes, canonicalize };
}
