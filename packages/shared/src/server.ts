import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CloseCode } from './close-codes.js';
import { Codec, type CodecLimits } from './codec.js';
import type { Connection } from './connection.js';
import type { PeerInfo } from './connection-types.js';
import type { FrameCrypto } from './crypto-pool.js';
import { isRequestFault, requestIdOf, requestTarget, sendError } from './http.js';
import type { KeyPair } from './keys.js';
import type { Logger } from './log.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
import { acceptHandshake, type HandshakeSide } from './server-handshake.js';
import { SocketSlots } from './server-sockets.js';
import { type ServerTls, tlsOptions } from './server-tls.js';
import { Signer } from './sign.js';
import type { Slot, SlotTotals } from './slots.js';

/** What the server's `authenticate` decided for a peer: its role, and optionally a larger send limit. */
export interface PeerDecision {
  role: string;
  maxSendFrameBytes?: number;
}

export interface PeerClaim {
  id: string;
  role: string;
  pubkey: Uint8Array;
  remoteAddress: string;
}

export interface AxleServerOptions {
  host: string;
  port: number;
  id: string;
  keyPair: KeyPair;
  limits?: Partial<CodecLimits>;
  /**
   * Decides whether a peer that proved possession of `claim.pubkey` may connect. Return the
   * role it gets; throw an AxleError (e.g. E_UNKNOWN_KEY) to refuse with that reason.
   * `maxSendFrameBytes` lets this server send that peer frames above its own frame limit (a
   * peer hub takes replication frames that large); frames it accepts stay under `limits`.
   */
  authenticate: (claim: PeerClaim) => Promise<PeerDecision> | PeerDecision;
  onConnection: (conn: Connection) => void;
  /** Plain HTTP routes on the same port (API, /metrics, /healthz, bootstrap). */
  http?: (req: IncomingMessage, res: ServerResponse) => unknown;
  /** Path that WebSocket upgrades must use (default "/ws"). */
  wsPath?: string;
  maxConnectionsPerIp?: number;
  maxHandshakesPerIp?: number;
  httpLimits?: Partial<HttpLimits>;
  handshakeTimeoutMs?: number;
  keepaliveMs?: number;
  requestTimeoutMs?: number;
  /** Checks and makes the signatures of handshakes and frames on worker threads (crypto-pool.ts). */
  crypto?: FrameCrypto;
  /** The claimed roles whose handshakes and frames go to `crypto`; every role when omitted. */
  cryptoRoles?: readonly string[];
  /** Request failures that are the daemon's fault, and handler errors on connections, are logged here. */
  log?: Logger;
  onError?: (e: AxleError, remoteAddress: string) => void;
  /**
   * Serve TLS only (HTTPS and WSS) with this certificate and key. A TLS handshake must finish
   * within the headers timeout; one that fails gives its socket's slot back like any close.
   */
  tls?: ServerTls;
}

/**
 * One http.Server per daemon: HTTP routes and signed WebSocket connections on one port.
 * Everything a peer can send passes one boundary here: a request or frame that throws costs
 * that request (400 for a bad request, 500 and a log line otherwise) or that connection (a
 * close code), never the process. Per-address slots (slots.ts) cap HTTP sockets, handshakes and
 * connections, and the HTTP server's timeouts bound how long a socket may sit on its request.
 */
export class AxleServer {
  readonly http: Server | HttpsServer;
  readonly codec: Codec;
  readonly connections = new Set<Connection>();
  private readonly wss: WebSocketServer;
  private readonly handshakeSide: HandshakeSide;
  private readonly sockets: SocketSlots;
  private readonly o: AxleServerOptions & {
    wsPath: string;
    handshakeTimeoutMs: number;
    keepaliveMs: number;
  };
  private accepting = true;

