import { createSecureContext, type SecureContext } from 'node:tls';
import WebSocket from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CLOSE_REASONS, errorForClose } from './close-codes.js';
import { Codec, type CodecLimits } from './codec.js';
import { Connection } from './connection.js';
import type { ConnectionHandlers } from './connection-types.js';
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
  /**
   * The CA certificates (PEM) the server's certificate must chain to. Given, the connection is
   * wss:// and the certificate must name the host of `addr`; omitted, plain ws:// (only for a
   * daemon whose config says `insecure_transport: true`).
   */
  ca?: Buffer | string | undefined;
  path?: string;
  handshakeTimeoutMs?: number;
  keepaliveMs?: number;
  requestTimeoutMs?: number;
  signal?: AbortSignal;
  /** Attached before the connection is handed over, so no frame arrives without them. */
  handlers?: ConnectionHandlers;
}

/**
 * One TLS context per CA text: building one parses the PEM and fills an X509 store, which
 * costs as much as the rest of a TLS handshake, and hubs and spokes dial with the same CA all
 * day. Keyed by the text, so a CA file replaced on disk (SIGHUP) gets its own.
 */
const secureContexts = new Map<string, SecureContext>();
const SECURE_CONTEXTS_MAX = 16;
export function secureContextFor(ca: Buffer | string): SecureContext {
  const k = ca.toString();
  let c = secureContexts.get(k);
  if (!c) {
    if (secureContexts.size >= SECURE_CONTEXTS_MAX) secureContexts.clear();
    secureContexts.set(k, (c = createSecureContext({ ca, minVersion: 'TLSv1.2' })));
  }
  return c;
}

const codecs = new Map<string, Codec>();
function codecFor(limits: Partial<CodecLimits> | undefined): Codec {
  const k = JSON.stringify(limits ?? {});
  let c = codecs.get(k);
  if (!c) codecs.set(k, (c = new Codec(limits)));
  return c;
}
const signers = new WeakMap<KeyPair, Signer>();
export function signerFor(kp: KeyPair): Signer {
  let s = signers.get(kp);
  if (!s) signers.set(kp, (s = new Signer(kp)));
  return s;
}

/** What each certificate check failure means for the operator, by Node's error code. */
const TLS_REASONS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a CA in ca_file',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a CA in ca_file',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is not signed by a CA in ca_file',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chains to a CA that is not in ca_file',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it serves a self-signed certificate that is not in ca_file',
  CERT_SIGNATURE_FAILURE: 'its certificate signature does not verify',
  CERT_HAS_EXPIRED: 'its certificate has expired; issue a new one (axle-hub ca issue) and send it SIGHUP',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet; check the clocks',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another name',
};

/** A TLS failure as the operator needs it: which check failed and what to do; undefined when it is not one. */
export function tlsFailure(
  addr: string,
  e: Error & { code?: string; cert?: { subjectaltname?: string } },
): AxleError | undefined {
  const code = e.code ?? '';
  const known = TLS_REASONS[code];
  if (known) {
    const names = e.cert?.subjectaltname;
    const detail =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? ` (it names ${names || 'nothing'}; issue one with --host for the name in the address)`
        : '';
    return new AxleError(ErrorCode.TLS, `TLS to ${addr} refused: ${known}${detail} [${code}]`, { cause: e });
  }
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    return new AxleError(
      ErrorCode.TLS,
      `TLS to ${addr} failed (${e.message.split('\n')[0]}); does it speak TLS? Both sides need tls set, or both insecure_transport: true`,
      { cause: e },
    );
  }
  return undefined;
}

export function netError(addr: string, e: Error & { code?: string }): AxleError {
  const tls = tlsFailure(addr, e);
  if (tls) return tls;
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
    const ws = new WebSocket(`${o.ca ? 'wss' : 'ws'}://${addr}${o.path ?? '/ws'}`, {
      perMessageDeflate: false,
      maxPayload: codec.limits.maxFrameBytes + 64,
      handshakeTimeout: timeoutMs,
      ...(o.ca ? { secureContext: secureContextFor(o.ca) } : {}),
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
          `${addr} refused the connection: HTTP ${res.statusCode} ${res.statusMessage ?? ''}${
            !o.ca && res.statusCode === 400 ? ' (does it speak TLS only? then this side needs tls/ca_file too)' : ''
          }`.trim(),
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
          ...(o.handlers ? { handlers: o.handlers } : {}),
        });
        resolve(conn);
      } catch (e) {
        fail(e instanceof AxleError ? e : new AxleError(ErrorCode.MALFORMED, errorText(e)));
      }
    });
  });
}
