/**
 * A binary Debian package from a list of files, with dpkg-deb and no debhelper: the tree is
 * staged (big files hard-linked), DEBIAN/ gets control, md5sums, conffiles and the
 * maintainer scripts, and everything is owned by root. The .deb is rebuilt only when the
 * staged tree or its metadata changed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { sha256Of, stamped } from './steps.js';

export interface DebFile {
  /** Absolute path inside the package, e.g. /usr/bin/axle-hub. */
  path: string;
  /** Copied (hard-linked when possible) from this file... */
  from?: string;
  /** ...or written with this content. */
  text?: string | Buffer;
  mode: number;
}

export interface DebSpec {
  name: string;
  /** The source package the binary packages come from (they share its changelog). */
  source: string;
  version: string;
  arch: string;
  maintainer: string;
  depends: string[];
  section: string;
  /** The synopsis line, then the extended description (lines of at most 80 characters). */
  description: string;
  files: DebFile[];
  conffiles: string[];
  scripts: Partial<Record<'preinst' | 'postinst' | 'prerm' | 'postrm', string>>;
}

/** How dpkg-deb compresses data.tar: xz, which every dpkg reads, at a level that keeps a build in seconds. */
export interface Compression {
  type: 'xz' | 'gzip' | 'zstd' | 'none';
  level: number;
}

/** Builds <outDir>/<name>_<version>_<arch>.deb and returns its path. */
export async function buildDeb(
  spec: DebSpec,
  o: { work: string; outDir: string; compression: Compression; sourceDateEpoch: number },
): Promise<string> {
  const stage = join(o.work, 'deb', spec.name);
  rmSync(stage, { recursive: true, force: true });
  for (const f of spec.files) {
    if (!f.path.startsWith('/') || f.path.includes('..')) throw new Error(`${spec.name}: bad path ${f.path}`);
    const to = join(stage, f.path);
    mkdirSync(dirname(to), { recursive: true, mode: 0o755 });
    if (f.text !== undefined) writeFileSync(to, f.text);
    else if (f.from !== undefined) place(f.from, to, f.mode);
    else throw new Error(`${spec.name}: ${f.path} has neither a source nor a text`);
    chmodSync(to, f.mode);
  }
  for (const c of spec.conffiles) {
    if (!spec.files.some((f) => f.path === c)) throw new Error(`${spec.name}: conffile ${c} is not in the package`);
  }

  const files = listFiles(stage);
  const sums = files.map((f) => ({ ...f, md5: hashFile('md5', join(stage, f.rel)) }));
  const installedKiB = files.reduce((n, f) => n + Math.max(1, Math.ceil(f.size / 1024)), 0);
  const control = controlText(spec, installedKiB);
  const key = sha256Of([
    control,
    JSON.stringify(spec.scripts),
    JSON.stringify(spec.conffiles),
    JSON.stringify(o.compression),
    String(o.sourceDateEpoch),
    ...sums.map((f) => `${f.rel} ${f.mode.toString(8)} ${f.md5} ${f.size}`),
  ]);
  const deb = join(o.outDir, `${spec.name}_${spec.version}_${spec.arch}.deb`);
  await stamped(deb, key, () => {
    const meta = join(stage, 'DEBIAN');
    mkdirSync(meta, { mode: 0o755 });
    writeFileSync(join(meta, 'control'), control, { mode: 0o644 });
    const conf = new Set(spec.conffiles.map((c) => c.slice(1)));
    writeFileSync(
      join(meta, 'md5sums'),
      sums
        .filter((f) => !conf.has(f.rel))
        .map((f) => `${f.md5}  ${f.rel}\n`)
        .join(''),
      { mode: 0o644 },
    );
    if (spec.conffiles.length > 0)
      writeFileSync(join(meta, 'conffiles'), `${spec.conffiles.join('\n')}\n`, { mode: 0o644 });
    for (const [name, text] of Object.entries(spec.scripts)) writeFileSync(join(meta, name), text, { mode: 0o755 });
    mkdirSync(o.outDir, { recursive: true });
    const tmp = `${deb}.tmp`;
    const r = spawnSync(
      'dpkg-deb',
      ['--root-owner-group', `-Z${o.compression.type}`, `-z${o.compression.level}`, '--build', stage, tmp],
      { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: String(o.sourceDateEpoch) } },
    );
    if (r.status !== 0) throw new Error(`dpkg-deb --build ${spec.name} failed: ${r.stderr}${r.stdout}`);
    execFileSync('mv', ['-f', tmp, deb]);
  });
  return deb;
}

function controlText(spec: DebSpec, installedKiB: number): string {
  const [synopsis, ...rest] = spec.description.trimEnd().split('\n');
  const extended = rest.map((l) => (l.trim() === '' ? ' .' : ` ${l}`)).join('\n');
  return `${[
    `Package: ${spec.name}`,
    `Source: ${spec.source}`,
    `Version: ${spec.version}`,
    `Architecture: ${spec.arch}`,
    `Maintainer: ${spec.maintainer}`,
    `Installed-Size: ${installedKiB}`,
    `Depends: ${spec.depends.join(', ')}`,
    `Section: ${spec.section}`,
    'Priority: optional',
    `Description: ${synopsis}`,
    extended,
  ].join('\n')}\n`;
}

/** Hard-links a big file into the stage when it already has the wanted mode, else copies it. */
function place(from: string, to: string, mode: number): void {
  if ((lstatSync(from).mode & 0o7777) === mode) {
    try {
      linkSync(from, to);
      return;
    } catch {
      // another file system: copy
    }
  }
  copyFileSync(from, to);
}

function listFiles(stage: string): { rel: string; mode: number; size: number }[] {
  const out: { rel: string; mode: number; size: number }[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(stage, rel)).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      const s = lstatSync(join(stage, r));
      if (s.isDirectory()) walk(r);
      else out.push({ rel: r, mode: s.mode & 0o7777, size: s.size });
    }
  };
  walk('');
  return out;
}

function hashFile(algo: 'md5', file: string): string {
  return createHash(algo).update(readFileSync(file)).digest('hex');
}
