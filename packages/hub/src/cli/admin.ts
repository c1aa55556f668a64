import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { Ctx } from './context.js';
import { EXIT } from './errors.js';
import { intArg } from './envoys.js';
import { cell, fields, table, time } from './output.js';

type Run = <A extends unknown[]>(fn: (ctx: Ctx, ...a: A) => Promise<void>) => (...a: unknown[]) => Promise<void>;

interface BundleMeta {
  version: number;
  hash: string;
  files: string[];
  publishedAt: number;
  by: string;
  source: string;
  from?: number;
  bytes: number;
}
interface PublishResult {
  version: number;
  unchanged: boolean;
  bundle: BundleMeta;
  spokes: Record<string, string>;
}

function published(ctx: Ctx, r: PublishResult, verb: string): void {
  ctx.print(() => {
    const head = r.unchanged
      ? `unchanged: the content is already version ${r.version}; re-offered it to the spokes\n`
      : `${verb} version ${r.version} (${r.bundle.files.length} files, ${(r.bundle.bytes / 1024).toFixed(1)} KiB, hash ${r.bundle.hash.slice(0, 16)})\n`;
    return (
      head +
      table(
        ['SPOKE', 'PUSH'],
        Object.entries(r.spokes).map(([id, o]) => [id, o]),
      )
    );
  }, r);
  const missing = Object.entries(r.spokes).filter(([, o]) => o !== 'ok');
  for (const [id, o] of missing)
    ctx.warn(
      `spoke ${id} did not take version ${r.version} (${o}); it catches up by itself once the hub reaches it. Check it with: axle spanner spoke ${id}`,
    );
  if (missing.length > 0) ctx.exitCode = EXIT.FAILED;
}

export function configCommand(run: Run): Command {
  const c = new Command('config').description('publish config bundles to every spoke, list and roll back versions');
  c.command('publish')
    .description("validate, bundle, sign and push the hub's config_dir (or --dir) to every spoke")
    .option('--dir <dir>', 'config directory on the hub host (default: config_dir from the hub config)')
    .action(
      run(async (ctx, o: { dir?: string }) => {
        published(
          ctx,
          await ctx.client.post<PublishResult>('/config/publish', o.dir ? { dir: resolve(o.dir) } : {}),
          'published',
        );
      }),
    );
  c.command('versions')
    .description("kept config versions and each spoke's version")
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<{
          current: number;
          versions: BundleMeta[];
          spokes: Record<string, { version: number | null; lag: number | null }>;
        }>('/config/versions');
        ctx.print(() => {
          const v = [...r.versions].sort((a, b) => b.version - a.version);
          let s =
            v.length === 0
              ? 'nothing published yet; run: axle config publish\n'
              : table(
                  ['VERSION', 'CURRENT', 'PUBLISHED', 'BY', 'SOURCE', 'FILES', 'BYTES', 'HASH'],
                  v.map((b) => [
                    b.version,
                    b.version === r.current ? '*' : '',
                    time(b.publishedAt),
                    b.by,
                    b.source === 'rollback' && b.from !== undefined ? `rollback of ${b.from}` : b.source,
                    b.files.length,
                    b.bytes,
                    b.hash.slice(0, 16),
                  ]),
                );
          const sp = Object.entries(r.spokes ?? {});
          if (sp.length > 0)
            s += `\n${table(
              ['SPOKE', 'VERSION', 'LAG'],
              sp.map(([id, x]) => [id, x.version ?? 'unknown', x.lag ?? '-']),
            )}`;
          return s;
        }, r);
      }),
    );
  c.command('rollback')
    .description('publish the content of an old VERSION as a new version')
    .argument('<version>', 'version to roll back to', intArg(1, Number.MAX_SAFE_INTEGER))
    .action(
      run(async (ctx, version: number) => {
        published(
          ctx,
          await ctx.client.post<PublishResult>('/config/rollback', { version }),
          `rolled back to the content of ${version} as`,
        );
      }),
    );
  return c;
}

interface JoinToken {
  id: string;
  state: string;
  pattern?: string;
  spokes?: string[];
  note?: string;
  uses: number;
  maxUses?: number;
  expiresAt?: number;
  createdAt: number;
  createdBy?: string;
}
interface ApiToken {
  id: string;
  role: string;
  name: string;
  createdAt: number;
  revokedAt?: number;
}

export function tokensCommand(run: Run): Command {
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
            const r = await ctx.client.post<{ token: ApiToken; secret: string }>('/api-tokens', {
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
          const r = await ctx.client.post<{ token: JoinToken; secret: string; install?: InstallCommand }>('/tokens', {
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
          const r = await ctx.client.get<{ tokens: ApiToken[] }>('/api-tokens');
          return ctx.print(
            () =>
              table(
                ['ID', 'NAME', 'ROLE', 'CREATED', 'STATE'],
                r.tokens.map((x) => [x.id, x.name, x.role, time(x.createdAt), x.revokedAt ? 'revoked' : 'active']),
              ),
            r,
          );
        }
        const r = await ctx.client.get<{ tokens: JoinToken[] }>('/tokens');
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
        const r = await ctx.client.delete<{ token: { id: string } }>(
          `/${o.api ? 'api-tokens' : 'tokens'}/${encodeURIComponent(id)}`,
        );
        ctx.print(() => `revoked ${r.token.id}\n`, r);
      }),
    );
  return t;
}

