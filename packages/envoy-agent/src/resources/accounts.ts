import { readFile } from 'node:fs/promises';
import { describeFailure, which, type CommandOptions } from '../command.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, ok, type Outcome, type ResourceContext } from './context.js';

/**
 * Users and groups through the shadow-utils commands (useradd, usermod, userdel, groupadd,
 * groupmod, groupdel), which every Linux distribution ships and which keep /etc/shadow,
 * /etc/gshadow and their locks right. The current state is read from /etc/passwd and
 * /etc/group, the files those commands write.
 */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  comment: string;
  home: string;
  shell: string;
}
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export async function readAccounts(): Promise<{ users: Map<string, PasswdEntry>; groups: Map<string, GroupEntry> }> {
  const read = (f: string) => readFile(f, 'utf8').catch(() => '');
  const users = new Map<string, PasswdEntry>();
  for (const line of (await read('/etc/passwd')).split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || !f[0]) continue;
    users.set(f[0], {
      name: f[0],
      uid: Number(f[2]),
      gid: Number(f[3]),
      comment: f[4] ?? '',
      home: f[5] ?? '',
      shell: f[6] ?? '',
    });
  }
  const groups = new Map<string, GroupEntry>();
  for (const line of (await read('/etc/group')).split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || !f[0]) continue;
    groups.set(f[0], { name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return { users, groups };
}

async function run(argv: string[], ctx: ResourceContext, done: string): Promise<Outcome> {
  if (!which(argv[0] as string, ctx.env.PATH))
    return failed(
      `${argv[0]} not found on PATH; user and group resources need the shadow-utils commands (package passwd)`,
    );
  const opts: CommandOptions = {
    timeoutMs: Math.min(ctx.execTimeoutMs, 60_000),
    env: ctx.env,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  const res = await ctx.runner(argv, opts);
  ctx.ids.reset();
  if (res.code === 0 && !res.timedOut && !res.spawnError) return changed(done);
  return failed(describeFailure(argv, res, opts.timeoutMs));
}

export async function applyGroup(r: ResourceOf<'group'>, ctx: ResourceContext): Promise<Outcome> {
  const { groups } = await readAccounts();
  const g = groups.get(r.group);
  if (r.state === 'absent') {
    if (!g) return ok('absent');
    if (ctx.mode === 'audit') return drift(`group ${r.group} exists (gid ${g.gid})`);
    return run(['groupdel', r.group], ctx, `removed group ${r.group}`);
  }
  if (!g) {
    if (ctx.mode === 'audit') return drift(`group ${r.group} missing`);
    const argv = [
      'groupadd',
      ...(r.gid !== undefined ? ['-g', String(r.gid)] : []),
      ...(r.system ? ['-r'] : []),
      r.group,
    ];
    return run(argv, ctx, `created group ${r.group}${r.gid !== undefined ? ` (gid ${r.gid})` : ''}`);
  }
  if (r.gid === undefined || g.gid === r.gid) return ok(`present (gid ${g.gid})`);
  if (ctx.mode === 'audit') return drift(`gid ${g.gid} -> ${r.gid}`);
  return run(['groupmod', '-g', String(r.gid), r.group], ctx, `gid ${g.gid} -> ${r.gid}`);
}

export async function applyUser(r: ResourceOf<'user'>, ctx: ResourceContext): Promise<Outcome> {
  const { users, groups } = await readAccounts();
  const u = users.get(r.user);
  if (r.state === 'absent') {
    if (!u) return ok('absent');
    if (ctx.mode === 'audit') return drift(`user ${r.user} exists (uid ${u.uid})`);
    return run(['userdel', r.user], ctx, `removed user ${r.user} (home directory kept)`);
  }
  const gidOf = (g: string | number): number | undefined => (typeof g === 'number' ? g : groups.get(g)?.gid);
  // In audit mode a group resource has not created them yet: that is part of the drift.
  const audit = ctx.mode === 'audit';
  if (r.group !== undefined && gidOf(r.group) === undefined && !audit)
    return failed(`primary group ${r.group} does not exist; add a group resource and require it`);
  const missing = (r.groups ?? []).filter((g) => !groups.has(g));
  if (missing.length > 0 && !audit)
    return failed(
      `group${missing.length > 1 ? 's' : ''} ${missing.join(', ')} do${missing.length > 1 ? '' : 'es'} not exist; add group resources and require them`,
    );
  if (!u) {
    if (ctx.mode === 'audit') return drift(`user ${r.user} missing`);
    // Debian's useradd makes a group of the user's name and refuses when one exists already.
    const primary = r.group ?? (groups.has(r.user) ? r.user : undefined);
    const argv = [
      'useradd',
      ...(r.uid !== undefined ? ['-u', String(r.uid)] : []),
      ...(primary !== undefined ? ['-g', String(primary)] : []),
      ...(r.groups?.length ? ['-G', r.groups.join(',')] : []),
      ...(r.shell ? ['-s', r.shell] : []),
      ...(r.home ? ['-d', r.home] : []),
      ...(r.comment !== undefined ? ['-c', r.comment] : []),
      ...(r.system ? ['-r'] : []),
      r.manage_home ? '-m' : '-M',
      r.user,
    ];
    return run(argv, ctx, `created user ${r.user}`);
  }
  const changes: string[] = [];
  const args: string[] = [];
  if (r.uid !== undefined && u.uid !== r.uid) {
    changes.push(`uid ${u.uid} -> ${r.uid}`);
    args.push('-u', String(r.uid));
  }
  const gid = r.group !== undefined ? gidOf(r.group) : undefined;
  if (gid !== undefined && u.gid !== gid) {
    changes.push(`primary gid ${u.gid} -> ${gid}`);
    args.push('-g', String(gid));
  }
  if (r.groups !== undefined) {
    const have = [...groups.values()].filter((g) => g.members.includes(r.user)).map((g) => g.name);
    const add = r.groups.filter((g) => !have.includes(g));
    const drop = r.append ? [] : have.filter((g) => !r.groups?.includes(g));
    if (add.length > 0 || drop.length > 0) {
      changes.push(
        [add.length ? `add to ${add.join(',')}` : '', drop.length ? `remove from ${drop.join(',')}` : '']
          .filter(Boolean)
          .join(', '),
      );
      args.push(...(r.append ? ['-a', '-G', add.join(',')] : ['-G', r.groups.join(',')]));
    }
  }
  if (r.shell !== undefined && u.shell !== r.shell) {
    changes.push(`shell ${u.shell} -> ${r.shell}`);
    args.push('-s', r.shell);
  }
  if (r.home !== undefined && u.home !== r.home) {
    changes.push(`home ${u.home} -> ${r.home}`);
    args.push('-d', r.home);
  }
  if (r.comment !== undefined && u.comment !== r.comment) {
    changes.push('comment');
    args.push('-c', r.comment);
  }
  if (changes.length === 0) return ok(`present (uid ${u.uid})`);
  if (ctx.mode === 'audit') return drift(changes.join(', '));
  return run(['usermod', ...args, r.user], ctx, changes.join(', '));
}
