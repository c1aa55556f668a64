/** The API answers this app reads (see "HTTP API" in README.md). */
export interface Compliance {
  compliant: number;
  noncompliant: number;
  unknown: number;
}

export interface SpokeStats {
  spokeId: string;
  envoys: number;
  connected: number;
  compliance: Compliance;
  checkinsPerMinute: number;
  latencyMs: { p50: number; p99: number };
  configVersion: number;
  term: number;
  uptimeS: number;
  version: string;
}

/** Envoys a move could not place, grouped by why. */
export interface Unplaced {
  code: string;
  reason: string;
  count: number;
  examples: string[];
}

export interface SpokeView {
  id: string;
  addr: string;
  patterns: string[];
  failoverTo: string[];
  maxEnvoys: number | null;
  state: string;
  envoys: number;
  /** Envoys a finished drain could not place (state partial), and why. */
  stranded: { count: number; reasons: Unplaced[]; since: number | null };
  pendingReleases: number;
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
  compliance: Compliance | null;
}

export interface SpokeReport {
  id: string;
  outcome: string;
  ms: number;
  attempts: number;
}

export interface EnvoySummary {
  hostname: string;
  spokeId: string;
  epoch: number;
  enrolledAt: number;
  lastSeen: number;
  connected: boolean;
  compliance: 'compliant' | 'noncompliant' | 'unknown';
  lastRunAt: number;
  configVersion: number;
}

export interface EnvoyPage {
  items: EnvoySummary[];
  cursor: string | null;
  spokes: SpokeReport[];
  partial: boolean;
  coverage: { answered: number; total: number; ratio: number };
}

export interface ResourceResult {
  resource: string;
  policy: string;
  status: string;
  message: string;
  durationMs: number;
  diff?: string;
}

export interface PolicyOutcome {
  name: string;
  status: string;
  reason?: string;
}

export interface Run {
  id: string;
  hostname: string;
  startedAt: number;
  finishedAt: number;
  configVersion: number;
  mode: string;
  trigger: string;
  compliant: boolean;
  counts: { ok: number; changed: number; failed: number; drift: number };
  results: ResourceResult[];
  error?: string;
  policies?: PolicyOutcome[];
}

export interface SpokeDetail extends Omit<SpokeView, 'envoys'> {
  recentRuns: Run[];
  envoys: EnvoyPage;
  outcome: string;
}

export interface FleetStats {
  envoys: number;
  connected: number;
  compliance: Compliance;
  complianceRatio: number;
  checkinsPerMinute: number;
  perSpoke: (SpokeStats & { state: string })[];
  spokes: SpokeReport[];
  partial: boolean;
}

export interface Sample {
  at: number;
  compliant: number;
  noncompliant: number;
  unknown: number;
  ratio: number | null;
  spokesOnline: number;
  spokesTotal: number;
}

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

export interface Move {
  id: string;
  kind: string;
  state: string;
  total: number;
  moved: number;
  already: number;
  skipped: number;
  failed: number;
  errors?: unknown;
  unplaced?: Unplaced[];
  from?: string;
  to?: string;
}

export interface HubEvent {
  seq: number;
  type: string;
  at: number;
  data: Record<string, unknown>;
}
