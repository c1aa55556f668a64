/**
 * Runs many real envoy agents in one process (each its own hostname, key and state_dir):
 * a stand-in for a fleet of hosts on one machine.
 *   node --import tsx scripts/demo/envoy-pool.ts SPEC.json
 * SPEC: {hubAddrs, token, config: {...envoy.yaml keys}, envoys: [{hostname, stateDir}]}.
 * Enrolls those not yet enrolled, starts them all, logs {"msg":"pool ready"}, and stops them
 * all on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { createLogger, errorText } from '@axle/shared';
import { Envoy, StateStore, enroll, envoyConfigFrom } from '@axle/envoy-agent';
import { destination } from 'pino';

interface Spec {
  name: string;
  hubAddrs: string[];
  token: string;
  config: Record<string, unknown>;
  envoys: { hostname: string; stateDir: string }[];
}

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec;
const dest = destination({ fd: 2, sync: false });
const log = createLogger({ daemon: 'demo', id: spec.name, destination: dest });
const envoys: Envoy[] = [];
let stopping = false;

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

try {
  await pool(spec.envoys, 16, async ({ hostname, stateDir }) => {
    const cfg = envoyConfigFrom({ ...spec.config, hub_addrs: spec.hubAddrs, state_dir: stateDir, hostname }, hostname);
    const elog = createLogger({
      daemon: 'envoy',
      id: hostname,
      destination: dest,
      level: process.env.AXLE_LOG_LEVEL ?? 'warn',
    });
    if (!new StateStore(stateDir).assignment) await enroll(cfg, spec.token, { logger: elog });
    const e = new Envoy(cfg, { logger: elog });
    await e.start();
    envoys.push(e);
  });
  if (!stopping) log.info({ envoys: envoys.length }, 'pool ready');
} catch (e) {
  log.error({ err: errorText(e) }, 'envoy pool failed');
  dest.flushSync();
  await Promise.allSettled(envoys.map((x) => x.stop()));
  process.exit(1);
}
