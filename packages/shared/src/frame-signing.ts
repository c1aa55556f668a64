import { closeReason } from './close-codes.js';
import type { FrameCrypto } from './crypto-pool.js';
import { OPEN, type FrameSocket } from './frame-socket.js';
import { type Signer, verifyDetached } from './sign.js';

/**
 * A connection's frames are `signature(64) || body`; the signature covers the session context,
 * a direction byte and the body. This file signs outgoing frames and checks incoming ones,
 * inline or on a crypto pool (crypto-pool.ts), keeping frames in order either way.
 */

/** What a frame's signature covers: the session context, a direction byte and the body. */
function signedBytes(context: Buffer, dir: number, body: Uint8Array): Buffer {
  const signed = Buffer.allocUnsafe(context.length + 1 + body.length);
  context.copy(signed, 0);
  signed[context.length] = dir;
  signed.set(body, context.length + 1);
  return signed;
}

function framed(sig: Uint8Array, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(64 + body.length);
  frame.set(sig, 0);
  frame.set(body, 64);
  return frame;
}

/** Builds `signature || body`, the signature covering context, direction byte and body. */
export function signFrame(signer: Signer, context: Buffer, dir: number, body: Uint8Array): Buffer {
  return framed(signer.sign(signedBytes(context, dir, body)), body);
}

/** One direction of a connection: its socket, session context and direction byte. */
export interface FrameChannel {
  socket: FrameSocket;
  context: Buffer;
  dir: number;
  crypto: FrameCrypto | undefined;
}

/**
 * Signs and sends frames in the order they were written. A pool's signatures may come back in
 * any order, so each frame waits until it and all before it are signed; a close asked for
 * meanwhile waits until they are sent.
 */
export class FrameWriter {
  private readonly outbox: { frame?: Buffer }[] = [];
  private closeWhenSent: { code: number; reason: string } | undefined;

  constructor(
    private readonly ch: FrameChannel,
    private readonly signer: Signer,
  ) {}

  send(body: Uint8Array): void {
    const { socket, context, dir, crypto } = this.ch;
    if (!crypto) return socket.send(signFrame(this.signer, context, dir, body));
    const entry: { frame?: Buffer } = {};
    this.outbox.push(entry);
    crypto.sign(signedBytes(context, dir, body), (sig) => {
      entry.frame = framed(sig, body);
      while (this.outbox[0]?.frame) {
        const frame = this.outbox.shift()!.frame!;
        if (socket.readyState === OPEN) socket.send(frame);
      }
      const c = this.closeWhenSent;
      if (c && this.outbox.length === 0 && socket.readyState === OPEN) socket.close(c.code, closeReason(c.reason));
    });
  }

  /** Closes the socket once the frames written before are out. */
  close(code: number, reason: string): void {
    if (this.outbox.length > 0) this.closeWhenSent = { code, reason };
    else if (this.ch.socket.readyState === OPEN) this.ch.socket.close(code, closeReason(reason));
  }
}

/** Where checked frames go, in the order they arrived. */
export interface CheckedFrames {
  accept(frame: Buffer): void;
  /** The first frame whose signature does not verify: the connection ends there. */
  reject(): void;
  /** Whether the connection has ended: frames still being checked are dropped. */
  ended(): boolean;
  /** Handling a frame threw in a pool's callback, where no socket handler catches it. */
  failed(e: unknown): void;
}

/**
 * Frames (or bytes of them) received but not yet handled, their signatures being checked,
 * before the socket is paused: more than an envoy or a hub pipelines, and with the frame
 * limit (1 MiB by default) at most one large frame beyond it, on every connection.
 */
const MAX_INBOX = 64;
const MAX_INBOX_BYTES = 2 ** 20;

/** Checks incoming frames' signatures and hands them on in arrival order. */
export class FrameChecker {
  private readonly inbox: { frame: Buffer; ok?: boolean }[] = [];
  private inboxBytes = 0;
  private paused = false;

  constructor(
    private readonly ch: FrameChannel,
    private readonly pubkey: Uint8Array,
    private readonly out: CheckedFrames,
  ) {}

  /** `data` is a whole binary frame of at least 65 bytes. */
  check(data: Buffer): void {
    const { socket, context, dir, crypto } = this.ch;
    const signed = signedBytes(context, dir, data.subarray(64));
    if (!crypto) {
      if (!verifyDetached(signed, data.subarray(0, 64), this.pubkey)) return this.out.reject();
      return this.out.accept(data);
    }
    const entry: { frame: Buffer; ok?: boolean } = { frame: data };
    this.inbox.push(entry);
    this.inboxBytes += data.length;
    // A peer sending faster than its frames are checked waits, rather than filling memory.
    if ((this.inbox.length >= MAX_INBOX || this.inboxBytes >= MAX_INBOX_BYTES) && !this.paused && socket.pause) {
      this.paused = true;
      socket.pause();
    }
    crypto.verify(signed, data.subarray(0, 64), this.pubkey, (ok) => {
      entry.ok = ok;
      try {
        this.drain();
      } catch (e) {
        this.out.failed(e);
      }
    });
  }

  /** Hands on checked frames in the order they arrived; a bad signature ends the connection there. */
  private drain(): void {
    while (this.inbox[0]?.ok !== undefined) {
      const { frame, ok } = this.inbox.shift()!;
      this.inboxBytes -= frame.length;
      if (this.out.ended()) return void (this.inbox.length = 0);
      if (!ok) return this.out.reject();
      this.out.accept(frame);
    }
    if (this.paused && this.inbox.length < MAX_INBOX / 2 && this.inboxBytes < MAX_INBOX_BYTES / 2) {
      this.paused = false;
      this.ch.socket.resume?.();
    }
  }
}
