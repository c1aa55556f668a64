import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AxleError,
  CHUNK_BYTES,
  Signer,
  buildBundle,
  chunksOf,
  generateKeyPair,
  sha256,
  signBundle,
  signRevert,
  type Connection,
  type KeyPair,
  type MessageOf,
} from '@axle/shared';
import { tempDir } from '@axle/testkit';
import { tarEntry, tarball, treeDigest } from '../../../test/support/tar.js';
import { adopt, envoyConnect, hubConnect, hubKey, newEnvoy, startSpoke, type Fixture } from './helpers.js';

let f: Fixture;
let hub: Connection;
const signer = new Signer(hubKey);
const src = tempDir('axle-src-');

function offer(
  version: number,
  data: Uint8Array,
  o: { key?: KeyPair; hash?: Uint8Array } = {},
): MessageOf<'config_offer'> {
  const hash = o.hash ?? sha256(data);
  return {
    type: 'config_offer',
    term: 1,
    version,
    hash,
    signature: signBundle(version, hash, o.key ? new Signer(o.key) : signer),
    total: data.length,
    offset: 0,
    data,
  };
}

async function refused(msg: MessageOf<'config_offer'>, pattern: RegExp): Promise<void> {
  const configDir = join(f.dir, 'config');
  const before = treeDigest(configDir);
  const err = await hub.request(msg, 10_000).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AxleError);
  expect((err as AxleError).code).toBe('E_BUNDLE_REFUSED');
  expect((err as AxleError).message).toMatch(pattern);
  expect(treeDigest(configDir)).toBe(before);
  expect(readFileSync(join(configDir, '.live', 'files', 'motd'), 'utf8')).toBe('version 1\n');
  expect((await hub.request({ type: 'probe', term: 1 }, 5000, 'probe_ok')).configVersion).toBe(1);
}

beforeAll(async () => {
  f = await startSpoke();
  hub = await hubConnect(f.spoke);
  mkdirSync(join(src.dir, 'files'), { recursive: true });
  writeFileSync(join(src.dir, 'files', 'motd'), 'version 1\n');
  const { data } = await buildBundle(src.dir);
  expect(await hub.request(offer(1, data), 10_000, 'config_ok')).toEqual({ type: 'config_ok', version: 1 });
});
afterAll(async () => {
  hub.close();
  await f.cleanup();
  src.cleanup();
});

