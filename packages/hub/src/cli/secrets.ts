import type { SecretRemoved } from '@axle/shared';
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { SecretList, SecretRequest, SecretView } from '@axle/shared';
import type { ActionRunner } from './context.js';
import { fields, table, time } from './output.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** "v3: 40, v2: 2, never: 1": how many allowed hosts were last sealed which version. */
function held(s: SecretView): string {
  return Object.entries(s.versions)
    .sort((a, b) => Number(b[0]) - Number(a[0]))
    .map(([v, n]) => `${v === '0' ? 'never' : `v${v}`}: ${n}`)
    .join(', ');
}

/** `axle secrets`: values only their hosts can read (see "Secrets" in README.md). */
export function secretsCommand(run: ActionRunner): Command {
  const s = new Command('secrets').description('secrets sealed to the hosts allowed to read them (admin)');
  s.command('set')
    .description('set (or rotate) a secret; the value is read from a file and never printed')
    .argument('<name>', 'the name policies use: content: {secret: NAME} or {{ secret.NAME }}')
    .requiredOption('--from-file <file>', 'the value (up to 64 KiB; "-" reads stdin)')
    .requiredOption('--hosts <glob>', 'host name glob allowed to read it (repeat for several)', collect)
    .action(
      run(async (ctx, name: string, o: { fromFile: string; hosts: string[] }) => {
        let value: Buffer;
        try {
          value = readFileSync(o.fromFile === '-' ? 0 : o.fromFile);
        } catch (e) {
          throw new InvalidArgumentError(`cannot read --from-file ${o.fromFile}: ${(e as Error).message}`);
        }
        const r = await ctx.client.post<{ secret: SecretView }>('/secrets', {
          name,
          value: value.toString('base64'),
          hosts: o.hosts,
        } satisfies SecretRequest);
        ctx.print(
          () =>
            `${fields([
              ['name', r.secret.name],
              ['version', r.secret.version],
              ['hosts', r.secret.hosts.join(', ')],
              ['mac', r.secret.mac],
              ['allowed hosts', r.secret.targets],
            ])}hosts get it at their next run; see who has it with: axle secrets list\n`,
          r,
        );
      }),
    );
  s.command('list')
    .description('secrets, their versions and globs, and which hosts hold which version (never a value)')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<SecretList>('/secrets');
        ctx.print(() => {
          if (r.secrets.length === 0)
            return 'no secrets; set one with: axle secrets set NAME --from-file F --hosts GLOB\n';
          const rows = table(
            ['NAME', 'VERSION', 'HOSTS', 'MAC', 'SET', 'HELD'],
            r.secrets.map((x) => [x.name, x.version, x.hosts.join(','), x.mac, time(x.setAt), held(x)]),
          );
          const lag = r.secrets
            .filter((x) => x.lagging.length > 0)
            .map((x) => `${x.name}: not yet on v${x.version}: ${x.lagging.join(', ')}\n`)
            .join('');
          return rows + lag;
        }, r);
      }),
    );
  s.command('rm')
    .description('remove a secret; hosts that use it fail those resources from their next run')
    .argument('<name>', 'secret name')
    .action(
      run(async (ctx, name: string) => {
        const r = await ctx.client.delete<SecretRemoved>(`/secrets/${encodeURIComponent(name)}`);
        ctx.print(() => `removed ${r.removed}\n`, r);
      }),
    );
  return s;
}
