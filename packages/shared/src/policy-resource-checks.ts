import type { Resource } from './policy-resources.js';
import type { Issue } from './schema.js';

/**
 * The rules a resource must keep beyond its kind's schema: keys that exclude or need each
 * other (one of content/source/template, a version pin on one package), and the few values
 * refused outright (removing /).
 */
export function crossCheck(r: Resource, path: string, issues: Issue[]): void {
  const problem = (key: string, message: string) => issues.push({ path: key ? `${path}.${key}` : path, message });
  switch (r.kind) {
    case 'file': {
      const given = (['content', 'source', 'template'] as const).filter((k) => r[k] !== undefined);
      if (given.length > 1)
        problem(given[1] as string, `give one of content, source or template, not ${given.join(' and ')}`);
      break;
    }
    case 'exec':
      if (!r.shell)
        for (const key of ['exec', 'unless', 'onlyif'] as const)
          if (typeof r[key] === 'string')
            problem(
              key,
              'a command written as one string runs through a shell: set `shell: true`, or write it as a list of arguments',
            );
      break;
    case 'service':
      if (r.state === undefined && r.enabled === undefined)
        problem('', 'a service resource needs `state` (running/stopped) and/or `enabled`');
      break;
    case 'absent':
      if (r.absent === '/') problem('absent', 'refusing to remove /');
      break;
    case 'package':
      if (r.version !== undefined && (r.package.length !== 1 || r.state !== 'installed'))
        problem('version', 'a version pin needs exactly one package and state installed');
      break;
    case 'cron':
      if (r.state === 'present' && (r.schedule === undefined || r.command === undefined))
        problem('', 'a cron entry needs `schedule` and `command` (or `state: absent`)');
      break;
    case 'repository':
      if (r.state === 'present') {
        if (r.url === undefined) problem('', 'a repository needs `url` (or `state: absent`)');
        if (r.key !== undefined && r.key_source !== undefined)
          problem('key_source', 'give key or key_source, not both');
        if (r.key === undefined && r.key_source === undefined)
          problem(
            '',
            'a repository needs its signing key: `key` (ASCII-armored) or `key_source` (a file in the bundle)',
          );
        if (r.type !== 'dnf' && r.suites === undefined)
          problem('suites', 'an apt repository needs `suites` (e.g. [bookworm], or ["./"] for a flat repository)');
      }
      break;
    case 'user':
      if (r.append && r.groups === undefined) problem('append', '`append` only makes sense with `groups`');
      break;
    default:
      break;
  }
}
