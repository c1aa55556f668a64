import { isAbsolute, normalize } from 'node:path';
import { custom, str } from './schema.js';

/**
 * The value checks resource kinds share: paths on the host and in the bundle, modes, account
 * names, commands, patterns, single lines, cron schedules and file contents. Each throws a
 * message saying what it expected, and returns the value normalized.
 */

export const absPath = () =>
  custom('path', (v) => {
    if (typeof v !== 'string' || !isAbsolute(v)) throw new Error(`expected an absolute path, got ${JSON.stringify(v)}`);
    if (v.length > 4096 || v.includes('\0')) throw new Error('is not a usable path');
    return normalize(v);
  });

/** A path inside the config bundle (files/motd, templates/nginx.conf.liquid). */
export const bundlePath = () =>
  custom('bundle path', (v) => {
    if (typeof v !== 'string' || v === '' || isAbsolute(v) || v.includes('\0'))
      throw new Error('expected a path relative to the config bundle, e.g. files/motd');
    const n = normalize(v);
    if (n === '..' || n.startsWith('../')) throw new Error('must stay inside the config bundle (no "..")');
    return n;
  });

/** File modes as "0644" (octal text); a bare YAML number like 644 is read as the same octal digits. */
export const fileMode = () =>
  custom('mode', (v) => {
    const t = typeof v === 'number' && Number.isInteger(v) ? String(v) : v;
    if (typeof t !== 'string' || !/^0?[0-7]{3,4}$/.test(t))
      throw new Error(`expected an octal mode such as "0644", got ${JSON.stringify(v)}`);
    return parseInt(t, 8);
  });

const ACCOUNT = /^[a-z_][a-z0-9_.-]{0,31}\$?$/;
export const accountName = (what: string) =>
  str({
    min: 1,
    max: 32,
    pattern: ACCOUNT,
    hint: `must be a ${what} name (lower case letters, digits, "_", "-", ".")`,
  });

export const principal = () =>
  custom('principal', (v) => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
    if (typeof v === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?$/.test(v)) return v;
    throw new Error(`expected a user/group name or numeric id, got ${JSON.stringify(v)}`);
  });

/** A command: an argv list (no shell), or one string that needs `shell: true`. */
export const command = () =>
  custom('command', (v): string[] | string => {
    if (typeof v === 'string' && v.trim() !== '') return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number'))
      return v.map(String);
    throw new Error('expected a command as a list of arguments, e.g. [/usr/bin/touch, /tmp/x]');
  });

export const regex = () =>
  custom('regex', (v) => {
    if (typeof v !== 'string' || v === '' || v.length > 1000) throw new Error('expected a regular expression');
    try {
      new RegExp(v);
    } catch (e) {
      throw new Error(`is not a valid regular expression: ${(e as Error).message}`);
    }
    return v;
  });

/** One line of text: no newline, since each resource writes exactly one line. */
export const oneLine = () => str({ max: 4096, pattern: /^[^\n\r]*$/, hint: 'must be a single line (no newline)' });

const CRON_FIELD = /^(\*|\d+|[A-Za-z]{3})([-/,](\d+|[A-Za-z]{3}|\*))*$/;

export const cronSchedule = () =>
  custom('schedule', (v) => {
    if (typeof v !== 'string') throw new Error('expected a cron schedule such as "*/15 * * * *" or "@daily"');
    const t = v.trim();
    if (/^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(t)) return t;
    const f = t.split(/\s+/);
    if (f.length !== 5 || !f.every((x) => CRON_FIELD.test(x)))
      throw new Error(
        `expected five cron fields (minute hour day-of-month month day-of-week) or @daily/@hourly..., got ${JSON.stringify(v)}`,
      );
    return f.join(' ');
  });

/** A file's content: text, or `{ secret: NAME }` for a secret's value fetched at run time. */
export const fileContent = () =>
  custom(
    'content',
    (v): string | { secret: string } => {
      if (typeof v === 'string') {
        if (v.length > 4 * 1024 * 1024) throw new Error('must be at most 4 MiB; use source: for larger files');
        return v;
      }
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        const keys = Object.keys(v);
        const name = (v as { secret?: unknown }).secret;
        if (keys.length === 1 && typeof name === 'string' && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name))
          return { secret: name };
      }
      throw new Error('expected text, or { secret: NAME } naming a secret set on the hub');
    },
    ['hello\n', { secret: 'db_password' }],
  );
