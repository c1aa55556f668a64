import sodium from 'libsodium-wrappers';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, openSealed, seal, x25519PrivateOf, x25519PublicOf } from '../src/index.js';

beforeAll(async () => {
  await sodium.ready;
});

describe('sealed boxes to an Ed25519 identity', () => {
  it('map Ed25519 keys to X25519 exactly as libsodium does', () => {
    for (let i = 0; i < 50; i++) {
      const kp = generateKeyPair();
      expect(Buffer.from(x25519PublicOf(kp.publicKey))).toEqual(
        Buffer.from(sodium.crypto_sign_ed25519_pk_to_curve25519(kp.publicKey)),
      );
      // libsodium clamps the scalar; X25519 clamps it too, so the unclamped bytes agree after clamping.
      const ours = Buffer.from(x25519PrivateOf(kp.secretKey));
      ours[0] = (ours[0] as number) & 248;
      ours[31] = ((ours[31] as number) & 127) | 64;
      expect(ours).toEqual(Buffer.from(sodium.crypto_sign_ed25519_sk_to_curve25519(kp.secretKey)));
    }
  });

  it('open only with the recipient key, and refuse any altered byte', () => {
    const alice = generateKeyPair();
    const mallory = generateKeyPair();
    const secret = new TextEncoder().encode('hunter2 and a longer tail\n');
    const box = seal(secret, alice.publicKey);
    expect(Buffer.from(openSealed(box, alice))).toEqual(Buffer.from(secret));
    expect(() => openSealed(box, mallory)).toThrow(/does not open with this key/);
    for (const at of [0, 31, 32, 47, 48, box.length - 1]) {
      const bad = new Uint8Array(box);
      bad[at] = (bad[at] as number) ^ 1;
      expect(() => openSealed(bad, alice), `byte ${at}`).toThrow(/does not open with this key/);
    }
    // Two seals of one value share nothing: a fresh ephemeral key each time.
    expect(Buffer.from(seal(secret, alice.publicKey))).not.toEqual(Buffer.from(box));
  });
});
