import {
  arr,
  bool,
  custom,
  def,
  duration,
  int,
  obj,
  oneOf,
  opt,
  record,
  str,
  type Infer,
  type Schema,
} from './schema.js';
import {
  absPath,
  accountName,
  bundlePath,
  command,
  cronSchedule,
  fileContent,
  fileMode,
  oneLine,
  principal,
  regex,
} from './policy-resource-fields.js';
import { crossCheck } from './policy-resource-checks.js';

/**
 * The resource kinds a policy can hold, each a strict schema. Every resource names exactly one
 * kind by its key (`file: /etc/motd`), may carry `name:` (its label in results and references),
 * `require:` and `notify:` (labels of other resources, `kind:name`).
 */

/** `kind:label`, the way results name a resource. */
export const REF = /^([a-z]+):(.+)$/;
const refs = () =>
  arr(
    custom('reference', (v) => {
      const m = typeof v === 'string' && v.length <= 600 ? REF.exec(v) : null;
      if (!m || !((m[1] as string) in shapes))
        throw new Error(
          `expected a resource reference such as "service:nginx" or "file:/etc/motd" (kind:name, as results label it), got ${JSON.stringify(v)}`,
        );
      return v as string;
    }),
    { max: 100 },
  );

const common = {
  name: opt(str({ min: 1, max: 200 })),
  require: opt(refs()),
  notify: opt(refs()),
};

const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9+._:-]*$/;
const UNIT = /^[A-Za-z0-9@_.:-]+$/;
const shapes = {
  file: obj({
    file: absPath(),
    ...common,
    content: opt(fileContent()),
    source: opt(bundlePath()),
    template: opt(bundlePath()),
    mode: opt(fileMode()),
    owner: opt(principal()),
    group: opt(principal()),
    sensitive: def(bool(), false),
  }),
  directory: obj({
    directory: absPath(),
    ...common,
    mode: opt(fileMode()),
    owner: opt(principal()),
    group: opt(principal()),
  }),
  absent: obj({ absent: absPath(), ...common, recursive: def(bool(), false) }),
  symlink: obj({
    symlink: absPath(),
    ...common,
    target: str({ min: 1, max: 4096, pattern: /^[^\0]+$/, hint: 'must be a path' }),
    force: def(bool(), false),
  }),
  line: obj({
    line: absPath(),
    ...common,
    content: oneLine(),
    match: opt(regex()),
    state: def(oneOf(['present', 'absent'] as const), 'present'),
    sensitive: def(bool(), false),
  }),
  block: obj({
    block: absPath(),
    ...common,
    content: def(str({ max: 1024 * 1024 }), ''),
    marker: opt(
      str({
        max: 200,
        pattern: /^[^\n]*\{mark\}[^\n]*$/,
        hint: 'must be one line holding {mark}, e.g. "# {mark} app"',
      }),
    ),
    state: def(oneOf(['present', 'absent'] as const), 'present'),
    sensitive: def(bool(), false),
  }),
  exec: obj({
    exec: command(),
    ...common,
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
      if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === 'string' && PACKAGE.test(p)))
        throw new Error('expected a package name or a list of names');
      return list as string[];
    }),
    ...common,
    state: def(oneOf(['installed', 'absent'] as const), 'installed'),
    version: opt(str({ min: 1, max: 200, pattern: /^[A-Za-z0-9+.~:_-]+$/, hint: 'must be a package version' })),
  }),
  service: obj({
    service: str({ min: 1, max: 256, pattern: UNIT, hint: 'must be a systemd unit name' }),
    ...common,
    state: opt(oneOf(['running', 'stopped'] as const)),
    enabled: opt(bool()),
    on_notify: def(oneOf(['restart', 'reload'] as const), 'restart'),
  }),
  user: obj({
    user: accountName('user'),
    ...common,
    state: def(oneOf(['present', 'absent'] as const), 'present'),
    uid: opt(int({ min: 0, max: 2 ** 31 - 2 })),
    group: opt(principal()),
    groups: opt(arr(accountName('group'), { max: 100 })),
    append: def(bool(), false),
    shell: opt(absPath()),
    home: opt(absPath()),
    comment: opt(str({ max: 200, pattern: /^[^:\n]*$/, hint: 'may not hold ":" or a newline' })),
    system: def(bool(), false),
    manage_home: def(bool(), true),
  }),
  group: obj({
    group: accountName('group'),
    ...common,
    state: def(oneOf(['present', 'absent'] as const), 'present'),
    gid: opt(int({ min: 0, max: 2 ** 31 - 2 })),
    system: def(bool(), false),
  }),
  cron: obj({
    cron: str({
      min: 1,
      max: 100,
      pattern: /^[A-Za-z0-9_-]+$/,
      hint: 'must be letters, digits, "_" or "-" (cron ignores files in /etc/cron.d with other names)',
    }),
    ...common,
    schedule: opt(cronSchedule()),
    command: opt(oneLine()),
    user: def(accountName('user'), 'root'),
    env: opt(record(oneLine(), { maxKeys: 32, key: str({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ }) })),
    state: def(oneOf(['present', 'absent'] as const), 'present'),
  }),
  repository: obj({
    repository: str({ min: 1, max: 100, pattern: /^[A-Za-z0-9_-]+$/, hint: 'must be letters, digits, "_" or "-"' }),
    ...common,
    state: def(oneOf(['present', 'absent'] as const), 'present'),
    /** apt or dnf; default: the package manager found on the host. */
    type: opt(oneOf(['apt', 'dnf'] as const)),
    url: opt(
      str({ min: 1, max: 2000, pattern: /^(https?|file):\/\/?[^\s]+$/, hint: 'must be an http(s):// or file:/ URL' }),
    ),
    suites: opt(arr(str({ min: 1, max: 100, pattern: /^[A-Za-z0-9._/-]+$/ }), { min: 1, max: 20 })),
    components: opt(arr(str({ min: 1, max: 100, pattern: /^[A-Za-z0-9._-]+$/ }), { max: 20 })),
    key: opt(str({ min: 1, max: 256 * 1024 })),
    key_source: opt(bundlePath()),
    description: opt(oneLine()),
  }),
};

