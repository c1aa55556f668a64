import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readFile, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { describeChange } from '../diff.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, octal, ok, secretValue, type Outcome, type ResourceContext } from './context.js';

export async function lstatOrNone(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
}

export const kindOf = (st: Stats) =>
  st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'special file';

/** Differences in mode and ownership, as "mode 0600 -> 0644" phrases. */
function metaDiffs(st: Stats, mode: number | undefined, uid: number | undefined, gid: number | undefined): string[] {
  const d: string[] = [];
  if (mode !== undefined && (st.mode & 0o7777) !== mode) d.push(`mode ${octal(st.mode)} -> ${octal(mode)}`);
  if (uid !== undefined && st.uid !== uid) d.push(`owner ${st.uid} -> ${uid}`);
  if (gid !== undefined && st.gid !== gid) d.push(`group ${st.gid} -> ${gid}`);
  return d;
}

async function applyMeta(
  p: string,
  st: Stats,
  mode: number | undefined,
  uid: number | undefined,
  gid: number | undefined,
): Promise<void> {
  if ((uid !== undefined && st.uid !== uid) || (gid !== undefined && st.gid !== gid))
    await chown(p, uid ?? st.uid, gid ?? st.gid);
  // chown can clear setuid bits, so the mode goes last.
  if (mode !== undefined && (st.mode & 0o7777) !== mode) await chmod(p, mode);
}

async function desiredContent(r: ResourceOf<'file'>, ctx: ResourceContext): Promise<Buffer | undefined> {
  if (typeof r.content === 'string') return Buffer.from(r.content, 'utf8');
  if (r.content !== undefined) return secretValue(ctx.secrets, r.content.secret);
  if (r.template !== undefined) {
    // A secret this host may not read fails the resource here, with the hub's reason.
    for (const name of ctx.templates().secretNames(r.template)) secretValue(ctx.secrets, name);
    return Buffer.from(await ctx.templates().render(r.template, ctx.scope), 'utf8');
  }
  if (r.source === undefined) return undefined;
  return readBundleFile(ctx.configDir, r.source, 'source');
}

/** A regular file of the bundle, by its bundle-relative path. */
export async function readBundleFile(configDir: string, rel: string, key: string): Promise<Buffer> {
  const root = resolve(configDir);
  const p = resolve(root, rel);
  if (!p.startsWith(root + sep)) throw new Error(`${key} ${rel} leaves the config bundle`);
  const st = await lstatOrNone(p);
  if (!st) throw new Error(`${key} ${rel} is not in the config bundle (${p}); add it to the bundle or fix the path`);
  if (!st.isFile()) throw new Error(`${key} ${rel} is a ${kindOf(st)}, not a regular file`);
  return readFile(p);
}

export async function applyFile(r: ResourceOf<'file'>, ctx: ResourceContext): Promise<Outcome> {
  const want = await desiredContent(r, ctx);
  const uid = r.owner !== undefined ? ctx.ids.uid(r.owner) : undefined;
  const gid = r.group !== undefined ? ctx.ids.gid(r.group) : undefined;
  // Whatever holds a secret is sensitive whether or not the policy says so: hashes, never diffs.
  const usesSecret =
    (r.content !== undefined && typeof r.content !== 'string') ||
    (r.template !== undefined && ctx.templates().secretNames(r.template).length > 0);
  return syncFile(r.file, want, { mode: r.mode, uid, gid, sensitive: r.sensitive || usesSecret }, ctx);
}

export interface FileSpec {
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  sensitive: boolean;
}

/**
 * Brings one regular file to the wanted content (undefined: leave content alone) and metadata;
 * the one place file, line, block, cron and repository resources write files.
 */
