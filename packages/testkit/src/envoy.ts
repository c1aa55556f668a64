/**
 * Real envoy agents for the package tests, in this process: a config with fast timers and its
 * own state dir, enrolled and started, stopped by the bag.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Envoy, type EnvoyConfig, enroll, envoyConfigFrom } from '@axle/envoy-agent';
import type { Bag } from './cleanup.js';
import { hubKeysAt } from './local.js';

/**
 * An envoy config for tests: fast timers, its own state dir `<root>/<hostname>`, plain transport
 * (these tests are not about TLS), and the keys of the test hubs planned at `hubAddrs` pinned
 * (`extra` may name them instead, and overrides any other field).
 */
export function testEnvoyConfig(
  root: string,
  hostname: string,
  hubAddrs: string[],
  extra: Record<string, unknown> = {},
): EnvoyConfig {
  const dir = join(root, hostname);
  mkdirSync(dir, { recursive: true });
  return envoyConfigFrom(
    {
      hub_addrs: hubAddrs,
      hub_pubkeys: hubKeysAt(hubAddrs),
      insecure_transport: true,
      state_dir: dir,
      hostname,
      run_on_start: false,
      checkin_interval: '150ms',
      backoff_initial: '50ms',
      backoff_max: '400ms',
      request_timeout: '10s',
      keepalive: '2s',
      ...extra,
    },
    hostname,
  );
}

/** Enrolls and starts an envoy; stopped by the bag. */
export async function startEnvoy(bag: Bag, cfg: EnvoyConfig, token: string): Promise<Envoy> {
  await enroll(cfg, token);
  const e = new Envoy(cfg);
  await e.start();
  bag.add(() => e.stop());
  return e;
}
