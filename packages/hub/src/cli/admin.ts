/**
 * `axle config` (publish, list and roll back config bundles), `axle events` (the hub event
 * log) and `axle hub` (role, replication, promotion).
 */
import type { Promoted } from '@axle/shared';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { ConfigVersions, EventPage, HubInfo, PublishRequest, PublishResultView, TlsSummary } from '@axle/shared';
import type { ActionRunner, Ctx } from './context.js';
import { EXIT, usage } from './errors.js';
import { intArg } from './envoys.js';
import { cell, fields, table, time } from './output.js';
import { publishRollout, rolloutCommand, withRolloutOptions, type RolloutOpts } from './rollouts.js';

function published(ctx: Ctx, r: PublishResultView, verb: string): void {
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

export function configCommand(run: ActionRunner): Command {
  const c = new Command('config').description(
    'publish config bundles to every spoke (at once, or as a rollout in waves), list and roll back versions',
  );
  withRolloutOptions(
    c
      .command('publish')
      .description(
        "validate, bundle, sign and push the hub's config_dir (or --dir) to every spoke; with --rollout, stage it and move hosts onto it in waves",
      )
      .option('--dir <dir>', 'config directory on the hub host (default: config_dir from the hub config)'),
  ).action(
    run(async (ctx, o: RolloutOpts & { dir?: string }) => {
      const { dir: _d, ...rest } = o;
      if (!o.rollout && Object.keys(rest).length > 0)
        throw usage(`--${Object.keys(rest)[0]!.replace(/[A-Z]/g, (x) => `-${x.toLowerCase()}`)} needs --rollout`);
      if (o.rollout) return publishRollout(ctx, o);
      published(
        ctx,
        await ctx.client.post<PublishResultView>('/config/publish', {
          ...(o.dir ? { dir: resolve(o.dir) } : {}),
        } satisfies PublishRequest),
        'published',
      );
    }),
  );
  c.command('versions')
    .description("kept config versions and each spoke's version")
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<ConfigVersions>('/config/versions');
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
          await ctx.client.post<PublishResultView>('/config/rollback', { version }),
          `rolled back to the content of ${version} as`,
        );
      }),
    );
  c.addCommand(rolloutCommand(run));
  return c;
}

export function eventsCommand(run: ActionRunner): Command {
  return new Command('events')
    .description('the hub event log (spoke up/down, drains, enrollments, config, tokens)')
    .option('--after <seq>', 'only events after this sequence number', intArg(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--limit <n>', 'events to show', intArg(1, 1000), 100)
    .option('--type <types>', 'only these types (comma-separated), e.g. spoke.down,spoke.up')
    .action(
      run(async (ctx, o: { after: number; limit: number; type?: string }) => {
        const r = await ctx.client.get<EventPage>('/events', {
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

export function hubCommand(run: ActionRunner): Command {
  const h = new Command('hub').description('this hub: role, term, replication; promote a standby');
  h.command('status')
    .description('hub id, role, term, log position, spokes by state')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<HubInfo>('/hub');
        ctx.print(
          () =>
            fields(
              Object.entries(r).map(([k, v]: [string, unknown]) => [
                k,
                k === 'tls'
                  ? tlsText(r.tls)
                  : typeof v === 'object' && v !== null
                    ? JSON.stringify(v)
                    : (v as string | number),
              ]),
            ),
          r,
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
        const r = await ctx.client.post<Promoted>('/hub/promote', {}, { redirect: false });
        ctx.print(
          () =>
            `promoted ${ctx.client.base}\n${fields([
              ['role', r.role],
              ['term', r.term],
              ['replication', JSON.stringify(r.replication)],
            ])}`,
          r,
        );
      }),
    );
  return h;
}

const RENEW_WITHIN_S = 30 * 24 * 3600;

/** The hub's TLS certificate in one line, with a warning inside 30 days of its expiry (or the CA's). */
export function tlsText(t: TlsSummary): string {
  if ('insecure' in t) return 'off (insecure_transport: everything crosses the network in clear)';
  const days = Math.floor(t.expiresInSeconds / 86400);
  const caLeft = t.caNotAfter ? (Date.parse(t.caNotAfter) - Date.now()) / 1000 : Number.POSITIVE_INFINITY;
  const warn =
    t.expiresInSeconds < RENEW_WITHIN_S
      ? ' EXPIRES SOON: axle-hub ca issue, then SIGHUP'
      : caLeft < RENEW_WITHIN_S
        ? ` THE CA EXPIRES ${t.caNotAfter}`
        : '';
  return `certificate valid until ${t.notAfter} (${days} days), CA ${t.caPin}${warn}`;
}
