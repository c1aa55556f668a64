/**
 * `axle tokens` and `axle enrollments`: who may enroll and use the API (join and API
 * tokens), and enrollments waiting for approval.
 */
import type { EnrollmentRejected } from '@axle/shared';
import { Command, InvalidArgumentError } from 'commander';
import type { ActionRunner } from './context.js';
import { intArg } from './envoys.js';
import { cell, fields, table, time } from './output.js';
import {
  fingerprint,
  fromBase64,
  type ApiTokenCreated,
  type ApiTokenView,
  type DirectoryEntryView,
  type InstallCommand,
  type JoinTokenCreated,
  type JoinTokenView,
  type PendingEnrollments,
} from '@axle/shared';

export function tokensCommand(run: ActionRunner): Command {
  const t = new Command('tokens').description(
    'join tokens for enrolling envoys (--api: API tokens for the CLI and web UI)',
  );
  t.command('create')
    .description('make a token; its secret is printed once')
    .option('--api', 'an API token instead of a join token')
    .option('--role <role>', 'API token role: admin or viewer', 'viewer')
    .option('--name <name>', 'API token name')
    .option('--ttl <duration>', 'join token lifetime, e.g. 24h')
    .option('--max-uses <n>', 'join token uses', intArg(1, 1_000_000))
    .option('--pattern <glob>', 'only host names matching this glob may enroll with it')
    .option(
      '--spoke <id>',
      'only into this spoke (repeat for several): an enrollment routed elsewhere is refused',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--note <text>', 'a note for the token list')
    .action(
      run(
        async (
          ctx,
          o: {
            api?: boolean;
            role: string;
            name?: string;
            ttl?: string;
            maxUses?: number;
            pattern?: string;
            spoke?: string[];
            note?: string;
          },
        ) => {
          if (o.api) {
            if (o.role !== 'admin' && o.role !== 'viewer')
              throw new InvalidArgumentError('--role must be admin or viewer');
            if (!o.name) throw new InvalidArgumentError('--name is required with --api');
            const r = await ctx.client.post<ApiTokenCreated>('/api-tokens', {
              role: o.role,
              name: o.name,
            });
            return ctx.print(
              () =>
                `${fields([
                  ['id', r.token.id],
                  ['name', r.token.name],
                  ['role', r.token.role],
                ])}secret: ${r.secret}\n(shown only now; use it with --token or AXLE_TOKEN)\n`,
              r,
            );
          }
          const r = await ctx.client.post<JoinTokenCreated>('/tokens', {
            ...(o.ttl ? { ttl: o.ttl } : {}),
            ...(o.maxUses ? { max_uses: o.maxUses } : {}),
            ...(o.pattern ? { pattern: o.pattern } : {}),
            ...(o.spoke?.length ? { spokes: o.spoke } : {}),
            ...(o.note ? { note: o.note } : {}),
          });
          ctx.print(
            () =>
              `${fields([
                ['id', r.token.id],
                ['pattern', r.token.pattern],
                ['spokes', r.token.spokes?.join(', ')],
                ['max uses', r.token.maxUses],
                ['expires', time(r.token.expiresAt)],
              ])}secret: ${r.secret}\n(shown only now; give it to the envoy bootstrap)\n${installText(r.install)}`,
            r,
          );
        },
      ),
    );
  t.command('list')
    .description('tokens and their state (never their secrets)')
    .option('--api', 'API tokens instead of join tokens')
    .action(
      run(async (ctx, o: { api?: boolean }) => {
        if (o.api) {
          const r = await ctx.client.get<{ tokens: ApiTokenView[] }>('/api-tokens');
          return ctx.print(
            () =>
              table(
                ['ID', 'NAME', 'ROLE', 'CREATED', 'STATE'],
                r.tokens.map((x) => [x.id, x.name, x.role, time(x.createdAt), x.revokedAt ? 'revoked' : 'active']),
              ),
            r,
          );
        }
        const r = await ctx.client.get<{ tokens: JoinTokenView[] }>('/tokens');
        ctx.print(
          () =>
            r.tokens.length === 0
              ? 'no join tokens; make one with: axle tokens create\n'
              : table(
                  ['ID', 'STATE', 'PATTERN', 'SPOKES', 'USES', 'EXPIRES', 'NOTE'],
                  r.tokens.map((x) => [
                    x.id,
                    x.state,
                    x.pattern,
                    x.spokes?.join(','),
                    `${x.uses}${x.maxUses ? `/${x.maxUses}` : ''}`,
                    time(x.expiresAt),
                    x.note,
                  ]),
                ),
          r,
        );
      }),
    );
  t.command('revoke')
    .description('revoke a token by id')
    .argument('<id>', 'token id (from tokens list)')
    .option('--api', 'an API token instead of a join token')
    .action(
      run(async (ctx, id: string, o: { api?: boolean }) => {
        const r = await ctx.client.delete<{ token: JoinTokenView | ApiTokenView }>(
          `/${o.api ? 'api-tokens' : 'tokens'}/${encodeURIComponent(id)}`,
        );
        ctx.print(() => `revoked ${r.token.id}\n`, r);
      }),
    );
  return t;
}

export function enrollmentsCommand(run: ActionRunner): Command {
  const e = new Command('enrollments').description('enrollments waiting for approval (enrollment.approval: manual)');
  e.command('pending')
    .description('list waiting enrollments')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<PendingEnrollments>('/enrollments/pending');
        ctx.print(
          () =>
            r.pending.length === 0
              ? 'no enrollments are waiting\n'
              : table(
                  ['HOST', 'REQUESTED', 'KEY', 'DETAILS'],
                  r.pending.map((p) => [
                    p.hostname,
                    time(p.requestedAt),
                    keyOf(p.pubkey),
                    `tokenId=${cell(p.tokenId)} source=${cell(p.source)}`,
                  ]),
                ),
          r,
        );
      }),
    );
  e.command('approve')
    .description('route, adopt and record a waiting enrollment')
    .argument('<host>', 'host name')
    .action(
      run(async (ctx, host: string) => {
        const r = await ctx.client.post<{ envoy: DirectoryEntryView }>(
          `/enrollments/${encodeURIComponent(host)}/approve`,
        );
        ctx.print(
          () => `approved ${r.envoy.hostname}: assigned to spoke ${r.envoy.spokeId} (epoch ${r.envoy.epoch})\n`,
          r,
        );
      }),
    );
  e.command('reject')
    .description('drop a waiting enrollment')
    .argument('<host>', 'host name')
    .action(
      run(async (ctx, host: string) => {
        const r = await ctx.client.post<EnrollmentRejected>(`/enrollments/${encodeURIComponent(host)}/reject`);
        ctx.print(() => `rejected ${r.rejected}\n`, r);
      }),
    );
  return e;
}

/** The key an enrollment asks for, as the envoy prints it; a key that does not decode is shown as it came. */
function keyOf(pubkey: string): string {
  try {
    return fingerprint(fromBase64(pubkey));
  } catch {
    return pubkey.slice(0, 16);
  }
}

/** The install command as an operator copies it: alone on its line, after a blank one. */
function installText(i: InstallCommand | undefined): string {
  if (!i) return '';
  const pin = i.caPin
    ? `(pins this hub's TLS key and the fleet CA ${i.caPin}: a host that reaches anything else installs nothing)\n`
    : '';
  const warn = i.warning ? `warning: ${i.warning}\n` : '';
  return `\ninstall an envoy on a host (as root):\n\n  ${i.command}\n\n${pin}${warn}`;
}
