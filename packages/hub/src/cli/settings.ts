import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { usage } from './errors.js';

/** Read with the shared config loader (file:line errors), imported only when a file is there: it costs most of the CLI's start-up time. */
async function readFile(file: string): Promise<{ hub?: string | undefined; token?: string | undefined }> {
  const { loadConfig, obj, opt, str } = await import('@axle/shared');
  return loadConfig(file, obj({ hub: opt(str({ min: 1, max: 512 })), token: opt(str({ min: 1, max: 512 })) }));
}

export interface Settings {
  /** Base URL, e.g. http://127.0.0.1:1530 */
  hub: string;
  token: string;
  /** Where each came from, for error messages. */
  from: { hub: string; token: string };
}

export function configFile(env: NodeJS.ProcessEnv): string {
  if (env.AXLE_CLI_CONFIG) return env.AXLE_CLI_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'axle', 'cli.yaml');
}

/** host:port, http://host:port or https://host:port, with or without a trailing slash or /api/v1. */
export function hubUrl(s: string): string {
  let v = s
    .trim()
    .replace(/\/+$/, '')
    .replace(/\/api\/v1$/, '');
  if (!/^https?:\/\//i.test(v)) v = `http://${v}`;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw usage(`"${s}" is not a hub address; give host:port or http://host:port`);
  }
  if (u.pathname !== '/' && u.pathname !== '')
    throw usage(`"${s}" is not a hub address; give host:port or http://host:port (no path)`);
  return `${u.protocol}//${u.host}`;
}

/**
 * Flags win over the environment (AXLE_HUB, AXLE_TOKEN), which wins over the config file
 * (~/.config/axle/cli.yaml, or AXLE_CLI_CONFIG) with `hub:` and `token:`.
 */
export async function resolveSettings(
  flags: { hub?: string; token?: string; config?: string },
  env: NodeJS.ProcessEnv,
): Promise<Settings> {
  const file = flags.config ?? configFile(env);
  let fromFile: { hub?: string | undefined; token?: string | undefined } = {};
  if (flags.config || existsSync(file)) {
    if (!existsSync(file)) throw usage(`config file ${file} does not exist`);
    fromFile = await readFile(file);
  }
  const pick = (
    flag: string | undefined,
    name: string,
    envName: string,
    fileVal: string | undefined,
  ): [string | undefined, string] =>
    flag ? [flag, `--${name}`] : env[envName] ? [env[envName], envName] : fileVal ? [fileVal, file] : [undefined, ''];
  const [hub, hubFrom] = pick(flags.hub, 'hub', 'AXLE_HUB', fromFile.hub);
  const [token, tokenFrom] = pick(flags.token, 'token', 'AXLE_TOKEN', fromFile.token);
  if (!hub) throw usage(`no hub address: pass --hub host:port, set AXLE_HUB, or put "hub: host:port" in ${file}`);
  if (!token)
    throw usage(
      `no API token: pass --token, set AXLE_TOKEN, or put "token: ..." in ${file} (the admin token is in admin.token in the hub's data_dir)`,
    );
  return { hub: hubUrl(hub), token: token.trim(), from: { hub: hubFrom, token: tokenFrom } };
}