interface Pending {
  hostname: string;
  requestedAt: number;
  spokeId?: string;
  fingerprint?: string;
  token?: string;
}

export function enrollmentsCommand(run: Run): Command {
  const e = new Command('enrollments').description('enrollments waiting for approval (enrollment.approval: manual)');
  e.command('pending')
    .description('list waiting enrollments')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<{ pending: Pending[] }>('/enrollments/pending');
        ctx.print(
          () =>
            r.pending.length === 0
              ? 'no enrollments are waiting\n'
              : table(
                  ['HOST', 'REQUESTED', 'KEY', 'DETAILS'],
                  r.pending.map((p) => {
                    const { hostname, requestedAt, fingerprint, ...rest } = p as Pending & Record<string, unknown>;
                    return [
                      hostname,
                      time(requestedAt),
                      fingerprint,
                      Object.entries(rest)
                        .filter(([k]) => k !== 'pubkey')
                        .map(([k, v]) => `${k}=${cell(v)}`)
                        .join(' '),
                    ];
                  }),
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
        const r = await ctx.client.post<{ envoy: { hostname: string; spokeId: string; epoch: number } }>(
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
        const r = await ctx.client.post<{ rejected: string }>(`/enrollments/${encodeURIComponent(host)}/reject`);
        ctx.print(() => `rejected ${r.rejected}\n`, r);
      }),
    );
  return e;
}

interface HubEvent {
  seq: number;
  type: string;
  at: number;
  data: Record<string, unknown>;
}

export function eventsCommand(run: Run): Command {
  return new Command('events')
    .description('the hub event log (spoke up/down, drains, enrollments, config, tokens)')
    .option('--after <seq>', 'only events after this sequence number', intArg(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--limit <n>', 'events to show', intArg(1, 1000), 100)
    .option('--type <types>', 'only these types (comma-separated), e.g. spoke.down,spoke.up')
    .action(
      run(async (ctx, o: { after: number; limit: number; type?: string }) => {
        const r = await ctx.client.get<{ events: HubEvent[]; next: number | null }>('/events', {
          after: o.after,
          limit: o.limit,
          type: o.type,
        });
        ctx.print(() => {
          let s =
            r.events.length === 0
              ? 'no events\n'
              : table(
                  ['SEQ', 'TIME', 'TYPE', 'DETAILS'],
                  r.events.map((e) => [
                    e.seq,
                    time(e.at),
                    e.type,
                    Object.entries(e.data ?? {})
                      .map(([k, v]) => `${k}=${cell(v)}`)
                      .join(' '),
                  ]),
                );
          if (r.events.length === o.limit && r.next !== null) s += `more: axle events --after ${r.next}\n`;
          return s;
        }, r);
      }),
    );
}

export function hubCommand(run: Run): Command {
  const h = new Command('hub').description('this hub: role, term, replication; promote a standby');
  h.command('status')
    .description('hub id, role, term, log position, spokes by state')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<Record<string, unknown>>('/hub');
        // Replication status where the hub has peers; a hub without replication answers 404 and that is fine.
        const repl =
          r.replication === undefined
            ? await ctx.client.get<Record<string, unknown>>('/hub/replication').catch(() => undefined)
            : undefined;
        const all = repl ? { ...r, replication: repl } : r;
        ctx.print(
          () =>
            fields(
              Object.entries(all).map(([k, v]) => [
                k,
                k === 'tls' ? tlsText(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : (v as string),
              ]),
            ),
          all,
        );
      }),
    );
  h.command('promote')
    .description('make this (standby) hub the primary: raises the term so spokes and envoys obey only it')
    .option('--yes', 'do it without asking (required when not on a terminal)')
    .action(
      run(async (ctx, o: { yes?: boolean }) => {
        if (!o.yes)
          throw new InvalidArgumentError('promotion raises the term and fences the old primary; add --yes to confirm');
        const r = await ctx.client.post<Record<string, unknown>>('/hub/promote', {}, { redirect: false });
        ctx.print(
          () =>
            `promoted ${ctx.client.base}\n${fields(Object.entries(r).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : (v as string)]))}`,
          r,
        );
      }),
    );
  return h;
}

interface InstallCommand {
  command: string;
  caPin?: string;
  warning?: string;
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

const RENEW_WITHIN_S = 30 * 24 * 3600;

/** The hub's TLS certificate in one line, with a warning inside 30 days of its expiry (or the CA's). */
export function tlsText(v: unknown): string {
  const t = v as {
    insecure?: boolean;
    notAfter?: string;
    expiresInSeconds?: number;
    caPin?: string;
    caNotAfter?: string;
  };
  if (t?.insecure) return 'off (insecure_transport: everything crosses the network in clear)';
  const days = Math.floor((t.expiresInSeconds ?? 0) / 86400);
  const caLeft = t.caNotAfter ? (Date.parse(t.caNotAfter) - Date.now()) / 1000 : Number.POSITIVE_INFINITY;
  const warn =
    (t.expiresInSeconds ?? 0) < RENEW_WITHIN_S
      ? ' EXPIRES SOON: axle-hub ca issue, then SIGHUP'
      : caLeft < RENEW_WITHIN_S
        ? ` THE CA EXPIRES ${t.caNotAfter}`
        : '';
  return `certificate valid until ${t.notAfter} (${days} days), CA ${t.caPin}${warn}`;
}
