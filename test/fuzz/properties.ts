import fc from 'fast-check';
import type { Message } from '@axle/shared';
import { rawRequest } from '../support/raw-http.js';
import type { FuzzFleet } from './fleet.js';
import { type Auth, encodeRequest, requestArb } from './requests.js';
import { WireSession, messageArb, preHandshakeFrame, sendPreHandshake } from './wire.js';

/**
 * The fuzz properties, shared by the bounded run inside `npm test` (fuzz.test.ts) and long runs
 * (`npm run fuzz -- --minutes N`, run.ts). Each case is a batch of hostile inputs; after it,
 * both daemons must be alive and answer /healthz within a second, no request may have hit a
 * 500 (an unexpected throw behind the boundary), and neither store may have changed unless the
 * batch held a valid, authorized write.
 */
export class FuzzStats {
  cases = 0;
  sent = 0;
  readonly outcomes = new Map<string, number>();
  readonly covered = new Set<string>();

  count(key: string): void {
    this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
  }

  summary(): string {
    const top = [...this.outcomes].sort((a, b) => b[1] - a[1]).slice(0, 12);
    return `${this.cases} cases, ${this.sent} inputs, ${this.covered.size} routes/types covered; ${top.map(([k, n]) => `${k}:${n}`).join(' ')}`;
  }
}

export async function checkAfter(
  f: FuzzFleet,
  before: { hub: string; spoke: string },
  wrote: boolean,
  what: string,
): Promise<void> {
  const problem = await f.problems();
  if (problem) throw new Error(`after ${what}: ${problem}`);
  if (wrote) return;
  const after = f.digests();
  if (after.hub !== before.hub)
    throw new Error(`after ${what}: the hub's store changed although nothing valid was written`);
  if (after.spoke !== before.spoke)
    throw new Error(`after ${what}: the spoke's store changed although nothing valid was written`);
}

/** Every HTTP route of `target`, from its own table, hammered with malformed requests. */
export function httpProperty(f: FuzzFleet, target: 'hub' | 'spoke', stats: FuzzStats) {
  const addr = target === 'hub' ? f.hubAddr : f.spokeAddr;
  const names = [f.envoy.hostname, 'dc1', 'hub-a', 'admin', 'jt_000000000000', 'job-1', '1'];
  const tokens: Record<Auth, string | undefined> = {
    none: undefined,
    viewer: f.viewer,
    admin: f.admin,
    garbage: `axa_${'x'.repeat(43)}`,
  };
  return fc.asyncProperty(
    fc.array(requestArb(f.routes[target], names), { minLength: 4, maxLength: 12 }),
    async (reqs) => {
      stats.cases++;
      const before = f.digests();
      let wrote = false;
      for (const r of reqs) {
        const res = await rawRequest(addr, encodeRequest(r, tokens), 8000);
        stats.sent++;
        stats.covered.add(`${target} ${r.route}`);
        stats.count(`${res.status}`);
        if (res.status === 500) {
          throw new Error(
            `${target}: ${r.method} ${r.target.slice(0, 200)} (${r.auth}) answered 500: ${res.body.slice(0, 300)}`,
          );
        }
        if (res.status >= 200 && res.status < 300 && r.method !== 'GET' && r.method !== 'HEAD' && r.auth === 'admin') {
          wrote = true;
        }
      }
      await checkAfter(f, before, wrote, `${reqs.length} HTTP requests to the ${target}`);
    },
  );
}

/** Requests whose answer (not an error) means the receiver may have stored something. */
const WRITES_AS_ENVOY = new Set(['checkin', 'report', 'enroll']);
const WRITES_AS_HUB = new Set([
  'adopt',
  'release',
  'probe',
  'vote_request',
  'lease_ping',
  'config_offer',
  'config_unstage',
]);

/**
 * Every message type, valid and mutated, as requests and events after the handshake (and
 * garbage before it), to the hub as an envoy, to the spoke as its adopted envoy, and to the
 * spoke as a hub it obeys (term pinned, so the fuzzer does not fence the real hub out).
 */
export function wireProperty(f: FuzzFleet, target: 'hub' | 'spoke', role: 'envoy' | 'hub', stats: FuzzStats) {
  const addr = target === 'hub' ? f.hubAddr : f.spokeAddr;
  const session =
    role === 'hub'
      ? new WireSession(addr, 'fuzz-hub', 'hub', f.fuzzHubKey)
      : target === 'spoke'
        ? new WireSession(addr, f.envoy.hostname, 'envoy', f.envoy.key)
        : new WireSession(addr, 'fuzz2.dc1.example.com', 'envoy', f.fuzzHubKey);
  const pin = role === 'hub' ? { term: 1 } : {};
  const arb = fc.tuple(
    fc.array(fc.tuple(messageArb(pin), fc.boolean()), { minLength: 4, maxLength: 12 }),
    fc.array(preHandshakeFrame, { maxLength: 3 }),
  );
  const property = fc.asyncProperty(arb, async ([msgs, pre]) => {
    stats.cases++;
    const before = f.digests();
    let wrote = false;
    await sendPreHandshake(addr, pre);
    stats.sent += pre.length;
    for (const [m, asEvent] of msgs) {
      const type = (m as { type?: unknown } | null)?.type;
      const label = typeof type === 'string' ? type : '(no type)';
      const r = await session.send(m, asEvent);
      stats.sent++;
      stats.covered.add(`${target}/${role} ${label}`);
      stats.count(`${label}:${r.outcome}${r.code ? `:${r.code}` : ''}`);
      if (r.code === 'E_INTERNAL') {
        throw new Error(
          `${target} (as ${role}): ${label} failed inside the daemon: ${JSON.stringify(m).slice(0, 300)}`,
        );
      }
      const writes = role === 'hub' ? WRITES_AS_HUB : WRITES_AS_ENVOY;
      if (r.outcome === 'reply' && !asEvent && writes.has(label)) wrote = true;
    }
    await checkAfter(f, before, wrote, `${msgs.length} ${target} messages as ${role}`);
  });
  return { property, close: () => session.close() };
}

export type { Message };
