import { join } from 'node:path';
import {
  configFrom,
  cryptoThreadsSetting,
  AxleError,
  ErrorCode,
  Glob,
  HTTP_LIMIT_DEFAULTS,
  httpLimitFields,
  idField,
  arr,
  bool,
  custom,
  def,
  duration,
  formatIssues,
  fromBase64,
  hostPort,
  int,
  loadConfig,
  obj,
  oneOf,
  opt,
  str,
  transportFields,
  type Infer,
  type Issue,
} from '@axle/shared';
import { KEEP_LOG, replicationIssues } from '../store/replication/settings.js';

/** Every event the hub records and can send to webhooks. */
export const EVENT_TYPES = [
  'spoke.down',
  'spoke.up',
  'spoke.draining',
  'spoke.drained',
  'spoke.partial',
  'spoke.resumed',
  'envoy.enrolled',
  'envoy.pending',
  'envoy.rejected',
  'envoy.reassigned',
  'envoy.rekey_allowed',
  'envoy.renamed',
  'envoy.removed',
  'secret.set',
  'secret.removed',
  'move.started',
  'move.finished',
  'token.created',
  'token.revoked',
  'config.published',
  'config.refused',
  'rollout.started',
  'rollout.wave_done',
  'rollout.halted',
  'rollout.paused',
  'rollout.resumed',
  'rollout.finished',
  'rollout.rolled_back',
  'rollout.aborted',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const pubkey = () =>
  custom('public key', (v) => {
    if (typeof v !== 'string') throw new Error('expected the base64 public key printed by `keygen`');
    fromBase64(v, 32, 'public key');
    return v;
  });

const pattern = () =>
  custom(
    'pattern',
    (v) => {
      if (typeof v !== 'string' || v.length === 0)
        throw new Error('expected a non-empty hostname glob such as "*.dc1.*"');
      Glob.compile(v);
      return v;
    },
    ['*.dc1.*'],
  );

/** "hub" only: a spoke config handed to the hub is the commonest slip, so say so plainly. */
const role = () =>
  custom('role', (v) => {
    if (v === 'hub') return 'hub' as const;
    if (v === 'spoke')
      throw new Error('is "spoke", but this is the hub daemon: run axle-spoke with this file, or set role: hub');
    throw new Error(`must be "hub", got ${JSON.stringify(v)}`);
  });

/** `requests` per `per` with bursts up to `burst`: a token bucket, written the way people say it. */
const rateLimit = (requests: number, perMs: number, burst: number) =>
  def(
    obj({
      requests: int({ min: 1, max: 1_000_000 }),
      per: def(duration({ min: 1 }), perMs),
      burst: def(int({ min: 1, max: 1_000_000 }), burst),
    }),
    () => ({
      requests,
      per: perMs,
      burst,
    }),
  );

const spokeSchema = obj({
  id: idField(),
  addr: hostPort(),
  patterns: def(arr(pattern(), { max: 64 }), []),
  pubkey: pubkey(),
  max_envoys: opt(int({ min: 0 })),
  /** Spokes that take this spoke's envoys when it is drained and no other spoke's patterns match them (placement.ts). */
  failover_to: def(arr(idField(), { max: 64 }), []),
});

const autoFailoverSchema = obj({
  enabled: def(bool(), false),
  threshold: def(int({ min: 1, max: 1000 }), 3),
  interval: def(duration({ min: 10 }), 30_000),
  drain_batch: def(int({ min: 1, max: 10_000 }), 100),
  drain_parallel: def(int({ min: 1, max: 64 }), 4),
  drain_jitter: def(duration(), 1000),
});

const webhookSchema = obj({
  url: custom('url', (v) => {
    if (typeof v !== 'string') throw new Error('expected an http(s) URL');
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must be an http:// or https:// URL');
    return v;
  }),
  secret: str({ min: 16, max: 256, hint: 'must be at least 16 characters' }),
  events: def(arr(oneOf(EVENT_TYPES), { max: EVENT_TYPES.length }), () => [...EVENT_TYPES]),
  max_attempts: def(int({ min: 1, max: 20 }), 5),
  backoff: def(duration({ min: 1 }), 1000),
  timeout: def(duration({ min: 1 }), 5000),
});

export const hubConfigSchema = obj({
  server_id: idField(),
  listen: hostPort(),
  /** TLS on the one port (HTTPS, WSS) and the CA outbound links check; or insecure_transport: true. */
  ...transportFields(),
  data_dir: str({ min: 1, max: 1024 }),
  key_file: opt(str({ min: 1, max: 1024 })),
  config_dir: opt(str({ min: 1, max: 1024 })),
  /** Worker threads that check and make signatures (handshakes and frames) beside the event loop. */
  crypto_threads: def(cryptoThreadsSetting(), 'auto' as const),
  /** The address envoys and the bootstrap script use for this hub when `listen` is a wildcard (0.0.0.0) or behind NAT. */
  public_addr: opt(hostPort()),
  /** The directory holding the agent executable GET /agent/axle-envoy serves and bootstrap.sh, the script template (default: dist/agent/ of the build this hub runs from). */
  agent_dir: opt(str({ min: 1, max: 1024 })),
  /** Config publishing: how many versions to keep, and the secret of the publish webhook. */
  config_publish: def(
    obj({
      keep: def(int({ min: 2, max: 1000 }), 10),
      webhook_secret: opt(str({ min: 16, max: 256, hint: 'must be at least 16 characters' })),
      push_timeout: def(duration({ min: 100 }), 30_000),
    }),
    () => ({ keep: 10, push_timeout: 30_000, webhook_secret: undefined as string | undefined }),
  ),
  /** Fleet compliance over time (history/): a sample is stored this often (and when a spoke goes up or down). */
  compliance_history: def(obj({ interval: def(duration({ min: 1000, max: 3_600_000 }), 60_000) }), () => ({
    interval: 60_000,
  })),
  spanner: obj({
    role: role(),
    spokes: def(arr(spokeSchema, { max: 1000 }), []),
    default_spoke: opt(idField()),
    auto_failover: def(autoFailoverSchema, () => ({
      enabled: false,
      threshold: 3,
      interval: 30_000,
      drain_batch: 100,
      drain_parallel: 4,
      drain_jitter: 1000,
    })),
    peers: def(arr(obj({ id: idField(), addr: hostPort(), pubkey: pubkey() }), { max: 16 }), []),
  }),
  enrollment: def(
    obj({
      approval: def(oneOf(['auto', 'manual'] as const), 'auto'),
      rate_limit: rateLimit(30, 60_000, 10),
    }),
    () => ({ approval: 'auto' as const, rate_limit: { requests: 30, per: 60_000, burst: 10 } }),
  ),
  api: def(
    obj({
      rate_limit: rateLimit(50, 1000, 100),
      max_body_bytes: def(int({ min: 256, max: 64 * 1024 * 1024 }), 1024 * 1024),
      /** Fan-out queries one token may have running at once; more answer 429. */
      max_concurrent_queries: def(int({ min: 1, max: 1000 }), 8),
    }),
    () => ({
      rate_limit: { requests: 50, per: 1000, burst: 100 },
      max_body_bytes: 1024 * 1024,
      max_concurrent_queries: 8,
    }),
  ),
  webhooks: def(arr(webhookSchema, { max: 32 }), []),
  /** Replicated hubs (with spanner.peers): see "Replicated hubs" in README.md. Omitted values are derived in replication/settings.ts. */
  replication: def(
    obj({
      min_acks: opt(int({ min: 0, max: 16 })),
      lease: def(duration({ min: 100, max: 600_000 }), 5000),
      election_timeout: opt(duration({ min: 150, max: 900_000 })),
      witnesses: def(arr(obj({ id: idField(), addr: hostPort(), pubkey: pubkey() }), { max: 16 }), []),
      /** Log entries kept for a standby that falls behind; one further behind is sent a snapshot. */
      keep_log: def(int({ min: 1000, max: 100_000_000 }), KEEP_LOG),
    }),
    () => ({
      lease: 5000,
      witnesses: [] as { id: string; addr: string; pubkey: string }[],
      min_acks: undefined as number | undefined,
      election_timeout: undefined as number | undefined,
      keep_log: KEEP_LOG,
    }),
  ),
  limits: def(
    obj({
      max_connections_per_ip: def(int({ min: 1 }), 1024),
      max_handshakes_per_ip: def(int({ min: 1 }), 128),
      ...httpLimitFields(),
    }),
    () => ({ max_connections_per_ip: 1024, max_handshakes_per_ip: 128, ...HTTP_LIMIT_DEFAULTS }),
  ),
  fanout: def(
    obj({
      timeout: def(duration({ min: 1 }), 5000),
      max_parallel: def(int({ min: 0, max: 10_000 }), 0),
      retries: def(int({ min: 0, max: 10 }), 2),
      backoff: def(duration({ min: 1 }), 100),
    }),
    () => ({ timeout: 5000, max_parallel: 0, retries: 2, backoff: 100 }),
  ),
});

export type HubConfig = Infer<typeof hubConfigSchema>;
export type ConfiguredSpoke = HubConfig['spanner']['spokes'][number];
export type WebhookConfig = HubConfig['webhooks'][number];

/** Checks that need the whole config: unique ids, failover_to and a default spoke that exist. */
function crossCheck(c: HubConfig): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<string>();
  c.spanner.spokes.forEach((s, i) => {
    if (seen.has(s.id)) issues.push({ path: `spanner.spokes[${i}].id`, message: `duplicate spoke id "${s.id}"` });
    seen.add(s.id);
  });
  c.spanner.spokes.forEach((s, i) => {
    s.failover_to.forEach((to, j) => {
      const path = `spanner.spokes[${i}].failover_to[${j}]`;
      if (to === s.id) issues.push({ path, message: `names spoke "${to}" itself; list the spokes that back it up` });
      else if (!seen.has(to)) issues.push({ path, message: `names "${to}", which is not in spanner.spokes` });
      else if (s.failover_to.indexOf(to) !== j) issues.push({ path, message: `lists "${to}" twice` });
    });
  });
  if (c.spanner.default_spoke !== undefined && !seen.has(c.spanner.default_spoke)) {
    issues.push({
      path: 'spanner.default_spoke',
      message: `names "${c.spanner.default_spoke}", which is not in spanner.spokes`,
    });
  }
  issues.push(...replicationIssues(c));
  return issues;
}

export function loadHubConfig(file: string): HubConfig {
  const c = loadConfig(file, hubConfigSchema);
  const issues = crossCheck(c);
  if (issues.length > 0) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${file}: ${issues.length} problem(s) in config:\n${issues.map((i) => `${file}: ${i.path}: ${i.message}`).join('\n')}`,
    );
  }
  return c;
}

/** Validates a config given as an object (tests, embedding); `source` names it in errors. */
export function hubConfigFrom(raw: unknown, source = 'hub config'): HubConfig {
  const c = configFrom(hubConfigSchema, raw, source);
  const more = crossCheck(c);
  if (more.length > 0) throw new AxleError(ErrorCode.BAD_CONFIG, `${source}: ${formatIssues(more)}`);
  return c;
}

export function keyFileOf(c: HubConfig): string {
  return c.key_file ?? join(c.data_dir, 'hub.key');
}
