import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** What AxleServer's TLS listener needs beyond Node's: its options, the TCP socket under a TLS one, the answer to plain HTTP. */

/** The certificate (chain) and key a TLS listener serves, PEM. */
export interface ServerTls {
  cert: Buffer | string;
  key: Buffer | string;
}

/** Answered on a TLS port to a client that sent plain HTTP, so `curl http://` and `ws://` say what is wrong. */
const PLAIN_ON_TLS_BODY = 'this port speaks TLS only: use https:// (or wss://) and the fleet CA\n';
export const PLAIN_ON_TLS = `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${PLAIN_ON_TLS_BODY.length}\r\n\r\n${PLAIN_ON_TLS_BODY}`;

export function tlsOptions(tls: ServerTls): { cert: Buffer | string; key: Buffer | string; minVersion: 'TLSv1.2' } {
  return { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' };
}

/**
 * The TCP socket under a server-side TLS socket: the one counted in the slots. Node keeps it as
 * `_parent`; without it the TLS socket is refused rather than served uncounted.
 */
export function tcpSocketOf(socket: TLSSocket): Socket | undefined {
  const parent = (socket as TLSSocket & { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : undefined;
}
