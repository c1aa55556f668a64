import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiRole } from '../../store/model.js';

/** A browser session: the API token it logged in with stays on the server, never in the page. */
export interface Session {
  id: string;
  /** The API token secret; each API request re-checks it, so revoking the token ends the session. */
  secret: string;
  csrf: string;
  name: string;
  role: ApiRole;
  expiresAt: number;
}

export const SESSION_COOKIE = 'axle_session';
const TTL_MS = 12 * 3600_000;
const MAX_SESSIONS = 10_000;

/** In-memory sessions: a restarted hub asks everyone to log in again, which is fine for an operator UI. */
export class Sessions {
  private readonly byId = new Map<string, Session>();

  create(secret: string, name: string, role: ApiRole, now = Date.now()): Session {
    this.sweep(now);
    if (this.byId.size >= MAX_SESSIONS) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
    const s: Session = {
      id: randomBytes(32).toString('base64url'),
      secret,
      csrf: randomBytes(24).toString('base64url'),
      name,
      role,
      expiresAt: now + TTL_MS,
    };
    this.byId.set(s.id, s);
    return s;
  }

  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (!id) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= now) {
      this.byId.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string | undefined): void {
    if (id) this.byId.delete(id);
  }

  private sweep(now: number): void {
    for (const [id, s] of this.byId) if (s.expiresAt <= now) this.byId.delete(id);
  }

  get maxAgeS(): number {
    return TTL_MS / 1000;
  }
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
