import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describeFailure, type CommandOptions } from '../command.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, ok, type Outcome, type ResourceContext } from './context.js';
import { applyAbsent, lstatOrNone, readBundleFile, syncFile } from './files.js';
import { detectPackageManager, packageCommands } from './package.js';

/**
 * A package source with its signing key, so `package` resources can install from it.
 *   apt: /etc/apt/keyrings/NAME.asc (or .gpg) and /etc/apt/sources.list.d/NAME.sources
 *        (deb822, Signed-By that key only), then `apt-get update` of that source alone;
 *   dnf: /etc/pki/rpm-gpg/NAME.asc and /etc/yum.repos.d/NAME.repo with gpgcheck on.
 * The key is pinned to this source: it is never added to the global trusted keyring.
 */
export function repositoryPaths(name: string, type: 'apt' | 'dnf', armored: boolean) {
  return type === 'apt'
    ? { key: `/etc/apt/keyrings/${name}.${armored ? 'asc' : 'gpg'}`, source: `/etc/apt/sources.list.d/${name}.sources` }
    : { key: `/etc/pki/rpm-gpg/${name}.asc`, source: `/etc/yum.repos.d/${name}.repo` };
}

export function repositoryFile(r: ResourceOf<'repository'>, type: 'apt' | 'dnf', keyPath: string): string {
  const head = `# Managed by Axle (repository:${r.repository}); local changes are overwritten`;
  if (type === 'dnf')
    return [
      head,
      `[${r.repository}]`,
      `name=${r.description ?? r.repository}`,
      `baseurl=${r.url}`,
      'enabled=1',
      'gpgcheck=1',
      `gpgkey=file://${keyPath}`,
      '',
    ].join('\n');
  const suites = r.suites ?? [];
  // A flat repository ("./") has no components; deb822 wants the key left out then.
  const flat = suites.every((s) => s.endsWith('/'));
  return [
    head,
    ...(r.description ? [`# ${r.description}`] : []),
    'Types: deb',
    `URIs: ${r.url}`,
    `Suites: ${suites.join(' ')}`,
    ...(flat ? [] : [`Components: ${(r.components?.length ? r.components : ['main']).join(' ')}`]),
    `Signed-By: ${keyPath}`,
    '',
  ].join('\n');
}

/** apt-get update of this one source: quick, and no other source's failure fails this resource. */
export const aptUpdateOne = (sourceFile: string) => [
  'apt-get',
  'update',
  '-q',
  '-o',
  `Dir::Etc::SourceList=${sourceFile}`,
  '-o',
  'Dir::Etc::SourceParts=-',
  '-o',
  'APT::Get::List-Cleanup=0',
];

export async function applyRepository(r: ResourceOf<'repository'>, ctx: ResourceContext): Promise<Outcome> {
  const type = r.type ?? detectPackageManager(ctx.env.PATH);
  if (!type) return failed('no apt or dnf found on PATH; set `type:` to write the repository anyway');
  const key =
    r.key !== undefined
      ? Buffer.from(r.key)
      : r.key_source
        ? await readBundleFile(ctx.configDir, r.key_source, 'key_source')
        : undefined;
  const armored = key === undefined || key.subarray(0, 40).toString('latin1').includes('-----BEGIN PGP');
  const paths = repositoryPaths(r.repository, type, armored);
  if (r.state === 'absent') {
    const parts: [string, Outcome][] = [];
    for (const p of [paths.source, repositoryPaths(r.repository, type, !armored).key, paths.key])
      parts.push([p, await applyAbsent({ kind: 'absent', absent: p, recursive: false }, ctx)]);
    return combine(parts, 'absent');
  }
  if (!key) return failed('the repository has no signing key');
  const root = { mode: 0o644, uid: 0, gid: 0, sensitive: false };
  if (ctx.mode === 'enforce') await mkdir(dirname(paths.key), { recursive: true, mode: 0o755 });
  else if (!(await lstatOrNone(dirname(paths.key))))
    return drift(`${dirname(paths.key)} missing; key and source not written`);
  const keyOut = await syncFile(paths.key, key, { ...root, sensitive: !armored }, ctx);
  if (keyOut.status === 'failed') return keyOut;
  const before = await readFile(paths.source).catch(() => undefined);
  const srcOut = await syncFile(paths.source, Buffer.from(repositoryFile(r, type, paths.key)), root, ctx);
  const both = combine(
    [
      [paths.key, keyOut],
      [paths.source, srcOut],
    ],
    'in sync',
  );
  if (both.status !== 'changed' || type !== 'apt') return both;
  const opts: CommandOptions = {
    timeoutMs: ctx.execTimeoutMs,
    env: { ...ctx.env, ...packageCommands.apt.env },
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  const argv = aptUpdateOne(paths.source);
  const res = await ctx.runner(argv, opts);
  // apt-get update exits 0 on some fetch errors and says so as "W:"/"E:" lines.
  const problem = /^(E:|W: (GPG error|The repository|Failed to fetch|.*is not signed))/m.exec(res.stdout + res.stderr);
  if (res.code === 0 && !res.timedOut && !res.spawnError && !problem)
    return changed(`${both.message}; apt-get update of ${r.repository} done`, both.diff);
  // Leave the source as it was, so the next run tries again instead of finding it "in sync".
  if (before) await syncFile(paths.source, before, root, ctx);
  else await rm(paths.source, { force: true });
  return failed(
    `${describeFailure(argv, res, opts.timeoutMs)}${problem && res.code === 0 ? ` (${problem[0]})` : ''}; the source was put back as it was`,
  );
}

/** Several files of one resource as one outcome: failed wins, then changed, then drift. */
function combine(parts: [string, Outcome][], okMessage: string): Outcome {
  const bad = parts.find(([, p]) => p.status === 'failed');
  if (bad) return bad[1];
  const moved = parts
    .filter(([, p]) => p.status === 'changed' || p.status === 'drift')
    .map(([file, p]) => ({ ...p, message: `${file}: ${p.message}` }));
  if (moved.length === 0) return ok(okMessage);
  const message = moved.map((p) => p.message).join('; ');
  const diff =
    moved
      .map((p) => p.diff)
      .filter(Boolean)
      .join('') || undefined;
  return moved.some((p) => p.status === 'changed') ? changed(message, diff) : drift(message, diff);
}
