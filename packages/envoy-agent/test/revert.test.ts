import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AxleError,
  Signer,
  buildBundle,
  generateKeyPair,
  signBundle,
  signRevert,
  silentLogger,
  type Message,
  type RevertOrder,
} from '@axle/shared';
import { BundleFetcher } from '@axle/envoy-agent';
import { tempDir } from '@axle/testkit';

/**
 * Versions only rise at an envoy unless the hub signed an order moving it down: a spoke that
 * serves an older bundle (even one the hub signed), or hands over an order the envoy's hub keys
 * did not sign, or one for another pair of versions, changes nothing.
 */
const t = tempDir('axle-revert-');
afterAll(() => t.cleanup());
const hub = new Signer(generateKeyPair());
const stranger = new Signer(generateKeyPair());

async function signed(version: number, motd: string) {
  const src = join(t.dir, `src-${version}`);
  mkdirSync(join(src, 'files'), { recursive: true });
  writeFileSync(join(src, 'files', 'motd'), motd);
  const { data, hash } = await buildBundle(src);
  return { version, hash, signature: signBundle(version, hash, hub), data };
}

describe('an envoy moving down a version', () => {
  it('only on a trusted hub order for exactly that move', async () => {
    const bundles = new Map([
      [1, await signed(1, 'one\n')],
      [2, await signed(2, 'two\n')],
    ]);
    let live = 2;
    const ask = async (m: Message): Promise<Message> => {
      if (m.type !== 'config_fetch') throw new Error(`unexpected ${m.type}`);
      const b = bundles.get(m.version === 0 ? live : m.version)!;
      return {
        type: 'config_bundle',
        version: b.version,
        hash: b.hash,
        signature: b.signature,
        hubKey: hub.keyPair.publicKey,
        total: b.data.length,
        offset: 0,
        data: b.data,
      };
    };
    let applied = 0;
    const configDir = join(t.dir, 'envoy', 'live');
    mkdirSync(join(t.dir, 'envoy'));
    const f = new BundleFetcher({
      trustedKeys: () => [hub.keyPair.publicKey],
      appliedVersion: () => applied,
      setApplied: (v) => (applied = v),
      configDir,
      timeoutMs: 1000,
      log: silentLogger(),
    });
    const motd = () => readFileSync(join(configDir, 'files', 'motd'), 'utf8');
    expect(await f.fetch(ask)).toBe(2);
    expect(motd()).toBe('two\n');
    const refused = async (revert?: RevertOrder) => {
      const e = await f.fetch(ask, { version: 1, ...(revert ? { revert } : {}) }).catch((x: unknown) => x);
      expect((e as AxleError).code).toBe('E_BUNDLE_REFUSED');
      expect(applied).toBe(2);
      expect(motd()).toBe('two\n');
    };
    // The spoke serves an older (hub-signed) version as live: not followed back.
    live = 1;
    await expect(f.fetch(ask)).rejects.toThrow(/not newer than the applied 2/);
    await refused();
    await refused(signRevert({ rollout: 'r-1', from: 2, to: 1 }, stranger));
    await refused(signRevert({ rollout: 'r-1', from: 3, to: 1 }, hub));
    await refused({ ...signRevert({ rollout: 'r-1', from: 2, to: 1 }, hub), rollout: 'r-2' });
    expect(await f.fetch(ask, { version: 1, revert: signRevert({ rollout: 'r-1', from: 2, to: 1 }, hub) })).toBe(1);
    expect(motd()).toBe('one\n');
    // Asking for the version already applied fetches nothing.
    expect(await f.fetch(ask, { version: 1 })).toBe(1);
  });
});
