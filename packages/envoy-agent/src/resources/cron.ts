import type { ResourceOf } from '../policy.js';
import type { Outcome, ResourceContext } from './context.js';
import { applyAbsent, syncFile } from './files.js';

/** Where cron (Debian's cron, cronie, systemd-cron) reads system crontab fragments. */
export const CRON_DIR = '/etc/cron.d';

/** The whole /etc/cron.d file for one entry: a header, its environment, one schedule line. */
export function cronFile(r: ResourceOf<'cron'>): string {
  const env = Object.entries(r.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return [
    `# Managed by Axle (cron:${r.cron}); local changes are overwritten`,
    ...env,
    `${r.schedule} ${r.user} ${r.command}`,
    '',
  ].join('\n');
}

/**
 * One file per entry, /etc/cron.d/NAME, owned by root and mode 0644 (cron ignores files that
 * are group- or world-writable). cron picks changes up by itself; nothing is reloaded.
 */
export async function applyCron(r: ResourceOf<'cron'>, ctx: ResourceContext): Promise<Outcome> {
  const path = `${CRON_DIR}/${r.cron}`;
  if (r.state === 'absent') return applyAbsent({ kind: 'absent', absent: path, recursive: false }, ctx);
  return syncFile(path, Buffer.from(cronFile(r)), { mode: 0o644, uid: 0, gid: 0, sensitive: false }, ctx);
}