  constructor(options: AxleServerOptions) {
    this.o = { handshakeTimeoutMs: 5000, keepaliveMs: 3000, wsPath: '/ws', ...options };
    const httpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.httpLimits };
    this.sockets = new SocketSlots(
      {
        http: httpLimits.maxConnectionsPerIp,
        handshakes: options.maxHandshakesPerIp ?? 64,
        conns: options.maxConnectionsPerIp ?? 512,
      },
      {
        headersTimeoutMs: httpLimits.headersTimeoutMs,
        tls: Boolean(options.tls),
        onError: (e, ip) => this.o.onError?.(e, ip),
      },
    );
    this.codec = new Codec(options.limits);
    this.handshakeSide = {
      id: this.o.id,
      keyPair: this.o.keyPair,
      signer: new Signer(options.keyPair),
      codec: this.codec,
      timeoutMs: this.o.handshakeTimeoutMs,
      keepaliveMs: this.o.keepaliveMs,
      requestTimeoutMs: this.o.requestTimeoutMs,
      crypto: this.o.crypto,
      cryptoRoles: this.o.cryptoRoles,
      authenticate: (claim) => this.o.authenticate(claim),
      onError: (e, ip) => this.o.onError?.(e, ip),
      admit: (conn, peer, ip, slot) => this.admitConnection(conn, peer, ip, slot),
    };
    // The signature adds 64 bytes to each body, so the socket limit is the frame limit plus that.
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.codec.limits.maxFrameBytes + 64,
      perMessageDeflate: false,
    });
    const httpOptions = {
      maxHeaderSize: httpLimits.maxHeaderBytes,
      // Node checks the headers and request timeouts only this often (30 s by default).
      connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(httpLimits.headersTimeoutMs / 2))),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => this.serve(req, res);
    this.http = options.tls
      ? createHttpsServer(
          { ...httpOptions, ...tlsOptions(options.tls), handshakeTimeout: httpLimits.headersTimeoutMs },
          handler,
        )
      : createServer(httpOptions, handler);
    this.http.headersTimeout = httpLimits.headersTimeoutMs;
    this.http.requestTimeout = httpLimits.requestTimeoutMs;
    this.http.keepAliveTimeout = httpLimits.keepAliveTimeoutMs;
    this.http.maxHeadersCount = 100;
    this.http.on('connection', (socket: Socket) => this.sockets.admit(socket));
    if (options.tls) {
      this.http.on('secureConnection', (socket: TLSSocket) => this.sockets.secured(socket));
      this.http.on('tlsClientError', (e: Error & { code?: string }, socket: TLSSocket) =>
        this.sockets.tlsFailed(e, socket),
      );
    }
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.http.on('clientError', (e: Error & { code?: string }, socket: Duplex) => {
      // Unparseable HTTP: answer if the socket can still take it, then drop it.
      const status =
        e.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : e.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : '400 Bad Request';
      if (socket.writable && e.code !== 'ECONNRESET') socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
      socket.destroy();
    });
  }

  /** Serves a new certificate and key to new connections; open ones keep the session they have. */
  setTls(tls: ServerTls): void {
    if (!this.o.tls) throw new AxleError(ErrorCode.INTERNAL, 'this listener was started without TLS');
    (this.http as HttpsServer).setSecureContext(tlsOptions(tls));
  }

  /** Per-address slot totals now, for tests and metrics. */
  slotTotals(): SlotTotals {
    return this.sockets.totals();
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.o.port, this.o.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    // After listening, an accept failure (EMFILE) must cost that connection, not the process.
    this.http.on('error', (e) => this.o.log?.error({ err: errorText(e) }, 'listener error'));
    return this.address();
  }

  address(): { host: string; port: number } {
    const a = this.http.address();
    if (a === null || typeof a === 'string') throw new AxleError(ErrorCode.INTERNAL, 'server is not listening');
    return { host: a.address, port: a.port };
  }

  /** The request boundary: whatever the handler throws, now or later, answers this request only. */
  private serve(req: IncomingMessage, res: ServerResponse): void {
    const slot = this.sockets.of(req.socket);
    if (slot?.kind === 'pending') req.socket.setTimeout(0);
    if (slot && !slot.toHttp()) {
      res.shouldKeepAlive = false;
      sendError(
        res,
        new AxleError(
          ErrorCode.TOO_MANY_CONNECTIONS,
          'too many HTTP connections from your address; close idle ones (limits.max_http_connections_per_ip)',
        ),
      );
      return;
    }
    const fail = (e: unknown) => {
      const id = requestIdOf(req);
      if (!isRequestFault(e)) {
        let path = '(unparseable)';
        try {
          path = requestTarget(req).pathname.slice(0, 200);
        } catch {
          // the target itself was the fault
        }
        this.o.log?.error({ requestId: id, method: req.method, path, err: errorText(e) }, 'request failed');
      }
      sendError(res, e, id);
    };
    try {
      if (!this.o.http) {
        sendError(res, new AxleError(ErrorCode.NOT_FOUND, 'no such route'));
        return;
      }
      const out = this.o.http(req, res);
      if (out instanceof Promise) out.catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, why: string) => {
      socket.end(`HTTP/1.1 ${status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
    };
    if (!this.accepting) return refuse(503, 'Shutting Down');
    let path: string;
    try {
      path = requestTarget(req).pathname;
    } catch {
      return refuse(400, 'Bad Request');
    }
    if (path !== this.o.wsPath) return refuse(404, 'Not Found');
    // From here the socket is a WebSocket's: it counts as a handshake, then a connection. ws
    // answers a bad upgrade (wrong key, version, method) itself and never calls back; the socket
    // closing is what gives the slot back then.
    const slot = this.sockets.of(socket);
    if (!slot) return refuse(503, 'Not Admitted');
    (socket as Socket).setTimeout(0);
    const refused = slot.toHandshake();
    if (refused) return refuse(429, refused);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      acceptHandshake(ws, ip, slot, this.handshakeSide).then(
        () => undefined,
        () => undefined,
      );
    });
  }

  /** A connection whose handshake passed: counted until it closes, its errors reported, then the daemon's. */
  private admitConnection(conn: Connection, peer: PeerInfo, ip: string, slot: Slot): void {
    this.connections.add(conn);
    conn.on('protocol_error', (e: AxleError) => this.o.onError?.(e, ip));
    conn.on('handler_error', (e: unknown, type?: string) =>
      this.o.log?.error({ peer: peer.id, role: peer.role, type, err: errorText(e) }, 'message handler failed'),
    );
    void conn.closed.then(() => {
      this.connections.delete(conn);
      slot.release();
    });
    this.o.onConnection(conn);
  }

  /** Stops accepting, closes every connection with SHUTDOWN, and closes the port. */
  async close(graceMs = 2000): Promise<void> {
    this.accepting = false;
    for (const conn of this.connections) conn.close(CloseCode.SHUTDOWN);
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const conn of this.connections) conn.terminate();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}
