import { isAbsolute, normalize } from 'node:path';
import { type ConfigFileError, parseConfigText, readConfigFolder } from './config.js';
import { targetMismatch } from './policy-target.js';
import { arr, custom, duration, obj, opt, record, str, type Infer, type Json } from './schema.js';

/**
 * Tasks live in the applied config bundle as `<config_dir>/tasks/*.yaml` (and .yml). A job
 * can run a task only by name, and an envoy runs only tasks of its own applied bundle, so
 * nobody holding an API token can make envoys run anything the bundle's authors did not write:
 *
 *   name: restart-web        # defaults to the file name; [A-Za-z0-9_.-]
 *   description: Restart the web service
 *   command: [/bin/systemctl, restart, nginx]   # argv, never a shell
 *   timeout: 2m              # killed after this (a job's own timeout can only shorten it)
 *   allow:                   # which envoys may run it (all given conditions must hold)
 *     hostnames: ["web*.dc1.*"]
 *     traits: { os_id: debian }
 *   env: { LANG: C }
 *   cwd: /tmp
 */

export const TASK_NAME = /^[A-Za-z0-9_.-]{1,100}$/;

const absPath = () =>
  custom('path', (v) => {
    if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0') || v.length > 4096)
      throw new Error(`expected an absolute path, got ${JSON.stringify(v)}`);
    return normalize(v);
  });

const argv = () =>
  custom('command', (v): string[] => {
    if (
      Array.isArray(v) &&
      v.length > 0 &&
      v.length <= 1000 &&
      v.every((x) => typeof x === 'string' || typeof x === 'number')
    ) {
      const out = v.map(String);
      if (out.some((a) => a.includes('\0') || a.length > 65536))
        throw new Error('arguments may not hold NUL bytes or exceed 64 KiB');
      if (!isAbsolute(out[0] as string))
        throw new Error(`the program must be an absolute path (no PATH lookup), got ${JSON.stringify(out[0])}`);
      return out;
    }
    throw new Error('expected the command as a list of arguments, e.g. [/bin/systemctl, restart, nginx]');
  });

const scalar = () =>
  custom('scalar', (v) => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    throw new Error('expected a string, number or boolean');
  });

export const taskSchema = obj({
  name: opt(
    str({ min: 1, max: 100, pattern: TASK_NAME, hint: 'must be a task name (letters, digits, ".", "-", "_")' }),
  ),
  description: opt(str({ max: 2000 })),
  command: argv(),
  timeout: duration({ min: 10, max: 24 * 3_600_000 }),
  allow: opt(
    obj({
      hostnames: opt(arr(str({ min: 1, max: 253 }), { max: 1000 })),
      traits: opt(record(scalar(), { maxKeys: 64 })),
    }),
  ),
  env: opt(record(str({ max: 4096 }), { maxKeys: 64 })),
  cwd: opt(absPath()),
});
export type Task = Infer<typeof taskSchema> & { name: string; file: string };

export interface LoadedTasks {
  tasks: Task[];
  /** One line per bad file: "file:line: key: reason". */
  errors: ConfigFileError[];
}

/** Reads every task file of a bundle. A bad file or a duplicate name is reported, never thrown. */
export function loadTasks(configDir: string): LoadedTasks {
  const tasks: Task[] = [];
  const seen = new Map<string, string>();
  const errors = readConfigFolder(configDir, 'tasks', (file, text, fileName) => {
    const t = parseConfigText(text, file, taskSchema);
    const name = t.name ?? fileName;
    if (!TASK_NAME.test(name))
      throw new Error(
        `${file}: name: the file name gives the task name "${name}", which is not a usable name; set name:`,
      );
    const dup = seen.get(name);
    if (dup) throw new Error(`${file}: name: task "${name}" is already defined in ${dup}`);
    seen.set(name, file);
    tasks.push({ ...t, name, file });
  });
  return { tasks, errors };
}

/** Whether this host may run the task: every given hostname glob / trait condition holds. */
export function taskAllowed(t: Task, hostname: string, traits: Record<string, Json>): boolean {
  // Same matching as a policy's hosts: and when: (trait equality, dotted paths).
  return targetMismatch({ hosts: t.allow?.hostnames, when: t.allow?.traits }, hostname, traits) === undefined;
}
