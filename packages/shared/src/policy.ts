import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { Glob } from './glob.js';
import { errorText } from './errors.js';
import { parseConfigText } from './config.js';
import {
  arr,
  bool,
  custom,
  def,
  duration,
  obj,
  oneOf,
  opt,
  record,
  str,
  type Infer,
  type Issue,
  type Json,
  type Schema,
} from './schema.js';

/**
 * Policies live in the applied config bundle as `<config_dir>/policies/*.yaml` (and .yml),
 * read in file-name order. A file holds one policy:
 *
 *   name: web            # defaults to the file name
 *   match:               # all given conditions must hold; no match = every envoy
 *     hostnames: ["web*.dc1.*"]
 *     traits: { os_id: debian }
 *   mode: audit          # overrides the agent's mode for this policy
 *   resources:           # applied in order; each names exactly one kind
 *     - file: /etc/motd
 *       content: "hello\n"        # or source: files/motd (relative to the bundle)
 *       mode: "0644"
 *     - exec: [/usr/bin/update-ca-certificates]
 *       unless: [/usr/bin/test, -e, /etc/ssl/certs/x.pem]
 */

const absPath = () =>
  custom('path', (v) => {
    if (typeof v !== 'string' || !isAbsolute(v)) throw new Error(`expected an absolute path, got ${JSON.stringify(v)}`);
    if (v.length > 4096 || v.includes('\0')) throw new Error('is not a usable path');
    return normalize(v);
  });

const relPath = () =>
  custom('source', (v) => {
    if (typeof v !== 'string' || v === '' || isAbsolute(v))
      throw new Error('expected a path relative to the config bundle, e.g. files/motd');
    const n = normalize(v);
    if (n === '..' || n.startsWith('../')) throw new Error('must stay inside the config bundle (no "..")');
    return n;
  });

/** File modes as "0644" (octal text); a bare YAML number like 644 is read as the same octal digits. */
const fileMode = () =>
  custom('mode', (v) => {
    const t = typeof v === 'number' && Number.isInteger(v) ? String(v) : v;
    if (typeof t !== 'string' || !/^0?[0-7]{3,4}$/.test(t))
      throw new Error(`expected an octal mode such as "0644", got ${JSON.stringify(v)}`);
    return parseInt(t, 8);
  });

const principal = () =>
  custom('principal', (v) => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
    if (typeof v === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?$/.test(v)) return v;
    throw new Error(`expected a user/group name or numeric id, got ${JSON.stringify(v)}`);
  });

/** A command: an argv list (no shell), or one string that needs `shell: true`. */
const command = () =>
  custom('command', (v): string[] | string => {
    if (typeof v === 'string' && v.trim() !== '') return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number'))
      return v.map(String);
    throw new Error('expected a command as a list of arguments, e.g. [/usr/bin/touch, /tmp/x]');
  });

const label = () => opt(str({ min: 1, max: 200 }));

const shapes = {
  file: obj({
    file: absPath(),
    name: label(),
    content: opt(str({ max: 4 * 1024 * 1024 })),
    source: opt(relPath()),
    mode: opt(fileMode()),
    owner: opt(principal()),
    group: opt(principal()),
  }),
  directory: obj({
    directory: absPath(),
    name: label(),
    mode: opt(fileMode()),
    owner: opt(principal()),
    group: opt(principal()),
  }),
  absent: obj({ absent: absPath(), name: label(), recursive: def(bool(), false) }),
  exec: obj({
    exec: command(),
    name: label(),
    unless: opt(command()),
    onlyif: opt(command()),
    creates: opt(absPath()),
    shell: def(bool(), false),
    timeout: opt(duration({ min: 10, max: 24 * 3_600_000 })),
    cwd: opt(absPath()),
    env: opt(record(str({ max: 4096 }), { maxKeys: 64 })),
  }),
  package: obj({
    package: custom('packages', (v) => {
      const list = typeof v === 'string' ? [v] : v;
      if (
        !Array.isArray(list) ||
        list.length === 0 ||
        !list.every((p) => typeof p === 'string' && /^[A-Za-z0-9][A-Za-z0-9+._:-]*$/.test(p))
      ) {
        throw new Error('expected a package name or a list of names');
      }
      return list as string[];
    }),
    name: label(),
    state: def(oneOf(['installed', 'absent'] as const), 'installed'),
  }),
  service: obj({
    service: str({ min: 1, max: 256, pattern: /^[A-Za-z0-9@_.:-]+$/, hint: 'must be a systemd unit name' }),
    name: label(),
    state: opt(oneOf(['running', 'stopped'] as const)),
    enabled: opt(bool()),
  }),
};

