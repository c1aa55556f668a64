import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { AxleError, ErrorCode } from './errors.js';
import { PLAIN_ON_TLS, tcpSocketOf } from './server-tls.js';
import { AddressSlots, type Slot, type SlotLimits, type SlotTotals } from './slots.js';

/**
 * An AxleServer's TCP sockets, each holding a per-address slot (slots.ts) from accept to
 * close: refused over its address's limit, dropped if it sends no request within the headers
 * timeout, and on a TLS port given no longer than that for its TLS handshake.
 */
export class SocketSlots {
  private readonly slots: AddressSlots;
  /** Each socket's slot: pending until its first request says HTTP or WebSocket. */
  private readonly bySocket = new WeakMap<Duplex, Slot>();
  private readonly handshakeTimers = new WeakMap<Socket, NodeJS.Timeout>();

  constructor(
    limits: SlotLimits,
    private readonly o: {
      headersTimeoutMs: number;
      tls: boolean;
      onError: (e: AxleError, remoteAddress: string) => void;
    },
  ) {
    this.slots = new AddressSlots(limits);
  }

  /** The slot a socket (TCP, or TLS over a counted TCP socket) holds; none for one not counted. */
  of(socket: Duplex): Slot | undefined {
    return this.bySocket.get(socket);
  }

  totals(): SlotTotals {
    return this.slots.totals();
  }

  /** A new TCP socket: it takes a slot of its address or is dropped. */
  admit(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown';
    const slot = this.slots.open(ip);
    if (!slot) {
      this.o.onError(new AxleError(ErrorCode.TOO_MANY_CONNECTIONS, 'too many open sockets from this address'), ip);
      socket.destroy();
      return;
    }
    this.bySocket.set(socket, slot);
    socket.once('close', () => slot.release());
    if (this.o.tls) {
      // Node's own TLS handshake timeout restarts with every byte; this one does not.
      const timer = setTimeout(() => socket.destroy(), this.o.headersTimeoutMs);
      this.handshakeTimers.set(socket, timer);
      socket.once('close', () => clearTimeout(timer));
      return;
    }
    this.dropIfSilent(socket, slot);
  }

  /** A finished TLS handshake: the encrypted socket takes over the TCP socket's slot. */
  secured(socket: TLSSocket): void {
    const raw = tcpSocketOf(socket);
    const slot = raw && this.bySocket.get(raw);
    if (!raw || !slot) {
      // Never serve a socket that is not counted.
      socket.destroy();
      return;
    }
    clearTimeout(this.handshakeTimers.get(raw));
    this.bySocket.set(socket, slot);
    this.dropIfSilent(socket, slot);
  }

  /** A failed TLS handshake; plain HTTP gets an answer that says what is wrong. The close gives the slot back. */
  tlsFailed(e: Error & { code?: string }, socket: TLSSocket): void {
    const raw = tcpSocketOf(socket);
    const ip = raw?.remoteAddress ?? 'unknown';
    this.o.onError(new AxleError(ErrorCode.TLS, `TLS handshake failed: ${e.code ?? e.message}`), ip);
    if (e.code === 'ERR_SSL_HTTP_REQUEST' && raw && !raw.destroyed && raw.writable) {
      raw.end(PLAIN_ON_TLS, () => raw.destroy());
      return;
    }
    raw?.destroy();
  }

  /** Node's headers timeout only starts with a request: a socket that never sends one is ours to drop. */
  private dropIfSilent(socket: Socket, slot: Slot): void {
    socket.setTimeout(this.o.headersTimeoutMs, () => {
      if (slot.kind === 'pending') socket.destroy();
    });
  }
}
