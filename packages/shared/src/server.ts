import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CloseCode, closeCodeFor, closeReason } from './close-codes.js';
import { Codec, type CodecLimits } from './codec.js';
import { Connection, type PeerInfo } from './connection.js';
import type { FrameCrypto } from './crypto-pool.js';
import { toBuffer } from './frame-socket.js';
import { checkAuth, makeHello, newNonce, readHandshake, sessionContext, signWelcome } from './handshake.js';
import { isRequestFault, requestIdOf, requestTarget, sendError } from './http.js';
import type { KeyPair } from './keys.js';
import type { Logger } from './log.js';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
import { Signer } from './sign.js';
import { AddressSlots, type Slot, type SlotTotals } from './slots.js';

export interface PeerClaim {
  id: string;
  role: string;
  pubkey: Uint8Array;
  remoteAddress: string;
}

/** The certificate (chain) and key a TLS listener serves, PEM. */
export interface ServerTls {
  cert: Buffer | string;
  key: Buffer | string;
}

/** Answered on a TLS port to a client that sent plain HTTP, so `curl http://` and `ws://` say what is wrong. */
const PLAIN_ON_TLS_BODY = 'this port speaks TLS only: use https:// (or wss://) and the fleet CA\n';
const PLAIN_ON_TLS = `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${PLAIN_ON_TLS_BODY.length}\r\n\r\n${PLAIN_ON_TLS_BODY}`;

export interface AxleServerOptions {
  host: string;
  port: number;
  id: string;
  keyPair: KeyPair;
  limits?: Partial<CodecLimits>;
  /**
   * Decides whether a peer that proved possession of `claim.pubkey` may connect. Return the
   * role it gets; throw an AxleError (e.g. E_UNKNOWN_KEY) to refuse with that reason.
   */
  authenticate: (claim: PeerClaim) => Promise<{ role: string }> | { role: string };
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
  private readonly signer: Signer;
  private readonly slots: AddressSlots;
  /** Each TCP socket's slot: pending until its first request says HTTP or WebSocket. */
  private readonly socketSlots = new WeakMap<Duplex, Slot>();
  private readonly o: AxleServerOptions & {
    wsPath: string;
    handshakeTimeoutMs: number;
    keepaliveMs: number;
  };
  private accepting = true;
  private readonly headersTimeoutMs: number;
  private readonly handshakeTimers = new WeakMap<Socket, NodeJS.Timeout>();

  constructor(options: AxleServerOptions) {
    this.o = { handshakeTimeoutMs: 5000, keepaliveMs: 3000, wsPath: '/ws', ...options };
    const httpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.httpLimits };
    this.headersTimeoutMs = httpLimits.headersTimeoutMs;
    this.slots = new AddressSlots({
      http: httpLimits.maxConnectionsPerIp,
      handshakes: options.maxHandshakesPerIp ?? 64,
      conns: options.maxConnectionsPerIp ?? 512,
    });
    this.codec = new Codec(options.limits);
    this.signer = new Signer(options.keyPair);
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
    this.http.on('connection', (socket: Socket) => this.admit(socket));
    if (options.tls) {
      this.http.on('secureConnection', (socket: TLSSocket) => this.secured(socket));
      this.http.on('tlsClientError', (e: Error & { code?: string }, socket: TLSSocket) => this.tlsFailed(e, socket));
    }
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.http.on('clientError', (e: Error & { code?: string }, socket: Duplex) => {
      // Unparseable HTTP: answer if the socket can still take it, then drop it.
      const status = e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
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
    return this.slots.totals();
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

  private admit(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown';
    const slot = this.slots.open(ip);
    if (!slot) {
      this.o.onError?.(new AxleError(ErrorCode.TOO_MANY_CONNECTIONS, 'too many open sockets from this address'), ip);
      socket.destroy();
      return;
    }
    this.socketSlots.set(socket, slot);
    socket.once('close', () => slot.release());
    if (this.o.tls) {
      // Node's own TLS handshake timeout restarts with every byte; this one does not.
      const timer = setTimeout(() => socket.destroy(), this.headersTimeoutMs);
      this.handshakeTimers.set(socket, timer);
      socket.once('close', () => clearTimeout(timer));
      return;
    }
    this.dropIfSilent(socket, slot);
  }

  /** Node's headers timeout only starts with a request: a socket that never sends one is ours to drop. */
  private dropIfSilent(socket: Socket, slot: Slot): void {
    socket.setTimeout(this.headersTimeoutMs, () => {
      if (slot.kind === 'pending') socket.destroy();
    });
  }

  /** A finished TLS handshake: the encrypted socket takes over the TCP socket's slot. */
  private secured(socket: TLSSocket): void {
    const raw = tcpSocketOf(socket);
    const slot = raw && this.socketSlots.get(raw);
    if (!raw || !slot) {
      // Never serve a socket that is not counted.
      socket.destroy();
      return;
    }
    clearTimeout(this.handshakeTimers.get(raw));
    this.socketSlots.set(socket, slot);
    this.dropIfSilent(socket, slot);
  }

  /** A failed TLS handshake; plain HTTP gets an answer that says what is wrong. The close gives the slot back. */
  private tlsFailed(e: Error & { code?: string }, socket: TLSSocket): void {
    const raw = tcpSocketOf(socket);
    const ip = raw?.remoteAddress ?? 'unknown';
    this.o.onError?.(new AxleError(ErrorCode.TLS, `TLS handshake failed: ${e.code ?? e.message}`), ip);
    if (e.code === 'ERR_SSL_HTTP_REQUEST' && raw && !raw.destroyed && raw.writable) {
      raw.end(PLAIN_ON_TLS, () => raw.destroy());
      return;
    }
    raw?.destroy();
  }

  /** The request boundary: whatever the handler throws, now or later, answers this request only. */
  private serve(req: IncomingMessage, res: ServerResponse): void {
    const slot = this.socketSlots.get(req.socket);
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
    const slot = this.socketSlots.get(socket);
    if (!slot) return refuse(503, 'Not Admitted');
    (socket as Socket).setTimeout(0);
    const refused = slot.toHandshake();
    if (refused) return refuse(429, refused);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.handshake(ws, ip, slot).then(
        () => undefined,
        () => undefined,
      );
    });
  }