export type ResourceKind = keyof typeof shapes;
export const RESOURCE_KINDS = Object.keys(shapes) as ResourceKind[];
export type Resource = { [K in ResourceKind]: { kind: K } & Infer<(typeof shapes)[K]> }[ResourceKind];
export type ResourceOf<K extends ResourceKind> = Extract<Resource, { kind: K }>;

const resourceSchema: Schema<Resource> = {
  kind: 'resource',
  spec: { kind: 'custom', name: 'resource', examples: [] },
  parse(v, path, issues) {
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      return void issues.push({ path, message: 'expected a mapping naming one resource kind' });
    const kinds = RESOURCE_KINDS.filter((k) => k in v);
    if (kinds.length !== 1) {
      return void issues.push({
        path,
        message: `a resource names exactly one of ${RESOURCE_KINDS.join(', ')}${kinds.length ? ` (found ${kinds.join(', ')})` : ''}`,
      });
    }
    const kind = kinds[0] as ResourceKind;
    const before = issues.length;
    const r = (shapes[kind] as Schema<Record<string, unknown>>).parse(v, path, issues);
    if (!r || issues.length > before) return undefined;
    const res = { kind, ...r } as Resource;
    crossCheck(res, path, issues);
    return issues.length > before ? undefined : res;
  },
};

function crossCheck(r: Resource, path: string, issues: Issue[]): void {
  if (r.kind === 'file' && r.content !== undefined && r.source !== undefined)
    issues.push({ path: `${path}.source`, message: 'give either content or source, not both' });
  if (r.kind === 'exec' && !r.shell) {
    for (const key of ['exec', 'unless', 'onlyif'] as const) {
      if (typeof r[key] === 'string')
        issues.push({
          path: `${path}.${key}`,
          message:
            'a command written as one string runs through a shell: set `shell: true`, or write it as a list of arguments',
        });
    }
  }
  if (r.kind === 'service' && r.state === undefined && r.enabled === undefined)
    issues.push({ path, message: 'a service resource needs `state` (running/stopped) and/or `enabled`' });
  if (r.kind === 'absent' && r.absent === '/') issues.push({ path: `${path}.absent`, message: 'refusing to remove /' });
}

const scalar = () =>
  custom('scalar', (v) => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    throw new Error('expected a string, number or boolean');
  });

export const policySchema = obj({
  name: opt(str({ min: 1, max: 200 })),
  description: opt(str({ max: 2000 })),
  match: opt(
    obj({
      hostnames: opt(arr(str({ min: 1, max: 253 }), { max: 1000 })),
      traits: opt(record(scalar(), { maxKeys: 64 })),
    }),
  ),
  mode: opt(oneOf(['enforce', 'audit'] as const)),
  resources: def(arr(resourceSchema, { max: 5000 }), []),
});
export type Policy = Infer<typeof policySchema> & { name: string; file: string };

export interface LoadedPolicies {
  policies: Policy[];
  /** One line per bad file: "file:line: key: reason". */
  errors: { file: string; message: string }[];
}

/** Reads every policy file of a bundle. A bad file is reported (file and line), never thrown. */
export function loadPolicies(configDir: string): LoadedPolicies {
  const dir = join(configDir, 'policies');
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))
      .sort();
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return { policies: [], errors: [] };
    return { policies: [], errors: [{ file: dir, message: `${dir}: cannot read policies: ${errorText(e)}` }] };
  }
  const out: LoadedPolicies = { policies: [], errors: [] };
  for (const n of names) {
    const file = join(dir, n);
    try {
      const p = parseConfigText(readFileSync(file, 'utf8'), file, policySchema);
      out.policies.push({ ...p, name: p.name ?? n.replace(/\.ya?ml$/, ''), file });
    } catch (e) {
      out.errors.push({ file, message: e instanceof Error ? e.message.replace(/^E_[A-Z_]+: /, '') : String(e) });
    }
  }
  return out;
}

/** Whether a policy applies to this host: any hostname glob matches and every trait is equal. */
export function policyMatches(p: Policy, hostname: string, traits: Record<string, Json>): boolean {
  const m = p.match;
  if (!m) return true;
  if (m.hostnames && !m.hostnames.some((g) => Glob.compile(g).test(hostname))) return false;
  for (const [k, want] of Object.entries(m.traits ?? {})) {
    const have = traitValue(traits, k);
    if (have === undefined || have === null || typeof have === 'object' || String(have) !== String(want)) return false;
  }
  return true;
}

/** A trait by its flat name ("os_id"), or by a dotted path into a custom trait ("app.role"). */
function traitValue(traits: Record<string, Json>, key: string): Json | undefined {
  if (key in traits) return traits[key];
  let cur: Json | undefined = traits;
  for (const part of key.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, Json>)[part];
  }
  return cur;
}
