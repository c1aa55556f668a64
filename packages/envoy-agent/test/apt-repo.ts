import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A real, signed apt repository in a directory, for tests: packages built with dpkg-deb,
 * Packages and Release written as apt expects them, InRelease clear-signed by a key made
 * for this repository with gpg. Served to apt as a file:/ URI.
 */
export interface AptRepo {
  url: string;
  /** The ASCII-armored public key apt must trust for this repository. */
  key: string;
  /** Another key, for "signed by the wrong key" tests. */
  otherKey: string;
}

const run = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function gpgKey(home: string, uid: string): string {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { GNUPGHOME: home };
  run(
    'gpg',
    ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'],
    env,
  );
  return run('gpg', ['--batch', '--armor', '--export', uid], env);
}

/** Builds a .deb holding /usr/share/NAME/VERSION with the version as its content. */
function buildDeb(work: string, name: string, version: string): string {
  const root = join(work, `${name}-${version}`);
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(join(root, 'usr/share', name), { recursive: true });
  writeFileSync(join(root, 'usr/share', name, 'VERSION'), `${version}\n`);
  writeFileSync(
    join(root, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Axle tests <tests@axle.invalid>\nDescription: test package for Axle\n`,
  );
  const deb = join(work, `${name}_${version}_all.deb`);
  run('dpkg-deb', ['--build', '--root-owner-group', root, deb]);
  return deb;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Makes the repository under `dir` with `packages` (name -> versions), suite "stable", component "main". */
export function makeAptRepo(dir: string, packages: Record<string, string[]>): AptRepo {
  const repo = join(dir, 'repo');
  const pool = join(repo, 'pool');
  const bin = join(repo, 'dists/stable/main/binary-all');
  mkdirSync(pool, { recursive: true });
  mkdirSync(bin, { recursive: true });
  const stanzas: string[] = [];
  for (const [name, versions] of Object.entries(packages))
    for (const v of versions) {
      const deb = buildDeb(join(dir, 'build'), name, v);
      const file = join(pool, deb.split('/').at(-1) as string);
      writeFileSync(file, readFileSync(deb));
      const data = readFileSync(file);
      const control = run('dpkg-deb', ['-f', file]).trimEnd();
      stanzas.push(
        `${control}\nFilename: pool/${file.split('/').at(-1)}\nSize: ${data.length}\nSHA256: ${sha256(data)}\n`,
      );
    }
  const packagesText = Buffer.from(stanzas.join('\n'));
  writeFileSync(join(bin, 'Packages'), packagesText);
  const release = [
    'Origin: Axle tests',
    'Label: Axle tests',
    'Suite: stable',
    'Codename: stable',
    `Date: ${new Date().toUTCString()}`,
    'Architectures: all',
    'Components: main',
    'SHA256:',
    ` ${sha256(packagesText)} ${packagesText.length} main/binary-all/Packages`,
    '',
  ].join('\n');
  writeFileSync(join(repo, 'dists/stable/Release'), release);
  const home = join(dir, 'gnupg');
  const key = gpgKey(home, 'Axle Test Repository <repo@axle.invalid>');
  const otherHome = join(dir, 'gnupg-other');
  const otherKey = gpgKey(otherHome, 'Someone Else <else@axle.invalid>');
  run(
    'gpg',
    [
      '--batch',
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      '',
      '--digest-algo',
      'SHA256',
      '--clearsign',
      '-o',
      join(repo, 'dists/stable/InRelease'),
      join(repo, 'dists/stable/Release'),
    ],
    { GNUPGHOME: home },
  );
  for (const h of [home, otherHome]) run('gpgconf', ['--kill', 'all'], { GNUPGHOME: h });
  // apt fetches as its unprivileged _apt user: the tree must be readable by others.
  const open = (p: string) => {
    chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
    if (statSync(p).isDirectory()) for (const n of readdirSync(p)) open(join(p, n));
  };
  chmodSync(dir, 0o755);
  open(repo);
  return { url: `file:${repo}`, key, otherKey };
}
