import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AxleError,
  Signer,
  activateBundle,
  buildBundle,
  extractBundle,
  generateKeyPair,
  liveVersion,
  sha256,
  signBundle,
  verifyBundle,
} from '../src/index.js';
import { tempDir } from '@axle/testkit';
import { tarEntry, tarball, treeDigest } from '../../../test/support/tar.js';

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());
function tmp(): string {
  const t = tempDir('axle-bundle-');
  cleanup = t.cleanup;
  return t.dir;
}

function sourceTree(root: string): string {
  const src = join(root, 'src');
  mkdirSync(join(src, 'policies'), { recursive: true });
  mkdirSync(join(src, 'files'), { recursive: true });
  writeFileSync(join(src, 'policies', 'base.yaml'), 'name: base\nresources: []\n');
  writeFileSync(join(src, 'files', 'motd'), 'Managed by Axle\n');
  return src;
}

async function liveRoot(): Promise<{ root: string; before: string }> {
  const root = tmp();
  const { data } = await buildBundle(sourceTree(root));
  const staging = await extractBundle(data, join(root, 'spoke'));
  activateBundle(join(root, 'spoke'), staging, 3);
  return { root: join(root, 'spoke'), before: treeDigest(join(root, 'spoke')) };
}

async function refusedWith(data: Buffer, root: string, before: string): Promise<string> {
  const err = await extractBundle(data, root).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AxleError);
  expect((err as AxleError).code).toBe('E_BUNDLE_REFUSED');
  // Nothing changed, and no staging directory was left behind.
  expect(treeDigest(root)).toBe(before);
  expect(readdirSync(root).filter((n) => n.startsWith('.staging'))).toEqual([]);
  return (err as AxleError).message;
}

describe('config bundles', () => {
  it('builds deterministically and round-trips through safe extraction', async () => {
    const root = tmp();
    const src = sourceTree(root);
    const a = await buildBundle(src);
    const b = await buildBundle(src);
    expect(Buffer.from(a.data).equals(b.data)).toBe(true);
    expect(Buffer.from(a.hash).equals(Buffer.from(sha256(a.data)))).toBe(true);
    expect(a.files).toEqual(['files/motd', 'policies/base.yaml']);
    const staging = await extractBundle(a.data, join(root, 'out'));
    expect(readFileSync(join(staging, 'files', 'motd'), 'utf8')).toBe('Managed by Axle\n');
    expect(lstatSync(staging).mode & 0o777).toBe(0o700);
  });

  it('swaps .live atomically and keeps the previous version', async () => {
    const { root } = await liveRoot();
    expect(liveVersion(root)).toBe(3);
    const other = tmp();
    writeFileSync(join(other, 'x.yaml'), 'v: 4\n');
    const { data } = await buildBundle(other);
    activateBundle(root, await extractBundle(data, root), 4);
    expect(liveVersion(root)).toBe(4);
    expect(readFileSync(join(root, '.live', 'x.yaml'), 'utf8')).toBe('v: 4\n');
    expect(existsSync(join(root, 'versions', '3', 'files', 'motd'))).toBe(true);
    activateBundle(root, await extractBundle(data, root), 5);
    expect(readdirSync(join(root, 'versions')).sort()).toEqual(['4', '5']);
  });

  it('verifies hash and signature', async () => {
    const hub = generateKeyPair();
    const other = generateKeyPair();
    const { data, hash } = await buildBundle(sourceTree(tmp()));
    const signature = signBundle(7, hash, new Signer(hub));
    expect(() => verifyBundle({ version: 7, hash, signature, data }, [other.publicKey, hub.publicKey])).not.toThrow();
    const tampered = Buffer.from(data);
    tampered[tampered.length - 10] = (tampered[tampered.length - 10] as number) ^ 1;
    expect(() => verifyBundle({ version: 7, hash, signature, data: tampered }, [hub.publicKey])).toThrow(
      /hash does not match/,
    );
    expect(() => verifyBundle({ version: 7, hash, signature, data }, [other.publicKey])).toThrow(
      /not from a trusted hub key/,
    );
    // A signature for version 7 does not carry over to version 8.
    expect(() => verifyBundle({ version: 8, hash, signature, data }, [hub.publicKey])).toThrow(/not from a trusted/);
  });

  it('refuses "../x" and leaves .live untouched', async () => {
    const { root, before } = await liveRoot();
    expect(await refusedWith(tarball(tarEntry('../x', '0', Buffer.from('evil'))), root, before)).toMatch(/\.\./);
    expect(await refusedWith(tarball(tarEntry('policies/../../x', '0', Buffer.from('evil'))), root, before)).toMatch(
      /\.\./,
    );
  });

  it('refuses an absolute path "/etc/x"', async () => {
    const { root, before } = await liveRoot();
    expect(await refusedWith(tarball(tarEntry('/etc/x', '0', Buffer.from('evil'))), root, before)).toMatch(/absolute/);
  });

  it('refuses symlinks and hardlinks out of the tree', async () => {
    const { root, before } = await liveRoot();
    expect(await refusedWith(tarball(tarEntry('link', '2', undefined, '/etc/passwd')), root, before)).toMatch(
      /SymbolicLink/,
    );
    expect(await refusedWith(tarball(tarEntry('hard', '1', undefined, '../../etc/passwd')), root, before)).toMatch(
      /Link/,
    );
    // A link followed by a file written through it: the classic two-step escape.
    expect(
      await refusedWith(
        tarball(tarEntry('d', '2', undefined, '/tmp'), tarEntry('d/x', '0', Buffer.from('evil'))),
        root,
        before,
      ),
    ).toMatch(/SymbolicLink/);
  });

  it('refuses device files and FIFOs', async () => {
    const { root, before } = await liveRoot();
    expect(await refusedWith(tarball(tarEntry('dev', '3')), root, before)).toMatch(/CharacterDevice/);
    expect(await refusedWith(tarball(tarEntry('fifo', '6')), root, before)).toMatch(/FIFO/);
  });

  it('refuses a gzip bomb, oversize entries and too many files', async () => {
    const { root, before } = await liveRoot();
    const bomb = gzipSync(Buffer.concat([tarEntry('zeros', '0', Buffer.alloc(80 * 1024 * 1024)), Buffer.alloc(1024)]));
    expect(bomb.length).toBeLessThan(200 * 1024);
    expect(await refusedWith(bomb, root, before)).toMatch(/gzip bomb/);
    const limits = { maxFiles: 3, maxFileBytes: 1024, maxTotalBytes: 1_000_000, maxRatio: 200 };
    const big = tarball(tarEntry('big', '0', Buffer.alloc(4096, 1)));
    expect(await extractBundle(big, root, limits).catch((e: Error) => e.message)).toMatch(/file limit/);
    const many = tarball(...Array.from({ length: 5 }, (_, i) => tarEntry(`f${i}`, '0', Buffer.from('x'))));
    expect(await extractBundle(many, root, limits).catch((e: Error) => e.message)).toMatch(/more than 3 files/);
    expect(treeDigest(root)).toBe(before);
  });

  it('refuses data that is not a gzip tar', async () => {
    const { root, before } = await liveRoot();
    expect(await refusedWith(Buffer.from('definitely not gzip'), root, before)).toMatch(/not gzip/);
    expect(await refusedWith(gzipSync(Buffer.from('x'.repeat(700))), root, before)).toMatch(/tar|not/);
  });

  it('refuses to build from a tree with links', async () => {
    const root = tmp();
    const src = sourceTree(root);
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/etc/passwd', join(src, 'files', 'passwd'));
    await expect(buildBundle(src)).rejects.toThrow(/not a regular file/);
  });
});
