import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { validate as validateCron } from 'node-cron';
import {
  configFrom,
  AxleError,
  DEFAULT_MAX_REPORT_BYTES,
  canonicalHostname,
  certificatesIn,
  ErrorCode,
  arr,
  bool,
  custom,
  def,
  duration,
  formatIssues,
  hostPort,
  int,
  loadConfig,
  obj,
  oneOf,
  operatorHostnameField,
  opt,
  str,
  transportIssues,
  type Infer,
} from '@axle/shared';

const cron = () =>
  custom('cron', (v) => {
    if (typeof v !== 'string' || !validateCron(v)) {
      throw new Error(
        `expected a cron expression such as "*/30 * * * *" (minute hour day month weekday), got ${JSON.stringify(v)}`,
      );
    }
    return v;
  });

const pubkeyText = () =>
  custom('pubkey', (v) => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(v.trim()))
      throw new Error('expected a base64 Ed25519 public key (44 characters, as printed by `axle-hub keygen`)');
    return v.trim();
  });

/**
 * /etc/axle/envoy.yaml. Durations are written "30s", "5m". Everything but `hub_addrs` and
 * `state_dir` has a default that suits a real fleet; tests shorten the timers.
 */
export const envoyConfigSchema = obj({
  /** The hub and its peers, primary first: enrollment and `locate` try each in turn. */
  hub_addrs: arr(hostPort(), { min: 1, max: 16 }),
  /**
   * The hubs' Ed25519 keys (the bootstrap writes them). With them, only these keys are trusted;
   * without, only the keys a hub listed in this envoy's stored assignment, so a new envoy with
   * neither cannot enroll: a key merely found at an address is never trusted.
   */
  hub_pubkeys: opt(arr(pubkeyText(), { max: 16 })),
  /** The fleet CA (PEM) every hub and spoke certificate must chain to; connections are wss://. */
  ca_file: opt(str({ min: 1, max: 1024 })),
  /** Plain ws:// to hubs and spokes without ca_file: only where they run with insecure_transport too. */
  insecure_transport: def(bool(), false),
  state_dir: str({ min: 1, max: 1024 }),
  /** Written in any case, with or without a trailing dot; the envoy uses its canonical form (lowercase, no dot). */
  hostname: opt(operatorHostnameField()),
  schedule: def(cron(), '*/30 * * * *'),
  splay: def(duration({ max: 24 * 3_600_000 }), 5 * 60_000),
  mode: def(oneOf(['enforce', 'audit'] as const), 'enforce'),
  run_on_start: def(bool(), true),
  traits_dir: opt(str({ min: 1, max: 1024 })),
  /** Traits are also collected before every run and on reload; sent at the next check-in when they changed. */
  traits_interval: def(duration({ min: 100, max: 7 * 24 * 3_600_000 }), 10 * 60_000),
  traits_timeout: def(duration({ min: 100, max: 600_000 }), 10_000),
  /** Where the applied config bundle lives (the spoke's `.live/` as fetched); policies are `<config_dir>/policies/*.yaml`. */
  config_dir: opt(str({ min: 1, max: 1024 })),
  spool_max: def(int({ min: 1, max: 1_000_000 }), 1000),
  /** Reports are cut to fit this (messages shortened, then passing results dropped) before they are spooled. */
  max_report_bytes: def(int({ min: 4096, max: 16 * 1024 * 1024 }), DEFAULT_MAX_REPORT_BYTES),
  exec_timeout: def(duration({ min: 100, max: 24 * 3_600_000 }), 5 * 60_000),
  checkin_interval: def(duration({ min: 50, max: 24 * 3_600_000 }), 60_000),
  /** Failed attempts to reach the assigned spoke before asking the hub where to go. */
  failures_before_locate: def(int({ min: 1, max: 100 }), 3),
  backoff_initial: def(duration({ min: 10, max: 600_000 }), 1000),
  backoff_max: def(duration({ min: 10, max: 3_600_000 }), 60_000),
  request_timeout: def(duration({ min: 100, max: 600_000 }), 15_000),
  /** Ping interval on the spoke connection; a dead link is noticed within about twice this. */
  keepalive: def(duration({ min: 100, max: 600_000 }), 30_000),
  /** How long SIGTERM waits for a run in progress before abandoning it. */
  stop_grace: def(duration({ max: 600_000 }), 5000),
  log_level: opt(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const)),
});

type Parsed = Infer<typeof envoyConfigSchema>;
/** The validated config with defaults filled in: `hostname` and `config_dir` are always set. */
export type EnvoyConfig = Readonly<Omit<Parsed, 'hostname' | 'config_dir'> & { hostname: string; config_dir: string }>;

/** Fills the defaults that depend on the machine or on other keys, and checks cross-key rules. */
function finish(p: Parsed, source: string): EnvoyConfig {
  const stateDir = resolve(p.state_dir);
  let host = p.hostname;
  if (host === undefined) {
    try {
      host = canonicalHostname(osHostname());
    } catch (e) {
      throw new AxleError(
        ErrorCode.BAD_CONFIG,
        `${source}: hostname: the machine's name is not usable (${(e as Error).message}); set \`hostname\` in the config`,
      );
    }
  }
  const transport = transportIssues(
    { secure: p.ca_file !== undefined, insecure_transport: p.insecure_transport },
    {
      key: 'ca_file',
      fix: 'set ca_file to the fleet CA (the bootstrap writes /etc/axle/ca.pem)',
    },
  );
  if (transport.length > 0) throw new AxleError(ErrorCode.BAD_CONFIG, `${source}: ${formatIssues(transport)}`);
  if (p.ca_file) readCa(resolve(p.ca_file), source);
  if (p.backoff_max < p.backoff_initial) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${source}: backoff_max (${p.backoff_max} ms) is below backoff_initial (${p.backoff_initial} ms)`,
    );
  }
  return Object.freeze({
    ...p,
    state_dir: stateDir,
    hostname: host,
    config_dir: p.config_dir ? resolve(p.config_dir) : join(stateDir, 'live'),
    ...(p.ca_file ? { ca_file: resolve(p.ca_file) } : {}),
    ...(p.traits_dir ? { traits_dir: resolve(p.traits_dir) } : {}),
  });
}

/**
 * The CA certificates (PEM) of `ca_file`, read at each connect so a CA replaced on disk is used
 * from the next connection on; a file that is missing or holds no certificate is a config error.
 */
export function readCa(file: string, source = file): Buffer {
  try {
    const pem = readFileSync(file);
    certificatesIn(pem.toString('utf8'), file);
    return pem;
  } catch (e) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${source}: ca_file: ${(e as Error).message}; point it at the fleet CA (the bootstrap writes /etc/axle/ca.pem)`,
      { cause: e },
    );
  }
}

/** What connections to hubs and spokes need: the CA to check their certificates against, or none (insecure_transport). */
export function caOf(c: EnvoyConfig): Buffer | undefined {
  return c.ca_file ? readCa(c.ca_file) : undefined;
}

/** Reads and validates an envoy config file; a bad file throws E_BAD_CONFIG naming file, line and key. */
export function loadEnvoyConfig(file: string): EnvoyConfig {
  return finish(loadConfig(file, envoyConfigSchema), file);
}

/** Validates a config given as an object (tests, the demo, many envoys in one process). */
export function envoyConfigFrom(o: unknown, source = 'envoy config'): EnvoyConfig {
  return finish(configFrom(envoyConfigSchema, o, source), source);
}
