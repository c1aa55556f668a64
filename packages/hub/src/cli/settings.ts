import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { usage } from './errors.js';

/** Read with the shared config loader (file:line errors), imported only when a file is there: it costs most of the CLI's start-up time. */
async function readFile(
  file: string,
): Promise<{ hub?: string | undefined; token?: string | undefined; ca_file?: string | undefined }> {
  const { loadConfig, obj, opt, str } = await import('@axle/shared');
  return loadConfig(
    file,
    obj({
      hub: opt(str({ min: 1, max: 512 })),
      token: opt(str({ min: 1, max: 512 })),
      ca_file: opt(str({ min: 1, max: 1024 })),
    }),
  );
}

export interface Settings {
  /** Base URL, e.g. https://hub.example.com:1530 */
  hub: string;
  token: string;
  /** The fleet CA (PEM) an https:// hub's certificate must chain to; without it, the system's CAs. */
  ca?: Buffer;
  /** Where each came from, for error messages. */
  from: { hub: string; token: string; ca?: string };
}

export function configFile(env: NodeJS.ProcessEnv): string {
  if (env.AXLE_CLI_CONFIG) return env.AXLE_CLI_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'axle', 'cli.yaml');
}

/**
 * host:port, http://host:port or https://host:port, with or without a trailing slash or /api/v1.
 * A bare host:port is https:// when a CA file is given (the hub speaks TLS), else http://.
 */
export function hubUrl(s: string, secure = false): string {
  let v = s
    .trim()
    .replace(/\/+$/, '')
    .replace(/\/api\/v1$/, '');
  if (!/^https?:\/\//i.test(v)) v = `${secure ? 'https' : 'http'}://${v}`;
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
  flags: { hub?: string; token?: string; config?: string; caFile?: string },
  env: NodeJS.ProcessEnv,
): Promise<Settings> {
  const file = flags.config ?? configFile(env);
  let fromFile: { hub?: string | undefined; token?: string | undefined; ca_file?: string | undefined } = {};
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
  const [caFile, caFrom] = pick(flags.caFile, 'ca-file', 'AXLE_CA_FILE', fromFile.ca_file);
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (e) {
      throw usage(`cannot read the CA file ${caFile} (from ${caFrom}): ${(e as Error).message}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw usage(`${caFile} (from ${caFrom}) holds no PEM certificate; give the fleet CA (ca.pem)`);
  }
  return {
    hub: hubUrl(hub, ca !== undefined),
    token: token.trim(),
    ...(ca ? { ca } : {}),
    from: { hub: hubFrom, token: tokenFrom, ...(caFile ? { ca: caFrom } : {}) },
  };
}
