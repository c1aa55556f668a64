/**
 * /usr/share/doc/<package>/copyright: Axle's own notice, then the license of everything the
 * package carries, as each upstream ships it: the Node.js runtime and every npm package that
 * was bundled or copied in (the lists come from esbuild's metafile and the copied tree).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface PackageInfo {
  name: string;
  version: string;
  license: string;
  dir: string;
}

export function packageInfo(dir: string): PackageInfo {
  const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    license?: string;
  };
  return { name: p.name, version: p.version, license: p.license ?? 'not stated in package.json', dir };
}

/** The LICENSE of the Node.js running this build, which every package carries with its binary. */
function nodeLicense(): string {
  const prefix = dirname(dirname(process.execPath));
  const candidates = ['LICENSE', 'share/doc/node/LICENSE', 'share/doc/nodejs/LICENSE'].map((c) => join(prefix, c));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`cannot find the LICENSE of ${process.execPath} (looked at ${candidates.join(', ')})`);
  return readFileSync(found, 'utf8');
}

/** The terms of the Apache License 2.0, which Debian keeps once in /usr/share/common-licenses. */
const APACHE_2_TERMS = /Apache License\s+Version 2\.0, January 2004[\s\S]*?END OF TERMS AND CONDITIONS/g;
const APACHE_2_POINTER = 'Apache License, Version 2.0: its full text is in /usr/share/common-licenses/Apache-2.0.';

function licenseText(p: PackageInfo): string {
  const file = readdirSync(p.dir).find((f) => /^(LICEN[CS]E|COPYING)(\.(md|txt))?$/i.test(f));
  return file
    ? readFileSync(join(p.dir, file), 'utf8').trim().replace(APACHE_2_TERMS, APACHE_2_POINTER)
    : `${p.name} ships no license file; its package.json states the license: ${p.license}.`;
}

const RULE = `\n${'-'.repeat(78)}\n`;

export function copyrightFile(o: {
  pkg: string;
  version: string;
  /** What carries Node.js in this package, e.g. "usr/lib/axle/hub/node". */
  runtime: string[];
  packages: PackageInfo[];
}): string {
  const seen = new Map(o.packages.map((p) => [`${p.name}@${p.version}`, p]));
  const pkgs = [...seen.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
  const head = `${o.pkg} ${o.version}: Axle fleet management (hub, spokes and envoy agents).

Axle: Copyright the Axle developers. No license has been granted for Axle itself
yet; all rights reserved.

${o.pkg} also carries third-party software under its own licenses, whose texts
follow as upstream ships them, except that the Apache License 2.0, which Debian
keeps in /usr/share/common-licenses, is referred to there:

- the Node.js ${process.version} runtime (${o.runtime.join(', ')}); its license
  covers the libraries Node.js is built with (V8, OpenSSL, ICU, libuv, zlib...);
- these npm packages, bundled into Axle's JavaScript or installed beside it:
${pkgs.map((p) => `    ${p.name} ${p.version} (${p.license})`).join('\n')}
`;
  const parts = [
    head,
    `Node.js ${process.version}\n\n${nodeLicense().trim().replace(APACHE_2_TERMS, APACHE_2_POINTER)}`,
    ...pkgs.map((p) => `${p.name} ${p.version} (${p.license})\n\n${licenseText(p)}`),
  ];
  return `${parts.join(RULE)}\n`;
}