describe('spoke config sync', () => {
  it('serves the live bundle to its envoys and keeps it across a restart', async () => {
    const e = newEnvoy('web1.dc1.example.com');
    await adopt(hub, [e]);
    const conn = await envoyConnect(f.spoke, e.hostname, e.key);
    const b = await conn.request({ type: 'config_fetch', version: 0 }, 10_000, 'config_bundle');
    expect(b.version).toBe(1);
    expect(Buffer.from(b.hubKey).equals(Buffer.from(hubKey.publicKey))).toBe(true);
    expect(Buffer.from(sha256(b.data)).equals(Buffer.from(b.hash))).toBe(true);
    conn.close();
    hub.close();
    await f.restart();
    hub = await hubConnect(f.spoke);
    expect((await hub.request({ type: 'probe', term: 1 }, 5000, 'probe_ok')).configVersion).toBe(1);
  });

  it('refuses a version that is not newer', async () => {
    const { data } = await buildBundle(src.dir);
    await refused(offer(1, data), /not newer/);
  });

  it('refuses a tampered hash and a wrong signature', async () => {
    const { data } = await buildBundle(src.dir);
    const tampered = Buffer.from(data);
    tampered[tampered.length - 12] = (tampered[tampered.length - 12] as number) ^ 0xff;
    await refused({ ...offer(2, data), data: tampered }, /hash does not match/);
    await refused(offer(2, data, { key: generateKeyPair() }), /not from a trusted hub key/);
  });

  it('refuses hostile archives: "../x", "/etc/x", links out of the tree, a gzip bomb', async () => {
    await refused(offer(2, tarball(tarEntry('../x', '0', Buffer.from('evil')))), /\.\./);
    await refused(offer(2, tarball(tarEntry('/etc/x', '0', Buffer.from('evil')))), /absolute/);
    await refused(
      offer(2, tarball(tarEntry('l', '2', undefined, '/etc'), tarEntry('l/passwd', '0', Buffer.from('evil')))),
      /SymbolicLink/,
    );
    await refused(offer(2, tarball(tarEntry('h', '1', undefined, '../../../etc/passwd'))), /Link/);
    const bomb = gzipSync(Buffer.concat([tarEntry('zeros', '0', Buffer.alloc(80 * 1024 * 1024)), Buffer.alloc(1024)]));
    await refused(offer(2, bomb), /gzip bomb/);
  });

  it('takes a bundle larger than a frame in chunks, and refuses chunks out of order', async () => {
    const { randomBytes } = await import('node:crypto');
    writeFileSync(join(src.dir, 'files', 'blob.bin'), randomBytes(1536 * 1024));
    const { data } = await buildBundle(src.dir);
    expect(data.length).toBeGreaterThan(CHUNK_BYTES * 2);
    const whole = offer(2, data);
    const parts = [...chunksOf(data)];
    // Skipping the second chunk is refused and changes nothing.
    await hub.request({ ...whole, data: parts[0]!.data }, 10_000, 'config_ok');
    const skip = await hub
      .request({ ...whole, offset: parts[2]!.offset, data: parts[2]!.data }, 10_000)
      .catch((e: AxleError) => e);
    expect((skip as AxleError).code).toBe('E_INVALID');
    let last: MessageOf<'config_ok'> | undefined;
    for (const p of parts) last = await hub.request({ ...whole, offset: p.offset, data: p.data }, 10_000, 'config_ok');
    expect(last).toEqual({ type: 'config_ok', version: 2 });
    // Envoys fetch it back chunk by chunk.
    const e = newEnvoy('web2.dc1.example.com');
    await adopt(hub, [e]);
    const conn = await envoyConnect(f.spoke, e.hostname, e.key);
    const got: Uint8Array[] = [];
    for (let off = 0; ; ) {
      const b = await conn.request({ type: 'config_fetch', version: 0, offset: off }, 10_000, 'config_bundle');
      got.push(b.data);
      off += b.data.length;
      if (off >= b.total) break;
    }
    expect(Buffer.concat(got).equals(Buffer.from(data))).toBe(true);
    conn.close();
  });

  it('takes a newer good bundle after all that', async () => {
    writeFileSync(join(src.dir, 'files', 'motd'), 'version 2\n');
    const { rmSync } = await import('node:fs');
    rmSync(join(src.dir, 'files', 'blob.bin'));
    const { data } = await buildBundle(src.dir);
    expect((await hub.request(offer(3, data), 10_000, 'config_ok')).version).toBe(3);
    expect(readFileSync(join(f.dir, 'config', '.live', 'files', 'motd'), 'utf8')).toBe('version 2\n');
  });

  it('holds a staged version unserved, gives it to an envoy that names it, and keeps revert orders across a restart', async () => {
    writeFileSync(join(src.dir, 'files', 'motd'), 'version 4, staged\n');
    const { data } = await buildBundle(src.dir);
    expect(await hub.request({ ...offer(4, data), stage: true }, 10_000, 'config_ok')).toEqual({
      type: 'config_ok',
      version: 3,
      staged: 4,
    });
    expect(readFileSync(join(f.dir, 'config', '.live', 'files', 'motd'), 'utf8')).toBe('version 2\n');
    expect((await hub.request({ type: 'stats', term: 1 }, 5000, 'stats_result')).stats.staged).toBe(4);
    const e = newEnvoy('web3.dc1.example.com');
    await adopt(hub, [e]);
    let conn = await envoyConnect(f.spoke, e.hostname, e.key);
    const checkin = (v: number) =>
      conn.request({ type: 'checkin', hostname: e.hostname, epoch: 1, term: 1, configVersion: v }, 5000, 'checkin_ok');
    // Check-ins still name the live version; only an envoy that asks for 4 gets it.
    expect((await checkin(3)).configVersion).toBe(3);
    expect((await conn.request({ type: 'config_fetch', version: 0 }, 5000, 'config_bundle')).version).toBe(3);
    expect((await conn.request({ type: 'config_fetch', version: 4 }, 5000, 'config_bundle')).version).toBe(4);
    const missing = await conn.request({ type: 'config_fetch', version: 99 }, 5000).catch((x: AxleError) => x);
    expect((missing as AxleError).code).toBe('E_NOT_FOUND');
    // A staged version must be newer than the live one too.
    const old = await hub.request({ ...offer(3, data), stage: true }, 5000).catch((x: AxleError) => x);
    expect((old as AxleError).message).toMatch(/not newer/);
    // Withdrawn with its revert order: gone from the spoke, and the order goes to envoys that took it.
    const order = signRevert({ rollout: 'r-test', from: 4, to: 3 }, signer);
    expect(
      await hub.request({ type: 'config_unstage', term: 1, version: 4, revert: order }, 5000, 'config_ok'),
    ).toEqual({ type: 'config_ok', version: 3 });
    const gone = await conn.request({ type: 'config_fetch', version: 4 }, 5000).catch((x: AxleError) => x);
    expect((gone as AxleError).code).toBe('E_NOT_FOUND');
    expect((await checkin(4)).revert).toEqual(order);
    expect((await checkin(3)).revert).toBeUndefined();
    conn.close();
    hub.close();
    await f.restart();
    hub = await hubConnect(f.spoke);
    conn = await envoyConnect(f.spoke, e.hostname, e.key);
    expect((await checkin(4)).revert).toEqual(order);
    conn.close();
  });
});
