import { fingerprint, silentLogger, type Logger } from '@axle/shared';
import { caOf, type EnvoyConfig } from './config.js';
import { askHubs, assignmentFrom } from './hub.js';
import { StateStore, type Assignment } from './state.js';

/**
 * One-shot enrollment: creates the key if missing, asks the hubs (each address in turn) to
 * enroll this hostname with `token`, and stores the assignment. Enrolling again with the
 * same key is harmless (the hub answers with the current assignment); a different key for
 * a known hostname is refused by the hub.
 */
export async function enroll(config: EnvoyConfig, token: string, o: { logger?: Logger } = {}): Promise<Assignment> {
  const log = o.logger ?? silentLogger();
  const store = new StateStore(config.state_dir);
  const { keyPair, created } = store.loadKey();
  if (created) log.info({ key: fingerprint(keyPair.publicKey), file: store.keyFile }, 'created envoy key');
  const prev = store.assignment;
  const reply = await askHubs(
    {
      hostname: config.hostname,
      keyPair,
      hubAddrs: config.hub_addrs,
      timeoutMs: config.request_timeout,
      log,
      trustedKeys: store.trustedHubKeys(config.hub_pubkeys),
      ca: caOf(config),
    },
    { type: 'enroll', hostname: config.hostname, token },
    prev?.term ?? 0,
  );
  const a = assignmentFrom(reply, prev, config.hub_addrs);
  await store.saveAssignment(a);
  log.info(
    { status: a.status, spoke: a.target?.spokeId, addr: a.target?.addr, epoch: a.epoch, term: a.term },
    'enrolled',
  );
  return a;
}
