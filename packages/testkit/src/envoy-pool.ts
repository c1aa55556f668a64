/**
 * Runs many real envoy agents in one process (each its own hostname, key and state_dir):
 * a stand-in for a fleet of hosts on one machine.
 *   node --import tsx packages/testkit/src/envoy-pool.ts SPEC.json
 * SPEC: {name, hubAddrs, token, config: {...envoy.yaml keys}, envoys: [{hostname, stateDir}],
 *        concurrency?: enrollments at once (default 16), version?: the config version to count as applied}.
 * Enrolls those not yet enrolled (retrying what a busy hub could not answer), starts each as
 * soon as it is enrolled, logs {"msg":"pool progress"} every second while the counts change and
 * {"msg":"pool ready"} once all are started, and stops them all on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { backoffDelay, createLogger, errorText, isAxleError, ErrorCode } from '@axle/shared';
import { Envoy, StateStore, enroll, envoyConfigFrom } from '@axle/envoy-agent';
import { destination } from 'pino';

interface Spec {
  name: string;
  hubAddrs: string[];
  token: string;
  config: Record<string, unknown>;
  envoys: { hostname: string; stateDir: string }[];
  concurrency?: number;
  version?: number;
}

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec;
const dest = destination({ fd: 2, sync: false });
const log = createLogger({ daemon: 'demo', id: spec.name, destination: dest });
const envoys: Envoy[] = [];
let enrolled = 0;
let stopping = false;

/** Enrollment answers that another try cannot change (a bad token, a key conflict, no route). */
const FINAL = new Set<string>([ErrorCode.BAD_TOKEN, ErrorCode.CONFLICT, ErrorCode.NO_ROUTE, ErrorCode.INVALID]);
/** A busy hub (thousands enrolling at once on a small machine) gets this many tries per envoy. */
const MAX_TRIES = 30;

async function stopAll(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal, envoys: envoys.length }, 'stopping envoys');
  const deadline = setTimeout(() => {
    log.error('envoys did not stop in time; exiting');
    process.exit(1);
  }, 20_000);
  deadline.unref();
  await Promise.allSettled(envoys.map((e) => e.stop()));
  log.info('stopped');
  dest.flushSync();
  process.exit(0);
}
process.on('SIGTERM', () => void stopAll('SIGTERM'));
process.on('SIGINT', () => void stopAll('SIGINT'));

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length && !stopping) await fn(items[next++] as T);
    }),
  );
}

/** Enrolls one envoy, backing off (full jitter) while the hubs are too busy to answer. */
async function enrollWithRetry(cfg: ReturnType<typeof envoyConfigFrom>, elog: ReturnType<typeof createLogger>) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await enroll(cfg, spec.token, { logger: elog });
    } catch (e) {
      if (stopping || attempt + 1 >= MAX_TRIES || (isAxleError(e) && FINAL.has(e.code))) throw e;
      elog.warn({ attempt: attempt + 1, err: errorText(e) }, 'enrollment not answered; trying again');
      await new Promise((r) => setTimeout(r, 500 + backoffDelay(attempt, 1000, 15_000)));
    }
  }
}

/** What the demo shows as its progress line: how far this pool's envoys have come. */
function counts() {
  let connected = 0;
  let ran = 0;
  let applied = 0;
  for (const e of envoys) {
    const s = e.state;
    if (s.connected) connected++;
    if (s.lastRun) ran++;
    if (spec.version !== undefined && (s.lastRun?.configVersion ?? 0) >= spec.version) applied++;
  }
  return { total: spec.envoys.length, enrolled, started: envoys.length, connected, ran, applied };
}

let last = '';
const progress = setInterval(() => {
  const c = counts();
  const line = JSON.stringify(c);
  if (line === last) return;
  last = line;
  log.info(c, 'pool progress');
}, 1000);
progress.unref();

try {
  await pool(spec.envoys, spec.concurrency ?? 16, async ({ hostname, stateDir }) => {
    const cfg = envoyConfigFrom({ ...spec.config, hub_addrs: spec.hubAddrs, state_dir: stateDir, hostname }, hostname);
    const elog = createLogger({
      daemon: 'envoy',
      id: hostname,
      destination: dest,
      level: process.env.AXLE_LOG_LEVEL ?? 'warn',
    });
    if (!new StateStore(stateDir).assignment) await enrollWithRetry(cfg, elog);
    enrolled++;
    const e = new Envoy(cfg, { logger: elog });
    await e.start();
    envoys.push(e);
  });
  if (!stopping) log.info({ ...counts() }, 'pool ready');
} catch (e) {
  log.error({ err: errorText(e) }, 'envoy pool failed');
  dest.flushSync();
  await Promise.allSettled(envoys.map((x) => x.stop()));
  process.exit(1);
}
