/**
 * The hub's HTTP API contract: the request and response bodies the hub serves, the CLI and
 * the test kit send and the web UI reads, declared once. Types only and free of Node, so the
 * browser app imports it too (`@axle/shared/api-types`, type-only).
 */
import type { ApiRole, InstallCommand } from './api-admin.js';
import type { EnvoySummary, SpokeStats } from './message-envoys.js';
import type { PolicyOutcome, ResourceResult, Run } from './message-runs.js';

export type { EnvoySummary, PolicyOutcome, ResourceResult, Run, SpokeStats };
/** The jobs and rollouts routes, and the config, enrollment and secrets routes: declared beside this file. */
export type * from './api-jobs.js';
export type * from './api-admin.js';

/** Every reply that is not 2xx: `{error: ApiErrorBody}` (ApiErrorBody lives beside the error catalogue). */

/** How many envoys are in each compliance state (the state itself is `Compliance`, message-envoys.ts). */
export interface ComplianceCounts {
  compliant: number;
  noncompliant: number;
  unknown: number;
}

/** How one spoke fared in a fan-out. */
export type FanOutOutcome = 'ok' | 'timeout' | 'unreachable' | `error: ${string}`;

export interface SpokeReport {
  id: string;
  outcome: FanOutOutcome;
  ms: number;
  attempts: number;
}

export interface Coverage {
  /** Envoys in the directory on spokes that answered. */
  answered: number;
  /** Envoys in the directory on the spokes asked. */
  total: number;
  ratio: number;
}

/** GET /api/v1/envoys */
export interface EnvoyPage {
  items: EnvoySummary[];
  cursor: string | null;
  /** Envoys matching the filter on the spokes that answered; an estimate where a spoke said so. */
  matched: { count: number; exact: boolean };
  spokes: SpokeReport[];
  coverage: Coverage;
  partial: boolean;
}

/** GET /api/v1/stats */
export interface FleetStats {
  envoys: number;
  connected: number;
  compliance: ComplianceCounts;
  complianceRatio: number;
  checkinsPerMinute: number;
  perSpoke: (SpokeStats & { state: string })[];
  spokes: SpokeReport[];
  coverage: Coverage;
  partial: boolean;
}

/** Envoys a move could not place, grouped by why. */
export interface UnplacedReason {
  /** no_match: no spoke's patterns take it; unavailable: every candidate is down, full or draining; failed: its adopt failed. */
  code: 'no_match' | 'unavailable' | 'failed';
  reason: string;
  count: number;
  /** A few of the host names, to start from. */
  examples: string[];
}

/** `partial`: a drain ended but could not place every envoy; those left are stranded on the spoke. */
export type SpokeAdminState = 'active' | 'draining' | 'drained' | 'partial';

/** What an operator (or auto-failover) set on a spoke: drained, draining, and why. */
export interface SpokeAdmin {
  id: string;
  state: SpokeAdminState;
  /** True when auto-failover set the state: recovery undoes it by itself. */
  auto: boolean;
  reason: string;
  since: number;
  moveId?: string;
  /** The target an operator named (`drain --to`): re-placing stranded envoys keeps to it. */
  to?: string;
  /** Why the last drain left envoys behind (state `partial`); the live count is the directory's. */
  stranded?: { count: number; reasons: UnplacedReason[]; at: number };
}

export type SpokeState = 'online' | 'offline' | 'draining' | 'drained' | 'partial';

/** One spoke in GET /api/v1/spokes. */
export interface SpokeView {
  id: string;
  addr: string;
  patterns: string[];
  failoverTo: string[];
  maxEnvoys: number | null;
  state: SpokeState;
  envoys: number;
  /** Envoys a finished drain could not place (state partial), and why. */
  stranded: { count: number; reasons: UnplacedReason[]; since: number | null };
  pendingReleases: number;
  admin: SpokeAdmin | null;
  health: {
    online: boolean;
    probed: boolean;
    consecutiveFailures: number;
    latencyMs: number | null;
    latencyP50Ms: number;
    latencyP99Ms: number;
    lastProbeAt: number | null;
    lastOkAt: number | null;
    lastPushAt: number | null;
    lastError: string | null;
  };
  /** True while the spoke answers: `stats` are current (null otherwise; see lastStats). */
  live: boolean;
  stats: SpokeStats | null;
  statsAt: number | null;
  lastStats: SpokeStats | null;
  lastStatsAt: number | null;
  compliance: ComplianceCounts | null;
}

/** GET /api/v1/spokes */
export interface SpokeList {
  spokes: SpokeView[];
}

/** GET /api/v1/spokes/:id */
export interface SpokeDetail extends Omit<SpokeView, 'envoys'> {
  recentRuns: Run[];
  recentRunsCursor: string | null;
  envoys: EnvoyPage;
  outcome: FanOutOutcome;
}

/** A point of the compliance chart (GET /api/v1/compliance/history). */
export interface HistoryPoint {
  at: number;
  compliant: number;
  noncompliant: number;
  unknown: number;
  /** compliant / (compliant + noncompliant); null while nothing has been judged. */
  ratio: number | null;
  spokesOnline: number;
  spokesTotal: number;
  /** For an hourly point: the lowest ratio within the hour. */
  minRatio?: number | null;
}

