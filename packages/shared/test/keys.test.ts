import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AxleError,
  fingerprint,
  generateKeyPair,
  loadKeyPair,
  loadOrCreateKeyPair,
  saveKeyPair,
  signDetached,
  toBase64,
  verifyDetached,
} from '../src/index.js';
import { tempDir } from '@axle/testkit';

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

describe('keys', () => {
  it('uses tweetnacl layout: 32-byte public, 64-byte secret = seed || public', () => {
    const kp = generateKeyPair();
    expect(kp.publicKey.length).toBe(32);
    expect(kp.secretKey.length).toBe(64);
    const fromSeed = nacl.sign.keyPair.fromSeed(kp.secretKey.subarray(0, 32));
    expect(Buffer.from(fromSeed.publicKey).equals(Buffer.from(kp.publicKey))).toBe(true);
    expect(Buffer.from(fromSeed.secretKey).equals(Buffer.from(kp.secretKey))).toBe(true);
  });

  it('a tweetnacl signature verifies natively and a native one verifies in tweetnacl', () => {
    const nk = nacl.sign.keyPair();
    const msg = new TextEncoder().encode('check-in from web3.dc1.example.com');
    const naclSig = nacl.sign.detached(msg, nk.secretKey);
    expect(verifyDetached(msg, naclSig, nk.publicKey)).toBe(true);

    const kp = generateKeyPair();
    const nativeSig = signDetached(msg, kp.secretKey);
    expect(nacl.sign.detached.verify(msg, nativeSig, kp.publicKey)).toBe(true);
    // Both produce the same deterministic Ed25519 signature.
    expect(Buffer.from(nativeSig).equals(Buffer.from(nacl.sign.detached(msg, kp.secretKey)))).toBe(true);

    const tampered = Uint8Array.from(msg);
    tampered[0] = (tampered[0] as number) ^ 1;
    expect(verifyDetached(tampered, naclSig, nk.publicKey)).toBe(false);
    expect(nacl.sign.detached.verify(tampered, nativeSig, kp.publicKey)).toBe(false);
  });

  it('saves with mode 0600, loads back, and refuses a key others can read', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const file = join(t.dir, 'sub', 'hub.key');
    const { keyPair, created } = loadOrCreateKeyPair(file);
    expect(created).toBe(true);
    const again = loadOrCreateKeyPair(file);
    expect(again.created).toBe(false);
    expect(toBase64(again.keyPair.publicKey)).toBe(toBase64(keyPair.publicKey));

    chmodSync(file, 0o644);
    expect(() => loadKeyPair(file)).toThrowError(/readable by others.*chmod 600/);
    try {
      loadKeyPair(file);
    } catch (e) {
      expect((e as AxleError).code).toBe('E_KEY_PERMISSIONS');
    }
  });

  it('refuses a corrupt or truncated key file', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const file = join(t.dir, 'k');
    writeFileSync(file, 'not base64 !!\n', { mode: 0o600 });
    expect(() => loadKeyPair(file)).toThrowError(/not base64/);
    writeFileSync(file, Buffer.alloc(10).toString('base64'), { mode: 0o600 });
    expect(() => loadKeyPair(file)).toThrowError(/64 bytes/);
    const kp = generateKeyPair();
    const bad = Uint8Array.from(kp.secretKey);
    bad[40] = (bad[40] as number) ^ 0xff;
    saveKeyPair(file, { publicKey: kp.publicKey, secretKey: bad });
    expect(() => loadKeyPair(file)).toThrowError(/corrupt/);
  });

  it('has a short stable fingerprint', () => {
    const kp = generateKeyPair();
    expect(fingerprint(kp.publicKey)).toMatch(/^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/);
    expect(fingerprint(kp.publicKey)).toBe(fingerprint(Uint8Array.from(kp.publicKey)));
  });
});
