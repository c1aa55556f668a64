import { join } from 'node:path';
import {
  configFrom,
  cryptoThreadsSetting,
  DEFAULT_MAX_REPORT_BYTES,
  DEFAULT_QUERY_STEPS,
  HTTP_LIMIT_DEFAULTS,
  httpLimitFields,
  idField,
  arr,
  custom,
  def,
  duration,
  fromBase64,
  hostPort,
  int,
  loadConfig,
  obj,
  opt,
  str,
  transportFields,
  type Infer,
  type Schema,
} from '@axle/shared';

/** The spoke's YAML config (snake_case keys as in ARCHITECTURE.md; these names are an interface). */

const DAY = 24 * 3600 * 1000;

const hubKey = custom('base64 public key', (v) => {
  if (typeof v !== 'string')
    throw new Error('expected the base64 of a 32-byte Ed25519 public key (as printed by `axle-hub keygen`)');
  try {
    fromBase64(v, 32, 'hub public key');
  } catch (e) {
    throw new Error(`${(e as Error).message}; paste the key printed by \`axle-hub keygen\``);
  }
  return v;
});

const role = custom('role', (v) => {
  if (v === 'spoke') return 'spoke' as const;
  if (v === 'hub') {
    throw new Error(
      'is "hub", but this is the spoke daemon: set spanner.role to "spoke" here, and run axle-hub with a hub config instead',
    );
  }
  throw new Error(`must be "spoke" for axle-spoke, got ${JSON.stringify(v)}`);
});

const spannerShape = obj({
  role,
  spoke_id: idField('a spoke id'),
  hub_addr: opt(hostPort()),
  hub_fallback_addrs: def(arr(hostPort(), { max: 32 }), []),
  hub_pubkeys: def(arr(hubKey, { max: 64 }), []),
});

/** `spoke_id` missing gets a message that says where the value comes from, not just "is required". */
const spanner: Schema<Infer<typeof spannerShape>> = {
  kind: 'mapping',
  spec: spannerShape.spec,
  parse(v, path, issues) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const m = v as Record<string, unknown>;
      if (m.spoke_id === undefined || m.spoke_id === null) {
        // With role "hub" the role message says all there is to say.
        if (m.role !== 'hub')
          issues.push({
            path: `${path}.spoke_id`,
            message: "is required: set it to this spoke's id, the same id the hub config lists under spanner.spokes",
          });
        const rest = { ...m, spoke_id: 'placeholder' };
        spannerShape.parse(rest, path, issues);
        return undefined;
      }
    }
    return spannerShape.parse(v, path, issues);
  },
};

export const spokeConfigSchema = obj({
  server_id: idField('a server id'),
  listen: hostPort(),
  /** TLS on the one port (HTTPS, WSS) and the CA the hubs must prove themselves to; or insecure_transport: true. */
  ...transportFields(),
  data_dir: str({ min: 1, max: 1024 }),
  key_file: opt(str({ min: 1, max: 1024 })),
  status_interval: def(duration({ min: 10, max: 24 * 3600 * 1000 }), 30_000),
  crypto_threads: def(cryptoThreadsSetting(), 'auto' as const),
  retention: def(
    obj({
      max_runs_per_envoy: def(int({ min: 1, max: 100_000 }), 100),
      max_age: def(duration({ min: 1000 }), 30 * DAY),
    }),
    () => ({ max_runs_per_envoy: 100, max_age: 30 * DAY }),
  ),
  limits: def(
    obj({
      max_connections_per_ip: def(int({ min: 1, max: 1_000_000 }), 512),
      max_handshakes_per_ip: def(int({ min: 1, max: 1_000_000 }), 64),
      frame_bytes: def(int({ min: 4096, max: 256 * 1024 * 1024 }), 1024 * 1024),
      keepalive: def(duration({ min: 0, max: 3600_000 }), 3000),
      /** The largest run report stored; larger ones are refused where they arrive (envoys fit theirs to it). */
      max_report_bytes: def(int({ min: 4096, max: 16 * 1024 * 1024 }), DEFAULT_MAX_REPORT_BYTES),
      /** Hub queries (envoy lists, details, runs) served at once; the rest wait their turn. */
      max_concurrent_queries: def(int({ min: 1, max: 64 }), 2),
      /** Matching steps one query may spend before it stops with E_QUERY_TOO_COSTLY. */
      query_steps: def(int({ min: 1000, max: 10_000_000_000 }), DEFAULT_QUERY_STEPS),
      ...httpLimitFields(),
    }),
    () => ({
      max_connections_per_ip: 512,
      max_handshakes_per_ip: 64,
      frame_bytes: 1024 * 1024,
      keepalive: 3000,
      max_report_bytes: DEFAULT_MAX_REPORT_BYTES,
      max_concurrent_queries: 2,
      query_steps: DEFAULT_QUERY_STEPS,
      ...HTTP_LIMIT_DEFAULTS,
    }),
  ),
  spanner,
});

export type SpokeConfig = Infer<typeof spokeConfigSchema>;

/** Reads and validates a spoke YAML config; a bad one throws E_BAD_CONFIG naming file, line and key. */
export function loadSpokeConfig(file: string): SpokeConfig {
  return loadConfig(file, spokeConfigSchema);
}

/** Validates a plain object as a spoke config (tests and embedders build configs in code). */
export function spokeConfigFrom(v: unknown, source = 'spoke config'): SpokeConfig {
  return configFrom(spokeConfigSchema, v, source);
}

export function keyFileOf(c: SpokeConfig): string {
  return c.key_file ?? join(c.data_dir, 'spoke.key');
}

export function hubAddrsOf(c: SpokeConfig): string[] {
  return [...(c.spanner.hub_addr ? [c.spanner.hub_addr] : []), ...c.spanner.hub_fallback_addrs];
}