export type ResourceKind = keyof typeof shapes;
export const RESOURCE_KINDS = Object.keys(shapes) as ResourceKind[];
export type Resource = { [K in ResourceKind]: { kind: K } & Infer<(typeof shapes)[K]> }[ResourceKind];
export type ResourceOf<K extends ResourceKind> = Extract<Resource, { kind: K }>;

/** Kinds with a key named like another kind: that key is then an attribute, not the kind. */
const OVERLAP: Partial<Record<ResourceKind, ResourceKind[]>> = {
  file: ['group'],
  directory: ['group'],
  user: ['group'],
  cron: ['user'],
};

export const resourceSchema: Schema<Resource> = {
  kind: 'resource',
  spec: { kind: 'custom', name: 'resource', examples: [{ file: '/etc/motd', content: 'hello\n' }] },
  parse(v, path, issues) {
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      return void issues.push({ path, message: 'expected a mapping naming one resource kind' });
    const found = RESOURCE_KINDS.filter((k) => k in v);
    // `group:` is also a file's, directory's and user's key, `user:` a cron entry's.
    const kinds = found.filter((k) => !found.some((o) => OVERLAP[o]?.includes(k)));
    if (kinds.length !== 1) {
      return void issues.push({
        path,
        message: `a resource names exactly one of ${RESOURCE_KINDS.join(', ')}${found.length ? ` (found ${found.join(', ')})` : ''}`,
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

/** "file:/etc/motd", "exec:reload-nginx": how a resource is named in results and in require/notify. */
export function resourceLabel(r: Resource): string {
  if (r.name) return `${r.kind}:${r.name}`;
  switch (r.kind) {
    case 'file':
      return `file:${r.file}`;
    case 'directory':
      return `directory:${r.directory}`;
    case 'absent':
      return `absent:${r.absent}`;
    case 'symlink':
      return `symlink:${r.symlink}`;
    case 'line':
      return `line:${r.line}`;
    case 'block':
      return `block:${r.block}`;
    case 'exec':
      return `exec:${(typeof r.exec === 'string' ? r.exec : r.exec.join(' ')).slice(0, 200)}`;
    case 'package':
      return `package:${r.package.join(',')}`;
    case 'service':
      return `service:${r.service}`;
    case 'user':
      return `user:${r.user}`;
    case 'group':
      return `group:${r.group}`;
    case 'cron':
      return `cron:${r.cron}`;
    case 'repository':
      return `repository:${r.repository}`;
  }
}
