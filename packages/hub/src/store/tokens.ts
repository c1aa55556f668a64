import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AxleError, ErrorCode, Glob, type ApiTokenView, type JoinTokenView } from '@axle/shared';
import type { ApiRole, ApiToken, JoinToken } from './model.js';
import type { HubStore } from './state.js';

/**
 * Join tokens (enrollment) and API tokens (HTTP). Only a SHA-256 of each secret is stored:
 * the secrets are 32 random bytes, so a plain hash is enough (no password stretching needed)
 * and a copy of the store does not let anyone enroll or call the API.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** `axj_` join / `axa_` API prefix tells the two apart when pasted in the wrong place. */
export function newSecret(prefix: 'axj' | 'axa'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function newId(prefix: string): string {
  return `${prefix}${randomBytes(6).toString('hex')}`;
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface JoinTokenSpec {
  ttlMs?: number;
  maxUses?: number;
  pattern?: string;
  spokes?: string[];
  note?: string;
}

/** Why a join token cannot enroll `hostname`, or undefined when it can. */
export function joinTokenProblem(t: JoinToken, hostname: string, now: number, reserved = 0): string | undefined {
  if (t.revokedAt !== undefined) return `join token ${t.id} was revoked; ask an admin for a new one`;
  if (t.expiresAt !== undefined && now >= t.expiresAt)
    return `join token ${t.id} expired at ${new Date(t.expiresAt).toISOString()}; ask an admin for a new one`;
  if (t.maxUses !== undefined && t.uses + reserved >= t.maxUses)
    return `join token ${t.id} has been used ${t.uses} of ${t.maxUses} times; ask an admin for a new one`;
  if (t.pattern !== undefined && !Glob.compile(t.pattern).test(hostname)) {
    return `join token ${t.id} may only enroll hosts matching "${t.pattern}", not "${hostname}"`;
  }
  return undefined;
}

export class Tokens {
  private readonly byHash = new Map<string, string>();
  private readonly apiByHash = new Map<string, string>();
  /** Uses granted but not yet durable, so a one-use token cannot be spent twice at once. */
  private readonly reserved = new Map<string, number>();

  constructor(private readonly state: HubStore) {
    for (const t of state.tokens.values()) this.byHash.set(t.hash, t.id);
    for (const t of state.apiTokens.values()) this.apiByHash.set(t.hash, t.id);
  }

  async createJoin(spec: JoinTokenSpec, by: string): Promise<{ token: JoinToken; secret: string }> {
    if (spec.pattern !== undefined) Glob.compile(spec.pattern);
    const secret = newSecret('axj');
    const now = Date.now();
    const token: JoinToken = {
      id: newId('jt_'),
      hash: hashSecret(secret),
      createdAt: now,
      createdBy: by,
      uses: 0,
      ...(spec.ttlMs !== undefined ? { expiresAt: now + spec.ttlMs } : {}),
      ...(spec.maxUses !== undefined ? { maxUses: spec.maxUses } : {}),
      ...(spec.pattern !== undefined ? { pattern: spec.pattern } : {}),
      ...(spec.spokes !== undefined ? { spokes: [...new Set(spec.spokes)] } : {}),
      ...(spec.note !== undefined ? { note: spec.note } : {}),
    };
    await this.state.apply({ kind: 'token.put', token });
    this.byHash.set(token.hash, token.id);
    return { token, secret };
  }

  async revokeJoin(id: string): Promise<JoinToken> {
    const t = this.state.tokens.get(id);
    if (!t) throw new AxleError(ErrorCode.NOT_FOUND, `no join token ${id}; list them with GET /api/v1/tokens`);
    if (t.revokedAt !== undefined) return t;
    const token = { ...t, revokedAt: Date.now() };
    await this.state.apply({ kind: 'token.put', token });
    return token;
  }

  /** Finds the token for `secret` and checks it may enroll `hostname` (throws E_BAD_TOKEN). */
  check(secret: string, hostname: string): JoinToken {
    const h = hashSecret(secret);
    // Tokens created on another hub arrive by replication, not through this class.
    const id = this.byHash.get(h) ?? [...this.state.tokens.values()].find((x) => x.hash === h)?.id;
    const t = id === undefined ? undefined : this.state.tokens.get(id);
    if (!t)
      throw new AxleError(
        ErrorCode.BAD_TOKEN,
        'the join token is not known to this hub; check it was copied whole, or create one with POST /api/v1/tokens',
      );
    const held = (this.reserved.get(t.id) ?? 0) + (this.committing.get(t.id) ?? 0);
    const why = joinTokenProblem(t, hostname, Date.now(), held);
    if (why) throw new AxleError(ErrorCode.BAD_TOKEN, why);
    return t;
  }

  /**
   * With replicated hubs each hub's own admin.token is accepted here without being a
   * replicated record (a standby cannot write; peers' admin tokens arrive as admin.<id>).
   */
  localAdmin: ApiToken | undefined;

  /** Uses computed into a `token.put` that is not yet durable, per token. */
  private readonly committing = new Map<string, number>();

  /**
   * Holds one use of the token while an enrollment is in flight, checking again so that
   * concurrent uses cannot overrun `maxUses`. `commit()` returns the record to write (call
   * it right before `applyAll`, then `settle()` once that resolves); `undo()` gives the use back.
   */
  reserve(t: JoinToken, hostname: string): { commit: () => JoinToken; settle: () => void; undo: () => void } {
    const cur = this.state.tokens.get(t.id) ?? t;
    const held = (this.reserved.get(t.id) ?? 0) + (this.committing.get(t.id) ?? 0);
    const why = joinTokenProblem(cur, hostname, Date.now(), held);
    if (why) throw new AxleError(ErrorCode.BAD_TOKEN, why);
    bump(this.reserved, t.id, 1);
    let state: 'held' | 'committing' | 'done' = 'held';
    return {
      commit: () => {
        if (state !== 'held') throw new AxleError(ErrorCode.INTERNAL, 'token reservation committed twice');
        state = 'committing';
        bump(this.reserved, t.id, -1);
        const latest = this.state.tokens.get(t.id) ?? cur;
        const ahead = this.committing.get(t.id) ?? 0;
        bump(this.committing, t.id, 1);
        return { ...latest, uses: latest.uses + ahead + 1 };
      },
      settle: () => {
        if (state !== 'committing') return;
        state = 'done';
        bump(this.committing, t.id, -1);
      },
      undo: () => {
        if (state === 'held') bump(this.reserved, t.id, -1);
        else if (state === 'committing') bump(this.committing, t.id, -1);
        state = 'done';
      },
    };
  }

  async createApi(
    role: ApiRole,
    name: string,
    secret = newSecret('axa'),
    id = newId('at_'),
  ): Promise<{ token: ApiToken; secret: string }> {
    const token: ApiToken = { id, hash: hashSecret(secret), role, name, createdAt: Date.now() };
    await this.state.apply({ kind: 'apitoken.put', token });
    this.apiByHash.set(token.hash, token.id);
    return { token, secret };
  }

  async revokeApi(id: string): Promise<ApiToken> {
    const t = this.state.apiTokens.get(id);
    if (!t) throw new AxleError(ErrorCode.NOT_FOUND, `no API token ${id}; list them with GET /api/v1/api-tokens`);
    if (t.revokedAt !== undefined) return t;
    const token = { ...t, revokedAt: Date.now() };
    await this.state.apply({ kind: 'apitoken.put', token });
    return token;
  }

  /** The live API token for a bearer secret, or undefined. */
  api(secret: string): ApiToken | undefined {
    const h = hashSecret(secret);
    if (this.localAdmin && sameHash(this.localAdmin.hash, h)) return this.localAdmin;
    const id = this.apiByHash.get(h) ?? [...this.state.apiTokens.values()].find((x) => x.hash === h)?.id;
    const t = id === undefined ? undefined : this.state.apiTokens.get(id);
    if (!t || t.revokedAt !== undefined || !sameHash(t.hash, h)) return undefined;
    return t;
  }
}

function bump(m: Map<string, number>, k: string, d: number): void {
  const n = (m.get(k) ?? 0) + d;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}

/** Public view of a join token (the API contract's JoinTokenView): never the hash. */
export function joinTokenView(t: JoinToken): JoinTokenView {
  const now = Date.now();
  const state =
    t.revokedAt !== undefined
      ? 'revoked'
      : t.expiresAt !== undefined && now >= t.expiresAt
        ? 'expired'
        : t.maxUses !== undefined && t.uses >= t.maxUses
          ? 'used up'
          : 'active';
  return {
    id: t.id,
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    ...(t.expiresAt !== undefined ? { expiresAt: t.expiresAt } : {}),
    ...(t.maxUses !== undefined ? { maxUses: t.maxUses } : {}),
    uses: t.uses,
    ...(t.pattern !== undefined ? { pattern: t.pattern } : {}),
    ...(t.spokes !== undefined ? { spokes: t.spokes } : {}),
    ...(t.note !== undefined ? { note: t.note } : {}),
    ...(t.revokedAt !== undefined ? { revokedAt: t.revokedAt } : {}),
    state,
  };
}

/** Public view of an API token (the API contract's ApiTokenView): never the hash. */
export function apiTokenView(t: ApiToken): ApiTokenView {
  return {
    id: t.id,
    role: t.role,
    name: t.name,
    createdAt: t.createdAt,
    ...(t.revokedAt !== undefined ? { revokedAt: t.revokedAt } : {}),
  };
}