export async function syncFile(
  path: string,
  want: Buffer | undefined,
  spec: FileSpec,
  ctx: ResourceContext,
): Promise<Outcome> {
  const { mode, uid, gid } = spec;
  const st = await lstatOrNone(path);
  if (st && !st.isFile())
    return failed(
      `${path} is a ${kindOf(st)}; refusing to replace it with a file (remove it with an absent resource first)`,
    );
  const diffs: string[] = [];
  let rewrite = false;
  let diff: string | undefined;
  if (!st) {
    diffs.push('missing');
    rewrite = true;
    if (want) diff = (await describeChange(path, undefined, want, spec.sensitive)).diff;
  } else {
    if (want && st.size !== want.length) rewrite = true;
    const have = want ? await readFile(path) : undefined;
    if (want && have && !have.equals(want)) rewrite = true;
    if (rewrite && want) {
      const c = await describeChange(path, have, want, spec.sensitive);
      diffs.push(c.summary);
      diff = c.diff;
    }
    diffs.push(...metaDiffs(st, mode, uid, gid));
  }
  if (diffs.length === 0) return ok('in sync');
  if (ctx.mode === 'audit') return drift(diffs.join(', '), diff);
  if (rewrite) {
    const parent = await lstatOrNone(dirname(path));
    if (!parent?.isDirectory())
      return failed(`parent directory ${dirname(path)} does not exist; add a directory resource before this file`);
    await writeReplacing(
      path,
      want ?? Buffer.alloc(0),
      mode ?? (st ? st.mode & 0o7777 : 0o644),
      uid ?? st?.uid,
      gid ?? st?.gid,
    );
  } else if (st) {
    await applyMeta(path, st, mode, uid, gid);
  }
  return changed(st ? diffs.join(', ') : `created${mode !== undefined ? ` with mode ${octal(mode)}` : ''}`, diff);
}

/** Temp file beside the target, fsync, then rename: a reader never sees half a file. */
async function writeReplacing(
  path: string,
  data: Buffer,
  mode: number,
  uid: number | undefined,
  gid: number | undefined,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.axle-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    if (uid !== undefined || gid !== undefined) await fh.chown(uid ?? -1, gid ?? -1);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

export async function applyDirectory(r: ResourceOf<'directory'>, ctx: ResourceContext): Promise<Outcome> {
  const path = r.directory;
  const uid = r.owner !== undefined ? ctx.ids.uid(r.owner) : undefined;
  const gid = r.group !== undefined ? ctx.ids.gid(r.group) : undefined;
  const st = await lstatOrNone(path);
  if (st && !st.isDirectory()) return failed(`${path} is a ${kindOf(st)}; refusing to replace it with a directory`);
  const diffs = st ? metaDiffs(st, r.mode, uid, gid) : ['missing'];
  if (diffs.length === 0) return ok('in sync');
  if (ctx.mode === 'audit') return drift(diffs.join(', '));
  if (!st) {
    await mkdir(path, { recursive: true, mode: r.mode ?? 0o755 });
    const made = await lstat(path);
    await applyMeta(path, made, r.mode, uid, gid);
    return changed('created');
  }
  await applyMeta(path, st, r.mode, uid, gid);
  return changed(diffs.join(', '));
}

export async function applyAbsent(r: ResourceOf<'absent'>, ctx: ResourceContext): Promise<Outcome> {
  const path = r.absent;
  const st = await lstatOrNone(path);
  if (!st) return ok('absent');
  if (st.isDirectory() && !r.recursive)
    return failed(`${path} is a directory; set \`recursive: true\` to remove it with its contents`);
  if (ctx.mode === 'audit') return drift(`${kindOf(st)} present`);
  await rm(path, { recursive: st.isDirectory(), force: true });
  return changed(`removed ${kindOf(st)}`);
}

/**
 * A symbolic link to `target` (relative targets are kept as written). An existing link is
 * re-pointed; a regular file is replaced only with `force: true`; a directory never is.
 */
export async function applySymlink(r: ResourceOf<'symlink'>, ctx: ResourceContext): Promise<Outcome> {
  const path = r.symlink;
  const st = await lstatOrNone(path);
  let what: string;
  if (!st) what = `missing (-> ${r.target})`;
  else if (st.isSymbolicLink()) {
    const now = await readlink(path);
    if (now === r.target) return ok(`-> ${r.target}`);
    what = `points to ${now}, not ${r.target}`;
  } else if (st.isFile() && r.force) what = `is a regular file; replacing it with a link to ${r.target}`;
  else
    return failed(
      `${path} is a ${kindOf(st)}; refusing to replace it with a link${st.isFile() ? ' (set `force: true` to replace a file)' : ''}`,
    );
  if (ctx.mode === 'audit') return drift(what);
  const parent = await lstatOrNone(dirname(path));
  if (!parent?.isDirectory())
    return failed(`parent directory ${dirname(path)} does not exist; add a directory resource before this link`);
  // A new link under a temporary name, then rename over the old one: never a moment without it.
  const tmp = join(dirname(path), `.${basename(path)}.axle-${process.pid}-${randomBytes(6).toString('hex')}`);
  await symlink(r.target, tmp);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return changed(what);
}