/** GET /api/v1/envoys/:hostname */
export interface EnvoyDetail {
  directory: {
    hostname: string;
    spokeId: string;
    epoch: number;
    enrolledAt: number;
    pubkey?: string;
    state: string;
  } & Record<string, unknown>;
  detail?: { envoy?: EnvoySummary; traits?: Record<string, unknown>; runs: Run[] };
  spoke: SpokeReport;
}

export type MoveKind = 'drain' | 'reassign' | 'failover';
/** `partial`: finished, but some envoys could not be placed (`skipped` + `failed`, reasons in `unplaced`). */
export type MoveState = 'running' | 'done' | 'partial' | 'cancelled' | 'interrupted' | 'failed';

/** A drain, reassign or failover (POST /api/v1/spokes/:id/drain, /reassign; GET /api/v1/moves). */
export interface Move {
  id: string;
  kind: MoveKind;
  from?: string;
  to?: string;
  match?: string;
  state: MoveState;
  total: number;
  moved: number;
  /** Already on the target (nothing to do). */
  already: number;
  /** No spoke would take them. */
  skipped: number;
  failed: number;
  startedAt: number;
  finishedAt?: number;
  by: string;
  errors: string[];
  /** What started an automatic move (failover). */
  trigger?: string;
  unplaced?: UnplacedReason[];
  /** The interrupted drain this one carries on (a new primary resumed it). */
  resumes?: string;
  /** On an interrupted drain: the move that carried it on. */
  resumedBy?: string;
}

/** POST /api/v1/drain and /api/v1/reassign: the move (finished when `wait` was asked), and whether it was already running. */
export interface MoveStarted {
  move: Move;
  /** True when the same move was already running: this answer follows it instead of starting another. */
  existing: boolean;
}

/** GET /api/v1/moves, newest first. */
export interface MoveList {
  moves: Move[];
}

/** One entry of GET /api/v1/events (and the webhooks' payload). */
export interface ApiEvent {
  seq: number;
  at: number;
  type: string;
  data: Record<string, unknown>;
}

/** GET /api/v1/events */
export interface EventPage {
  events: ApiEvent[];
  /** The last event's seq, to pass as `after` for the next page; null when there were none. */
  next: number | null;
}

/** A hub named in the replication status. */
export interface ReplicationPeer {
  id: string;
  addr: string;
  role: 'primary' | 'standby' | 'unreachable' | 'unknown';
  linked: boolean;
  term: number | null;
  /** Only on the primary: how far the standby has acknowledged. */
  logPosition?: number | null;
  lag?: number | null;
  lastAckMsAgo?: number | null;
}

export type HubRole = 'primary' | 'standby' | 'candidate';

/** The `replication` part of GET /api/v1/hub. */
export interface ReplicationStatus {
  enabled: boolean;
  role: HubRole;
  term: number;
  logPosition: number;
  lag: number;
  primary: { id: string; addr: string | null } | null;
  leaseMs: number;
  electionTimeoutMs: number;
  minAcks: number;
  voters: number;
  majority: number;
  leaseValidForMs: number;
  hubs: ReplicationPeer[];
  witnesses: { id: string; addr: string; lastAckMsAgo: number | null }[];
}

/** The served certificate, or `{insecure: true}` for a hub in clear. */
export type TlsSummary =
  | {
      certFile: string;
      subject: string;
      names: string;
      notAfter: string;
      expiresInSeconds: number;
      caFile: string | undefined;
      caPin: string;
      caNotAfter: string;
    }
  | { insecure: true };

/** GET /api/v1/hub */
export interface HubInfo {
  id: string;
  addr: string;
  publicKey: string;
  fingerprint: string;
  term: number;
  role: HubRole;
  logSeq: number;
  envoys: number;
  replication: ReplicationStatus;
  spokes: Record<string, SpokeState>;
  pendingEnrollments: number;
  approval: 'auto' | 'manual';
  autoFailover: { enabled: boolean; threshold: number; interval: number } & Record<string, unknown>;
  tls: TlsSummary;
}

/** POST /api/v1/hub/promote: this hub's new role and term, and the replication status after. */
export interface Promoted {
  role: HubRole;
  term: number;
  replication: ReplicationStatus;
}

/** A join token as GET /api/v1/tokens lists it (never its secret). */
export interface JoinTokenView {
  id: string;
  state: 'active' | 'revoked' | 'expired' | 'used up';
  pattern?: string;
  spokes?: string[];
  note?: string;
  uses: number;
  maxUses?: number;
  expiresAt?: number;
  createdAt: number;
  createdBy?: string;
  revokedAt?: number;
}

/** An API token as GET /api/v1/api-tokens lists it (never its secret). */
export interface ApiTokenView {
  id: string;
  role: ApiRole;
  name: string;
  createdAt: number;
  revokedAt?: number;
}

/** POST /api/v1/tokens: the secret is shown only here. */
export interface JoinTokenCreated {
  token: JoinTokenView;
  secret: string;
  /** The pinned install command, where the hub knows its address and TLS. */
  install?: InstallCommand;
}

/** POST /api/v1/api-tokens: the secret is shown only here. */
export interface ApiTokenCreated {
  token: ApiTokenView;
  secret: string;
}