  /** Runs the server side of the challenge; no other message is accepted before it ends. */
  private async handshake(ws: WebSocket, ip: string, slot: Slot): Promise<void> {
    ws.on('error', () => undefined);
    const nonce = newNonce();
    const hello = makeHello(this.o.id, this.o.keyPair, nonce);
    const timer = setTimeout(() => {
      this.o.onError?.(new AxleError(ErrorCode.HANDSHAKE_TIMEOUT, 'handshake not completed in time'), ip);
      ws.close(CloseCode.HANDSHAKE_TIMEOUT, 'handshake timeout');
      ws.terminate();
    }, this.o.handshakeTimeoutMs);
    try {
      const first = await new Promise<Buffer>((resolve, reject) => {
        // Removed once the answer came: every connection closes some day, and an error built then is waste.
        const closed = () => reject(new AxleError(ErrorCode.CLOSED, 'closed during handshake'));
        ws.once('message', (data, isBinary) => {
          ws.off('close', closed);
          isBinary ? resolve(toBuffer(data)) : reject(new AxleError(ErrorCode.MALFORMED, 'text frame'));
        });
        ws.once('close', closed);
        ws.send(this.codec.encode(hello));
      });
      const auth = readHandshake(this.codec, first, 'auth');
      const crypto = this.o.cryptoRoles?.includes(auth.role) === false ? undefined : this.o.crypto;
      if (!(await checkAuth(crypto, auth, nonce, this.o.keyPair.publicKey))) {
        throw new AxleError(ErrorCode.BAD_SIGNATURE, `handshake signature from ${auth.id} does not verify`);
      }
      const decision = await this.o.authenticate({
        id: auth.id,
        role: auth.role,
        pubkey: auth.pubkey,
        remoteAddress: ip,
      });
      const welcome = await signWelcome(crypto, auth, nonce, this.signer);
      if (ws.readyState !== ws.OPEN) throw new AxleError(ErrorCode.CLOSED, 'closed during handshake');
      ws.send(this.codec.encode(welcome));
      clearTimeout(timer);
      slot.promote();
      const peer: PeerInfo = { id: auth.id, role: decision.role, pubkey: auth.pubkey, remoteAddress: ip };
      const conn = new Connection({
        socket: ws,
        codec: this.codec,
        signer: this.signer,
        selfId: this.o.id,
        peer,
        context: sessionContext(auth.nonce, nonce),
        isClient: false,
        keepaliveMs: this.o.keepaliveMs,
        ...(this.o.requestTimeoutMs ? { defaultTimeoutMs: this.o.requestTimeoutMs } : {}),
        ...(crypto ? { crypto } : {}),
      });
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
    } catch (e) {
      clearTimeout(timer);
      slot.release();
      const err = e instanceof AxleError ? e : new AxleError(ErrorCode.INTERNAL, errorText(e));
      this.o.onError?.(err, ip);
      if (ws.readyState === ws.OPEN) {
        const code = err.code === ErrorCode.BAD_SIGNATURE ? CloseCode.HANDSHAKE_FAILED : closeCodeFor(err.code);
        ws.close(code, closeReason(err.message));
      }
    }
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

function tlsOptions(tls: ServerTls): { cert: Buffer | string; key: Buffer | string; minVersion: 'TLSv1.2' } {
  return { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' };
}

/**
 * The TCP socket under a server-side TLS socket: the one counted in the slots. Node keeps it as
 * `_parent`; without it the TLS socket is refused rather than served uncounted.
 */
function tcpSocketOf(socket: TLSSocket): Socket | undefined {
  const parent = (socket as TLSSocket & { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : undefined;
}
