import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ENVOY_REQUEST_PATH,
  SIGNED_CONTENT_TYPE,
  Signer,
  askSigned,
  isAxleError,
  sealRequest,
  type Message,
} from '@axle/shared';
import type { Hub } from '@axle/hub';
import { Bag, directory, enroll, envoy, hubKey, joinToken, locate, type TestEnvoy } from '@axle/testkit';
import { spokesHub } from './fleet-setup.js';

/**
 * POST /api/v1/envoy, the one signed request an envoy sends its hub to enroll or locate
 * (shared/signed-request.ts): answers only a request signed by the key it names, dated near the
 * hub's clock, from an envoy, and signs the answer for that request alone.
 */
const bag = new Bag();
let hub: Hub;
let token: string;
let hubPub: Uint8Array;

beforeAll(async () => {
  const key = await hubKey(bag);
  hubPub = key.keyPair.publicKey;
  ({ hub } = await spokesHub(bag, key, ['dc1']));
  token = await joinToken(hub);
});
afterAll(() => bag.run());
afterEach(() => vi.restoreAllMocks());

const pinned = (k: Uint8Array) => Buffer.from(k).equals(Buffer.from(hubPub));

async function post(body: Buffer): Promise<{ status: number; code?: string; message?: string }> {
  const res = await fetch(`http://${hub.addr}${ENVOY_REQUEST_PATH}`, {
    method: 'POST',
    headers: { 'content-type': SIGNED_CONTENT_TYPE },
    body,
  });
  const text = Buffer.from(await res.arrayBuffer());
  if (res.status === 200) return { status: 200 };
  const err = (JSON.parse(text.toString('utf8')) as { error: { code: string; message: string } }).error;
  return { status: res.status, code: err.code, message: err.message };
}

function sealed(e: TestEnvoy, msg: Message, o: { id?: string; role?: string; at?: number } = {}): Buffer {
  return sealRequest(new Signer(e.key), o.id ?? e.hostname, o.role ?? 'envoy', msg, o.at).body;
}

describe('signed envoy requests', () => {
  it('enroll and locate answer with the same signed assignment, checked against the pinned hub key', async () => {
    const e = envoy('web1.dc1.example.com');
    const a = await askSigned(
      hub.addr,
      { type: 'enroll', hostname: e.hostname, token },
      { id: e.hostname, role: 'envoy', keyPair: e.key, trusts: pinned, timeoutMs: 5000 },
    );
    expect(a).toMatchObject({ type: 'assignment', status: 'assigned', target: { spokeId: 'dc1' } });
    const again = await locate(hub.addr, e);
    expect(again.epoch).toBe((a as { epoch: number }).epoch);
    // An answer signed by a key the envoy does not pin is refused, however valid otherwise.
    const err = await askSigned(
      hub.addr,
      { type: 'locate', hostname: e.hostname },
      { id: e.hostname, role: 'envoy', keyPair: e.key, trusts: () => false, timeoutMs: 5000 },
    ).catch((x: unknown) => x);
    expect(isAxleError(err) && err.code).toBe('E_UNTRUSTED');
  });

  it('refuses a broken request with its own code and stores nothing', async () => {
    const e = envoy('bad1.dc1.example.com');
    const enrollMsg: Message = { type: 'enroll', hostname: e.hostname, token };
    const good = sealed(e, enrollMsg);
    const flipped = Buffer.from(good);
    flipped.writeUInt8(flipped.readUInt8(3) ^ 1, 3);
    const cases: [string, Buffer, number, string][] = [
      ['signature', flipped, 401, 'E_BAD_SIGNATURE'],
      [
        'signed by another key',
        Buffer.concat([sealed(envoy('x'), enrollMsg).subarray(0, 64), good.subarray(64)]),
        401,
        'E_BAD_SIGNATURE',
      ],
      ['dated an hour ago', sealed(e, enrollMsg, { at: Date.now() - 3_600_000 }), 400, 'E_CLOCK_SKEW'],
      ['as a hub', sealed(e, enrollMsg, { role: 'hub' }), 400, 'E_INVALID'],
      ['for another host', sealed(e, enrollMsg, { id: 'bad2.dc1.example.com' }), 400, 'E_INVALID'],
      [
        'a check-in',
        sealed(e, { type: 'checkin', hostname: e.hostname, epoch: 1, term: 1, configVersion: 0 }),
        400,
        'E_INVALID',
      ],
      ['not a message', sealed(e, { type: 'nonsense' } as unknown as Message), 400, 'E_BAD_MESSAGE'],
      ['truncated', good.subarray(0, 80), 400, 'E_MALFORMED'],
      ['too short to be signed', good.subarray(0, 30), 400, 'E_MALFORMED'],
      ['over the size limit', Buffer.concat([good, Buffer.alloc(16 * 1024)]), 413, 'E_FRAME_TOO_LARGE'],
    ];
    for (const [what, body, status, code] of cases) {
      const r = await post(body);
      expect({ what, status: r.status, code: r.code }).toEqual({ what, status, code });
    }
    expect((await directory(hub)).has(e.hostname)).toBe(false);
    // The same request, unbroken, is accepted: the refusals above were for what was broken.
    expect((await post(good)).status).toBe(200);
  });

  it('a host whose clock is an hour off still enrolls: the refusal dates the retry by the hub clock', async () => {
    const e = envoy('skewed.dc1.example.com');
    const real = Date.now;
    // Only askSigned's own reading of the clock is off; the hub's (in this process too) is not.
    const clock = vi.spyOn(Date, 'now').mockImplementationOnce(() => real() - 3_600_000);
    const a = await enroll(hub.addr, e, token);
    expect(a.status).toBe('assigned');
    // The first request was dated by the skewed reading (so refused, as the test above shows).
    expect(clock.mock.results[0]?.value).toBeLessThan(real() - 3_000_000);
  });
});
