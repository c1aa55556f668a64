import {
  Codec,
  Connection,
  makeAuth,
  newNonce,
  readHandshake,
  sessionContext,
  Signer,
  verifyWelcome,
  type FrameSocket,
  type KeyPair,
  type Message,
} from '@axle/shared';
import type { SecureContext } from 'node:tls';
import WebSocket from 'ws';

/**
 * Envoy connections for load generators whose frames are signed ahead of the measured window:
 * the real protocol code (a `Connection`) writes into a recorder instead of the socket, the
 * recorded frames are sent later as bytes, and the replies are fed back afterwards, where the
 * same `Connection` checks every signature and sequence number and settles each request.
 */
const codec = new Codec();

type Listener = (...args: unknown[]) => void;

/** A FrameSocket that keeps what the Connection writes, and lets replies be fed to it later. */
export class Recorder implements FrameSocket {
  readyState = 1;
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  private readonly listeners = new Map<string, Listener>();
  send(data: Uint8Array): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
  terminate(): void {
    this.readyState = 3;
  }
  ping(): void {}
  on(event: string, fn: (...args: never[]) => void): this {
    this.listeners.set(event, fn as Listener);
    return this;
  }
  off(): this {
    return this;
  }
  feed(frame: Buffer): void {
    this.listeners.get('message')?.(frame, true);
  }
}

export interface Envoy {
  hostname: string;
  key: KeyPair;
  ws?: WebSocket;
  rec: Recorder;
  conn?: Connection;
  /** Replies of the current phase, in arrival order. */
  replies: Buffer[];
  /** Resolves the step waiting for this envoy's next reply. */
  waiting: (() => void) | undefined;
  /** Steps of one envoy run one at a time, in the order their frames were signed. */
  chain: Promise<void>;
}

export interface Step {
  frame: Uint8Array;
  answer: Promise<Message>;
}

/** The envoy side of the handshake over a WebSocket (wss with a CA), then a Connection over the recorder. */
export async function open(
  addr: string,
  spokePub: Uint8Array,
  e: Envoy,
  tls: SecureContext | undefined,
): Promise<void> {
  const signer = new Signer(e.key);
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://${addr}/ws`, {
    perMessageDeflate: false,
    handshakeTimeout: 60_000,
    ...(tls ? { secureContext: tls } : {}),
  });
  const nonce = newNonce();
  const frames: Buffer[] = [];
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  const next = async (): Promise<Buffer> => {
    while (frames.length === 0) {
      if (failed) {
        ws.terminate();
        throw failed;
      }
      await new Promise<void>((r) => (wake = r));
    }
    return frames.shift()!;
  };
  ws.on('message', (d: Buffer) => {
    if (e.conn) {
      e.replies.push(d);
      const w = e.waiting;
      e.waiting = undefined;
      w?.();
    } else {
      frames.push(d);
      wake?.();
    }
  });
  ws.on('error', (err) => {
    failed = err;
    wake?.();
  });
  ws.on('close', (code, reason) => {
    closes.set(`${code} ${reason.toString()}`, (closes.get(`${code} ${reason.toString()}`) ?? 0) + 1);
    e.rec.readyState = 3;
    failed ??= new Error(`closed during the handshake (${code} ${reason.toString()})`);
    wake?.();
    e.waiting?.();
  });
  const hello = readHandshake(codec, await next(), 'hello');
  if (!Buffer.from(hello.pubkey).equals(Buffer.from(spokePub))) throw new Error('the spoke presented another key');
  ws.send(codec.encode(makeAuth(hello, e.hostname, 'envoy', signer, nonce)));
  const welcome = readHandshake(codec, await next(), 'welcome');
  if (!verifyWelcome(welcome, nonce, hello, e.key.publicKey)) throw new Error('welcome does not verify');
  e.ws = ws;
  e.conn = new Connection({
    socket: e.rec,
    codec,
    signer,
    selfId: e.hostname,
    peer: { id: hello.id, role: 'server', pubkey: hello.pubkey, remoteAddress: addr },
    context: sessionContext(nonce, hello.nonce),
    isClient: true,
    keepaliveMs: 0,
    defaultTimeoutMs: 3_600_000,
  });
}

/** Why connections closed, and how many each way. */
export const closes = new Map<string, number>();
export const closeText = () => [...closes].map(([why, n]) => `${n} closed (${why})`).join(', ');

/** Signs a request now (into the recorder); its answer settles once the reply is fed back. */
export function prepare(e: Envoy, msg: Message): Step {
  e.rec.sent.length = 0;
  const answer = e.conn!.request(msg);
  answer.catch(() => undefined);
  const frame = e.rec.sent[0];
  if (!frame) throw new Error(`the connection of ${e.hostname} is closed; ${closeText()}`);
  return { frame, answer };
}
