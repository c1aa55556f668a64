import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CloseCode, closeCodeFor } from './close-codes.js';
import { Codec, type CodecLimits } from './codec.js';
import { Connection, type PeerInfo } from './connection.js';
import { toBuffer } from './frame-socket.js';
import { makeHello, makeWelcome, newNonce, readHandshake, sessionContext, verifyAuth } from './handshake.js';
import type { KeyPair } from './keys.js';
import { Signer } from './sign.js';

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
   */
  authenticate: (claim: PeerClaim) => Promise<{ role: string }> | { role: string };
  onConnection: (conn: Connection) => void;
  /** Plain HTTP routes on the same port (API, /metrics, /healthz, bootstrap). */
  http?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Path that WebSocket upgrades must use (default "/ws"). */
  wsPath?: string;
  maxConnectionsPerIp?: number;
  maxHandshakesPerIp?: number;
  handshakeTimeoutMs?: number;
  keepaliveMs?: number;
  requestTimeoutMs?: number;
  onError?: (e: AxleError, remoteAddress: string) => void;
}

interface IpCount {
  conns: number;
  handshakes: number;
}

/**
 * One http.Server per daemon: HTTP routes and signed WebSocket connections on one port.
 * Connection and handshake caps per source address keep one host from exhausting the
 * daemon's file descriptors.
 */
export class AxleServer {
  readonly http: Server;
  readonly codec: Codec;
  readonly connections = new Set<Connection>();
  private readonly wss: WebSocketServer;
  private readonly signer: Signer;
  private readonly perIp = new Map<string, IpCount>();
  private readonly o: Required<
    Pick<
      AxleServerOptions,
      'maxConnectionsPerIp' | 'maxHandshakesPerIp' | 'handshakeTimeoutMs' | 'keepaliveMs' | 'wsPath'
    >
  > &
    AxleServerOptions;
  private accepting = true;

  constructor(options: AxleServerOptions) {
    this.o = {
      maxConnectionsPerIp: 512,
      maxHandshakesPerIp: 64,
      handshakeTimeoutMs: 5000,
      keepaliveMs: 3000,
      wsPath: '/ws',
      ...options,
    };
    this.codec = new Codec(options.limits);
    this.signer = new Signer(options.keyPair);
    // The signature adds 64 bytes to each body, so the socket limit is the frame limit plus that.
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.codec.limits.maxFrameBytes + 64,
      perMessageDeflate: false,
    });
    this.http = createServer((req, res) => {
      if (this.o.http) this.o.http(req, res);
      else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: ErrorCode.NOT_FOUND, message: 'no such route' } }));
      }
    });
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.http.on('clientError', (_e, socket) => socket.destroy());
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.o.port, this.o.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    return this.address();
  }

  address(): { host: string; port: number } {
    const a = this.http.address();
    if (a === null || typeof a === 'string') throw new AxleError(ErrorCode.INTERNAL, 'server is not listening');
    return { host: a.address, port: a.port };
  }

  private count(ip: string): IpCount {
    let c = this.perIp.get(ip);
    if (!c) this.perIp.set(ip, (c = { conns: 0, handshakes: 0 }));
    return c;
  }

  private release(ip: string): void {
    const c = this.perIp.get(ip);
    if (c && c.conns <= 0 && c.handshakes <= 0) this.perIp.delete(ip);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ip = req.socket.remoteAddress ?? 'unknown';
    const path = (req.url ?? '/').split('?')[0];
    const refuse = (status: number, why: string) => {
      socket.end(`HTTP/1.1 ${status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (!this.accepting) return refuse(503, 'Shutting Down');
    if (path !== this.o.wsPath) return refuse(404, 'Not Found');
    const c = this.count(ip);
    if (c.conns + c.handshakes >= this.o.maxConnectionsPerIp) return refuse(429, 'Too Many Connections');
    if (c.handshakes >= this.o.maxHandshakesPerIp) return refuse(429, 'Too Many Handshakes');
    c.handshakes++;
    socket.on('error', () => socket.destroy());
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.handshake(ws, ip).then(
        () => undefined,
        () => undefined,
      );
    });
  }

  /** Runs the server side of the challenge; no other message is accepted before it ends. */
  private async handshake(ws: WebSocket, ip: string): Promise<void> {
    const c = this.count(ip);
    let handshaking = true;
    const done = () => {
      if (handshaking) {
        handshaking = false;
        c.handshakes--;
      }
    };
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
        ws.once('message', (data, isBinary) =>
          isBinary ? resolve(toBuffer(data)) : reject(new AxleError(ErrorCode.MALFORMED, 'text frame')),
        );
        ws.once('close', () => reject(new AxleError(ErrorCode.CLOSED, 'closed during handshake')));
        ws.send(this.codec.encode(hello));
      });
      const auth = readHandshake(this.codec, first, 'auth');
      if (!verifyAuth(auth, nonce, this.o.keyPair.publicKey)) {
        throw new AxleError(ErrorCode.BAD_SIGNATURE, `handshake signature from ${auth.id} does not verify`);
      }
      const decision = await this.o.authenticate({
        id: auth.id,
        role: auth.role,
        pubkey: auth.pubkey,
        remoteAddress: ip,
      });
      if (ws.readyState !== ws.OPEN) throw new AxleError(ErrorCode.CLOSED, 'closed during handshake');
      ws.send(this.codec.encode(makeWelcome(auth, nonce, this.signer)));
      clearTimeout(timer);
      done();
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
      });
      c.conns++;
      this.connections.add(conn);
      conn.on('protocol_error', (e: AxleError) => this.o.onError?.(e, ip));
      void conn.closed.then(() => {
        this.connections.delete(conn);
        c.conns--;
        this.release(ip);
      });
      this.o.onConnection(conn);
    } catch (e) {
      clearTimeout(timer);
      done();
      const err = e instanceof AxleError ? e : new AxleError(ErrorCode.INTERNAL, errorText(e));
      this.o.onError?.(err, ip);
      if (ws.readyState === ws.OPEN) {
        const code = err.code === ErrorCode.BAD_SIGNATURE ? CloseCode.HANDSHAKE_FAILED : closeCodeFor(err.code);
        ws.close(code, err.message.slice(0, 120));
      }
      this.release(ip);
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
