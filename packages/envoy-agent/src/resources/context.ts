import { readFileSync } from 'node:fs';
import type { ResultStatus, TemplateScope, Templates } from '@axle/shared';
import type { CommandRunner } from '../command.js';

/** What a resource handler gets: the mode in force, the bundle, a command runner and limits. */
export interface ResourceContext {
  mode: 'enforce' | 'audit';
  configDir: string;
  runner: CommandRunner;
  execTimeoutMs: number;
  /** PATH and the rest of the environment commands run with. */
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  ids: IdResolver;
  /** The bundle's templates (made on first use) and what they see for this policy. */
  templates: () => Templates;
  scope: TemplateScope;
  /** Labels of the changed (or, in audit mode, drifting) resources that notify this one; empty if none did. */
  notifiedBy: readonly string[];
  /** The secrets fetched for this run. */
  secrets: RunSecrets;
}

/** Secrets the run asked the hub for: the values this host may read, and why others could not be had. */
export interface RunSecrets {
  values: Map<string, Buffer>;
  refused: Map<string, string>;
}

/** A secret's value for a resource, or an Error saying why this host cannot have it. */
export function secretValue(s: RunSecrets, name: string): Buffer {
  const v = s.values.get(name);
  if (v) return v;
  throw new Error(s.refused.get(name) ?? `secret "${name}" was not fetched for this run`);
}

export interface Outcome {
  status: ResultStatus;
  message: string;
  diff?: string | undefined;
}

export const ok = (message: string): Outcome => ({ status: 'ok', message });
export const changed = (message: string, diff?: string): Outcome => ({ status: 'changed', message, diff });
export const failed = (message: string): Outcome => ({ status: 'failed', message });
export const drift = (message: string, diff?: string): Outcome => ({ status: 'drift', message, diff });

/**
 * User and group names to ids, read from /etc/passwd and /etc/group once per run (Node has
 * no getpwnam). Numeric ids pass through.
 */
export class IdResolver {
  private users: Map<string, number> | undefined;
  private groups: Map<string, number> | undefined;
  constructor(
    private readonly passwd = '/etc/passwd',
    private readonly group = '/etc/group',
  ) {}

  uid(u: string | number): number {
    if (typeof u === 'number') return u;
    this.users ??= readIds(this.passwd);
    const id = this.users.get(u);
    if (id === undefined)
      throw new Error(`no such user "${u}" in ${this.passwd}; create the user first or use a numeric id`);
    return id;
  }

  /** Forgets what was read: a user or group resource just changed the files. */
  reset(): void {
    this.users = undefined;
    this.groups = undefined;
  }

  gid(g: string | number): number {
    if (typeof g === 'number') return g;
    this.groups ??= readIds(this.group);
    const id = this.groups.get(g);
    if (id === undefined)
      throw new Error(`no such group "${g}" in ${this.group}; create the group first or use a numeric id`);
    return id;
  }
}

function readIds(file: string): Map<string, number> {
  const m = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return m;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2] ?? '')) m.set(f[0], Number(f[2]));
  }
  return m;
}

export const octal = (m: number) => `0${(m & 0o7777).toString(8).padStart(3, '0')}`;
