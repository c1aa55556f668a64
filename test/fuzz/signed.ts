import fc from 'fast-check';
import {
  ENVOY_REQUEST_PATH,
  SIGNED_CONTENT_TYPE,
  Signer,
  generateKeyPair,
  sealRequest,
  type Message,
} from '@axle/shared';
import { rawRequest } from '../support/raw-http.js';
import type { FuzzFleet } from './fleet.js';
import { type FuzzStats, checkAfter } from './properties.js';
import { messageArb } from './wire.js';

/** What is done to a well-signed request before it is sent. */
const MUTATIONS = ['none', 'signature', 'payload byte', 'truncated', 'dated an hour ago', 'as a hub', 'empty'] as const;
type Mutation = (typeof MUTATIONS)[number];

const stranger = new Signer(generateKeyPair());

function body(
  msg: unknown,
  mutation: Mutation,
  at: number,
  known: { hostname: string; signer: Signer },
): Buffer | undefined {
  const host = (msg as { hostname?: unknown } | null)?.hostname;
  const id = typeof host === 'string' && /^[A-Za-z0-9_.-]{1,253}$/.test(host) ? host : 'fuzz3.dc1.example.com';
  // The envoy the spoke adopted signs as itself, so a valid locate reaches the directory and back.
  const signer = id === known.hostname ? known.signer : stranger;
  const when = mutation === 'dated an hour ago' ? Date.now() - 3_600_000 : Date.now();
  let b: Buffer;
  try {
    b = sealRequest(signer, id, mutation === 'as a hub' ? 'hub' : 'envoy', msg as Message, when).body;
  } catch {
    return undefined; // Not encodable as msgpack (the hostile values include some): nothing to send.
  }
  const flip = (i: number, mask: number) => b.writeUInt8(b.readUInt8(i) ^ mask, i);
  if (mutation === 'signature') flip(at % 64, 0x01);
  if (mutation === 'payload byte' && b.length > 64) flip(64 + (at % (b.length - 64)), 0x5a);
  if (mutation === 'truncated') b = b.subarray(0, at % b.length);
  if (mutation === 'empty') b = Buffer.alloc(0);
  return b;
}

/**
 * Envoys' signed requests to the hub (POST /api/v1/envoy): every message type, valid and mutated,
 * signed well and then broken in each way (signature, payload, length, date, role). Nothing but
 * a valid enroll may change the hub, and nothing may answer 500.
 */
export function signedProperty(f: FuzzFleet, stats: FuzzStats) {
  const known = { hostname: f.envoy.hostname, signer: new Signer(f.envoy.key) };
  const msgArb = fc.oneof(
    { weight: 6, arbitrary: messageArb() },
    { weight: 1, arbitrary: fc.constant({ type: 'locate', hostname: known.hostname }) },
  );
  const arb = fc.array(fc.tuple(msgArb, fc.constantFrom(...MUTATIONS), fc.nat()), { minLength: 4, maxLength: 12 });
  return fc.asyncProperty(arb, async (cases) => {
    stats.cases++;
    const before = f.digests();
    let wrote = false;
    for (const [msg, mutation, at] of cases) {
      const b = body(msg, mutation, at, known);
      if (!b) continue;
      const head = `POST ${ENVOY_REQUEST_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: ${SIGNED_CONTENT_TYPE}\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n`;
      const res = await rawRequest(f.hubAddr, Buffer.concat([Buffer.from(head, 'latin1'), b]), 8000);
      const type = (msg as { type?: unknown } | null)?.type;
      const label = typeof type === 'string' ? type : '(no type)';
      stats.sent++;
      stats.covered.add(`signed ${label} ${mutation}`);
      stats.count(`${res.status}`);
      if (res.status === 500 || res.status === 0)
        throw new Error(`hub answered ${res.status} to a signed ${label} (${mutation}): ${res.body.slice(0, 300)}`);
      if (res.status === 200 && label === 'enroll') wrote = true;
    }
    await checkAfter(f, before, wrote, `${cases.length} signed requests to the hub`);
  });
}
