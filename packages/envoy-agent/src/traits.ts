import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readdir, readFile, stat } from 'node:fs/promises';
import { arch, cpus, networkInterfaces, release, totalmem, uptime } from 'node:os';
import { join } from 'node:path';
import { errorText, json, parseConfigText, record, type Json, type Logger } from '@axle/shared';
import { runCommand, type CommandRunner } from './command.js';
import { AGENT_VERSION } from './version.js';

export type Traits = Record<string, Json>;

export interface TraitOptions {
  hostname: string;
  traitsDir?: string;
  timeoutMs: number;
  runner?: CommandRunner;
  log?: Logger;
  osReleaseFile?: string;
}

/** Traits that change on their own every check-in; they do not count as "the traits changed". */
const VOLATILE = new Set(['uptime_s']);
const customSchema = record(json({ maxDepth: 5 }), { maxKeys: 200 });

/**
 * Facts about this host. Built-in names are flat (`os_id`, `memory_bytes`) so spokes and job
 * targets can match them by equality. Custom traits come from `<traits_dir>/*.yaml|*.json`
 * (mappings) and from executables there that print a JSON object; they cannot replace a
 * built-in trait. Problems with custom traits are listed in `trait_errors`, never fatal.
 */
export async function collectTraits(o: TraitOptions): Promise<Traits> {
  const t: Traits = {
    hostname: o.hostname,
    fqdn: await fqdn(o.hostname),
    ...(await osRelease(o.osReleaseFile ?? '/etc/os-release')),
    kernel: release(),
    arch: arch(),
    cpus: cpus().length,
    memory_bytes: totalmem(),
    uptime_s: Math.round(uptime()),
    ips: ips(),
    agent_version: AGENT_VERSION,
  };
  if (o.traitsDir) {
    const { traits, errors } = await customTraits(o.traitsDir, o.timeoutMs, o.runner ?? runCommand);
    for (const [k, v] of Object.entries(traits)) {
      if (k in t) errors.push(`${k}: a custom trait cannot replace the built-in one`);
      else t[k] = v;
    }
    if (errors.length > 0) {
      t.trait_errors = errors.slice(0, 50);
      o.log?.warn({ errors }, 'some custom traits could not be read');
    }
  }
  return t;
}

/** A digest of the traits that matter for "changed since last sent". */
export function traitsDigest(t: Traits): string {
  const stable = Object.keys(t)
    .filter((k) => !VOLATILE.has(k))
    .sort()
    .map((k) => [k, t[k]]);
  return createHash('sha256').update(JSON.stringify(stable)).digest('hex');
}

async function fqdn(host: string): Promise<string> {
  if (host.includes('.')) return host;
  try {
    const r = await Promise.race([
      lookup(host, { hints: 0 }).then(() => host),
      new Promise<string>((res) => setTimeout(() => res(host), 500).unref()),
    ]);
    return r;
  } catch {
    return host;
  }
}

async function osRelease(file: string): Promise<Traits> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return { os_id: 'unknown' };
  }
  const kv: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) kv[m[1] as string] = (m[2] as string).replace(/^(["'])(.*)\1$/, '$2').replace(/\\(.)/g, '$1');
  }
  const out: Traits = { os_id: kv.ID ?? 'unknown' };
  if (kv.NAME) out.os_name = kv.NAME;
  if (kv.VERSION_ID) out.os_version = kv.VERSION_ID;
  if (kv.PRETTY_NAME) out.os_pretty = kv.PRETTY_NAME;
  if (kv.ID_LIKE) out.os_like = kv.ID_LIKE;
  if (kv.VERSION_CODENAME) out.os_codename = kv.VERSION_CODENAME;
  return out;
}

function ips(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal) out.push(a.address);
  }
  return out.sort();
}

async function customTraits(
  dir: string,
  timeoutMs: number,
  runner: CommandRunner,
): Promise<{ traits: Traits; errors: string[] }> {
  const traits: Traits = {};
  const errors: string[] = [];
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') errors.push(`${dir}: ${errorText(e)}`);
    return { traits, errors };
  }
  for (const n of names) {
    const file = join(dir, n);
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      let value: Traits;
      if (/\.(ya?ml|json)$/.test(n)) {
        value = parseConfigText(await readFile(file, 'utf8'), file, customSchema);
      } else if (st.mode & 0o111) {
        const r = await runner([file], { timeoutMs });
        if (r.spawnError || r.timedOut || r.code !== 0) {
          throw new Error(
            r.timedOut
              ? `timed out after ${timeoutMs} ms`
              : (r.spawnError ?? `exited with ${r.code}: ${r.stderr.trim().slice(0, 300)}`),
          );
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(r.stdout);
        } catch {
          throw new Error('did not print a JSON object');
        }
        const issues: { path: string; message: string }[] = [];
        const v = customSchema.parse(parsed, '', issues);
        if (!v || issues.length)
          throw new Error(
            `printed JSON that is not a mapping of traits: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
          );
        value = v;
      } else continue;
      Object.assign(traits, value);
    } catch (e) {
      errors.push(`${file}: ${errorText(e).replace(/^E_[A-Z_]+: /, '')}`.slice(0, 1000));
    }
  }
  return { traits, errors };
}
