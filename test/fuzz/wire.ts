import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import WebSocket from 'ws';
import { type Connection, type KeyPair, type Message, connectPeer, isAxleError, messageSchema } from '@axle/shared';
import { fuzzValue, hostileValue } from './values.js';

/**
 * Wire fuzzing: frames before the handshake (raw bytes, stray msgpack, broken hello/auth), and
 * after it every message type of the union, generated from `messageSchema` and mutated, sent as
 * requests and as events over a real signed connection.
 */

/** A first frame a peer might send instead of its handshake. */
export const preHandshakeFrame: fc.Arbitrary<{ data: Buffer | string; binary: boolean }> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ data: Buffer.from(b), binary: true })),
  hostileValue.map((v) => ({ data: Buffer.from(encodeLoose(v)), binary: true })),
  fc
    .record({
      t: fc.constantFrom('auth', 'hello', 'welcome', 'x'),
      nonce: hostileValue,
      id: hostileValue,
      pubkey: hostileValue,
    })
    .map((v) => ({ data: Buffer.from(encodeLoose(v)), binary: true })),
  fc.string({ maxLength: 100 }).map((s) => ({ data: s, binary: false })),
);

function encodeLoose(v: unknown): Uint8Array {
  try {
    return encode(v, { ignoreUndefined: true });
  } catch {
    return new Uint8Array([0xc1]);
  }
}

/** Sends `frames` on a raw WebSocket to `addr` before any handshake; resolves when it is closed or 1 s passes. */
export function sendPreHandshake(addr: string, frames: { data: Buffer | string; binary: boolean }[]): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${addr}/ws`);
    const done = () => {
      clearTimeout(t);
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve();
    };
    const t = setTimeout(done, 1000);
    ws.on('error', done);
    ws.on('close', done);
    ws.on('open', () => {
      for (const f of frames) ws.send(f.data, { binary: f.binary });
    });
  });
}

/** A message of any type, valid or broken; `pin` fixes fields a test must not fuzz (a hub's term). */
export function messageArb(pin: Record<string, unknown> = {}): fc.Arbitrary<unknown> {
  return fc
    .oneof({ weight: 8, arbitrary: fuzzValue(messageSchema) }, { weight: 1, arbitrary: hostileValue })
    .map((m) => {
      if (m === null || typeof m !== 'object' || Array.isArray(m)) return m;
      const out: Record<string, unknown> = { ...(m as Record<string, unknown>) };
      for (const [k, v] of Object.entries(pin)) if (k in out) out[k] = v;
      return out;
    });
}

export type Outcome = 'reply' | 'error' | 'closed';

/** A signed connection as one role, reopened whenever the other side closes it for a protocol error. */
export class WireSession {
  private conn: Connection | undefined;

  constructor(
    private readonly addr: string,
    private readonly id: string,
    private readonly role: string,
    private readonly key: KeyPair,
  ) {}

  private async open(): Promise<Connection> {
    if (this.conn?.isOpen) return this.conn;
    this.conn = await connectPeer(this.addr, {
      id: this.id,
      role: this.role,
      keyPair: this.key,
      keepaliveMs: 0,
      requestTimeoutMs: 5000,
    });
    return this.conn;
  }

  /** Sends `m` as a request (or an event) and says how the other side took it. */
  async send(m: unknown, asEvent: boolean): Promise<{ outcome: Outcome; reply?: Message; code?: string }> {
    const c = await this.open();
    if (asEvent) {
      try {
        c.send(m as Message);
      } catch {
        return { outcome: 'error' };
      }
      return { outcome: 'reply' };
    }
    try {
      const reply = await c.request(m as Message, 5000);
      return { outcome: 'reply', reply };
    } catch (e) {
      if (!c.isOpen) return { outcome: 'closed' };
      return { outcome: 'error', ...(isAxleError(e) ? { code: e.code } : {}) };
    }
  }

  close(): void {
    this.conn?.close();
  }
}
