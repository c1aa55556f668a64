import { describe, expect, it } from 'vitest';
import { CryptoPool, Signer, generateKeyPair, isAxleError } from '../src/index.js';
import { openReply, openRequest, sealReply, sealRequest } from '../src/signed-request.js';

/** The signed request and answer envoys use with their hub, without a server: what binds an answer to its request. */
describe('signed requests', () => {
  const envoyKey = generateKeyPair();
  const hubKey = generateKeyPair();
  const pool = new CryptoPool({ keyPair: hubKey, threads: 0 });
  const trustsHub = (k: Uint8Array) => Buffer.from(k).equals(Buffer.from(hubKey.publicKey));
  const code = (f: () => unknown) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return isAxleError(e) ? e.code : String(e);
    }
  };

  it('an answer opens only for the request it answers, from a key the sender trusts', async () => {
    const { body, nonce } = sealRequest(new Signer(envoyKey), 'web1.example.com', 'envoy', {
      type: 'locate',
      hostname: 'web1.example.com',
    });
    const req = await openRequest(body, pool);
    expect(req).toMatchObject({ id: 'web1.example.com', role: 'envoy', msg: { type: 'locate' } });
    const reply = await sealReply(pool, hubKey.publicKey, req, {
      type: 'assignment',
      status: 'pending',
      epoch: 0,
      term: 1,
    });
    expect(openReply(reply, envoyKey.publicKey, nonce, trustsHub, 'hub').msg).toMatchObject({ status: 'pending' });
    // Another request's nonce, another sender, an untrusted signer, a flipped byte: all refused.
    const other = sealRequest(new Signer(envoyKey), 'web1.example.com', 'envoy', {
      type: 'locate',
      hostname: 'web1.example.com',
    });
    expect(code(() => openReply(reply, envoyKey.publicKey, other.nonce, trustsHub, 'hub'))).toBe('E_BAD_SIGNATURE');
    expect(code(() => openReply(reply, generateKeyPair().publicKey, nonce, trustsHub, 'hub'))).toBe('E_BAD_SIGNATURE');
    expect(code(() => openReply(reply, envoyKey.publicKey, nonce, () => false, 'hub'))).toBe('E_UNTRUSTED');
    const flipped = Buffer.from(reply);
    flipped.writeUInt8(flipped.readUInt8(10) ^ 1, 10);
    expect(code(() => openReply(flipped, envoyKey.publicKey, nonce, trustsHub, 'hub'))).toBe('E_BAD_SIGNATURE');
  });

  it('a request is refused when dated outside the window either way', async () => {
    const signer = new Signer(envoyKey);
    const msg = { type: 'locate', hostname: 'web1.example.com' } as const;
    for (const at of [Date.now() - 6 * 60_000, Date.now() + 6 * 60_000]) {
      const err = await openRequest(sealRequest(signer, 'web1.example.com', 'envoy', msg, at).body, pool).catch(
        (e: unknown) => e,
      );
      expect(isAxleError(err) && err.code).toBe('E_CLOCK_SKEW');
    }
    await expect(
      openRequest(sealRequest(signer, 'web1.example.com', 'envoy', msg, Date.now() - 60_000).body, pool),
    ).resolves.toBeDefined();
  });
});
