import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { AxleError, ErrorCode, type Logger } from '@axle/shared';
import type { HubStore } from '../store/state.js';
import { hashSecret, newSecret, type Tokens } from '../store/tokens.js';

const ADMIN_TOKEN_ID = 'admin';

/**
 * Writes a random admin token to <data_dir>/admin.token (0600) on first start and keeps the
 * store in step with the file; returns the token's secret.
 */
export async function ensureAdminToken(
  file: string,
  o: { tokens: Tokens; state: HubStore; serverId: string; log: Logger; replicated: boolean },
): Promise<string> {
  const { tokens, state, log } = o;
  let secret: string;
  if (existsSync(file)) {
    secret = readFileSync(file, 'utf8').trim();
    if (secret.length < 16)
      throw new AxleError(
        ErrorCode.BAD_CONFIG,
        `${file} holds no usable token; delete it and restart the hub to make a new one`,
      );
  } else {
    secret = newSecret('axa');
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${secret}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    log.info({ file }, 'wrote the admin API token; use it with the axle CLI (--token or AXLE_TOKEN)');
  }
  if (o.replicated) {
    // A standby cannot write: each hub accepts its own file, and the primary records it as admin.<id> for the others.
    tokens.localAdmin = {
      id: `admin.${o.serverId}`,
      hash: hashSecret(secret),
      role: 'admin',
      name: `admin.${o.serverId}`,
      createdAt: Date.now(),
    };
    return secret;
  }
  const cur = state.apiTokens.get(ADMIN_TOKEN_ID);
  if (!cur || cur.hash !== hashSecret(secret) || cur.revokedAt !== undefined)
    await tokens.createApi('admin', 'admin', secret, ADMIN_TOKEN_ID);
  return secret;
}
