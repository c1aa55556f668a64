import WebSocket from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CLOSE_REASONS, errorForClose } from './close-codes.js';
import { Codec, type CodecLimits } from './codec.js';
import { Connection } from './connection.js';
import { toBuffer } from './frame-socket.js';
import { makeAuth, newNonce, readHandshake, sessionContext, verifyWelcome } from './handshake.js';
import type { KeyPair } from './keys.js';
import { Signer } from './sign.js';
import { fingerprint } from './keys.js';

export interface ConnectOptions {
  id: string;
  role: string;
  keyPair: KeyPair;
  /**
   * The server key(s) this client will talk to. A function decides per key (trust on first
   * use, a list from config); omitted, any server that completes the handshake is accepted.
   */
  expectServerKey?: Uint8Array | ((pubkey: Uint8Array, serverId: string) => boolean);
  limits?: Partial<CodecLimits>;
  path?: string;
  handshakeTimeoutMs?: number;
  keepaliveMs?: number;
  requestTimeoutMs?: number;
  signal?: AbortSignal;
}

const codecs = new Map<string, Codec>();
function codecFor(limits: Partial<CodecLimits> | undefined): Codec {
  const k = JSON.stringify(limits ?? {});
  let c = codecs.get(k);
  if (!c) codecs.set(k, (c = new Codec(limits)));
  return c;
}
const signers = new WeakMap<KeyPair, Signer>();
function signerFor(kp: KeyPair): Signer {
  let s = signers.get(kp);
  if (!s) signers.set(kp, (s = new Signer(kp)));
  return s;
}

function netError(addr: string, e: Error & { code?: string }): AxleError {
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new AxleError(
      ErrorCode.UNRESOLVABLE,
      `cannot resolve the host of ${addr}; check the address in the config and DNS`,
      { cause: e },
    );
  }
  return new AxleError(ErrorCode.UNREACHABLE, `cannot reach ${addr}: ${e.message}`, { cause: e });
}

/** Opens a signed connection to `addr` ("host:port") and completes the handshake. */
export function connectPeer(addr: string, o: ConnectOptions): Promise<Connection> {
  const codec = codecFor(o.limits);
  const signer = signerFor(o.keyPair);
  const timeoutMs = o.handshakeTimeoutMs ?? 5000;
  return new Promise<Connection>((resolve, reject) => {
    if (o.signal?.aborted) return reject(new AxleError(ErrorCode.CLOSED, 'connect aborted'));
    const ws = new WebSocket(`ws://${addr}${o.path ?? '/ws'}`, {
      perMessageDeflate: false,
      maxPayload: codec.limits.maxFrameBytes + 64,
      handshakeTimeout: timeoutMs,
    });
    let settled = false;
    const fail = (e: AxleError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      ws.removeAllListeners('message');
      ws.on('error', () => undefined);
      ws.terminate();
      reject(e);
    };
    const onAbort = () => fail(new AxleError(ErrorCode.CLOSED, 'connect aborted'));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () =>
        fail(
          new AxleError(ErrorCode.HANDSHAKE_TIMEOUT, `handshake with ${addr} did not complete within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    ws.on('error', (e: Error & { code?: string }) => fail(netError(addr, e)));
    ws.on('unexpected-response', (_req, res) =>
      fail(
        new AxleError(
          ErrorCode.UNREACHABLE,
          `${addr} refused the connection: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim(),
        ),
      ),
    );
    ws.on('close', (code, reason) => {
      const why = reason.toString() || (CLOSE_REASONS as Record<number, string>)[code] || 'closed';
      fail(new AxleError(errorForClose(code), `${addr} closed the connection during the handshake (${code}): ${why}`));
    });
    const nonce = newNonce();
    let step: 'hello' | 'welcome' = 'hello';
    let hello: ReturnType<typeof readHandshake<'hello'>> | undefined;
    ws.on('message', (data, isBinary) => {
      if (settled) return;
      try {
        if (!isBinary) throw new AxleError(ErrorCode.MALFORMED, 'text frame during handshake');
        const buf = toBuffer(data);
        if (step === 'hello') {
          hello = readHandshake(codec, buf, 'hello');
          const expect = o.expectServerKey;
          const ok =
            expect === undefined ||
            (typeof expect === 'function'
              ? expect(hello.pubkey, hello.id)
              : Buffer.from(expect).equals(Buffer.from(hello.pubkey)));
          if (!ok) {
            throw new AxleError(
              ErrorCode.UNTRUSTED,
              `${addr} (${hello.id}) presented key ${fingerprint(hello.pubkey)}, which this ${o.role} does not trust`,
            );
          }
          step = 'welcome';
          ws.send(codec.encode(makeAuth(hello, o.id, o.role, signer, nonce)));
          return;
        }
        const welcome = readHandshake(codec, buf, 'welcome');
        if (!hello || !verifyWelcome(welcome, nonce, hello, o.keyPair.publicKey)) {
          throw new AxleError(ErrorCode.BAD_SIGNATURE, `${addr} could not prove it holds its key`);
        }
        settled = true;
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        ws.removeAllListeners();
        const conn = new Connection({
          socket: ws,
          codec,
          signer,
          selfId: o.id,
          peer: { id: hello.id, role: 'server', pubkey: hello.pubkey, remoteAddress: addr },
          context: sessionContext(nonce, hello.nonce),
          isClient: true,
          ...(o.keepaliveMs !== undefined ? { keepaliveMs: o.keepaliveMs } : {}),
          ...(o.requestTimeoutMs !== undefined ? { defaultTimeoutMs: o.requestTimeoutMs } : {}),
        });
        resolve(conn);
      } catch (e) {
        fail(e instanceof AxleError ? e : new AxleError(ErrorCode.MALFORMED, errorText(e)));
      }
    });
  });
}
