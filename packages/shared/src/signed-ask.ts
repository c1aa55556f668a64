import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { netError, secureContextFor, signerFor } from './client.js';
import { AxleError, ERRORS, ErrorCode } from './errors.js';
import type { KeyPair } from './keys.js';
import type { Message } from './messages.js';
import { SIGNED_CONTENT_TYPE, SIGNED_REPLY_MAX_BYTES, openReply, sealRequest } from './signed-request.js';

/** Where a hub takes signed envoy requests (hub/src/http/envoy-requests.ts). */
export const ENVOY_REQUEST_PATH = '/api/v1/envoy';

export interface SignedAskOptions {
  id: string;
  role: string;
  keyPair: KeyPair;
  /** The fleet CA: https:// checked against it; omitted, plain http:// (insecure_transport). */
  ca?: Buffer | string | undefined;
  /** Which server keys to accept the answer from. */
  trusts: (key: Uint8Array) => boolean;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * One question per connection (nothing is left open on the hub for a host that asks once), but
 * through long-lived agents: `agent: false` builds an agent per request, which here halved the
 * rate of fresh TLS requests a process could make (bench/enroll's envoys).
 */
const httpAgent = new HttpAgent({ keepAlive: false });
const httpsAgent = new HttpsAgent({ keepAlive: false });

interface Raw {
  status: number;
  type: string;
  date: number;
  body: Buffer;
}

function post(addr: string, body: Buffer, o: SignedAskOptions): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const [host, port] = splitAddr(addr);
    const common = {
      host,
      port,
      method: 'POST',
      path: ENVOY_REQUEST_PATH,
      headers: { 'content-type': SIGNED_CONTENT_TYPE, 'content-length': String(body.length), connection: 'close' },
      timeout: o.timeoutMs,
      ...(o.signal ? { signal: o.signal } : {}),
    };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > SIGNED_REPLY_MAX_BYTES) {
          res.destroy();
          reject(
            new AxleError(ErrorCode.FRAME_TOO_LARGE, `${addr} answered with over ${SIGNED_REPLY_MAX_BYTES} bytes`),
          );
        } else chunks.push(c);
      });
      res.on('error', (e) => reject(netError(addr, e)));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 500,
          type: String(res.headers['content-type'] ?? ''),
          date: Date.parse(String(res.headers.date ?? '')),
          body: Buffer.concat(chunks),
        }),
      );
    };
    // Passed through to tls.connect (not in https' option types): the CA parsed once, not per request.
    const withCa = o.ca ? { ...common, agent: httpsAgent, secureContext: secureContextFor(o.ca) } : undefined;
    const req = withCa ? httpsRequest(withCa, onResponse) : httpRequest({ ...common, agent: httpAgent }, onResponse);
    req.on('timeout', () =>
      req.destroy(new AxleError(ErrorCode.TIMEOUT, `${addr} did not answer within ${o.timeoutMs} ms`)),
    );
    req.on('error', (e: Error & { code?: string }) => {
      if (e instanceof AxleError) reject(e);
      else if (o.signal?.aborted) reject(new AxleError(ErrorCode.CLOSED, 'stopped'));
      else reject(netError(addr, e));
    });
    req.end(body);
  });
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return [host, Number(addr.slice(i + 1))];
}

/** The error a refusal carries, as the AxleError it stood for on the server. */
function refusal(addr: string, raw: Raw): AxleError {
  let err: { code?: unknown; message?: unknown } | undefined;
  try {
    err = (JSON.parse(raw.body.toString('utf8')) as { error?: typeof err }).error;
  } catch {
    // Not one of ours (a proxy's page): the status is all there is.
  }
  const code = typeof err?.code === 'string' && Object.hasOwn(ERRORS, err.code) ? (err.code as ErrorCode) : undefined;
  const message = typeof err?.message === 'string' ? err.message.slice(0, 1000) : `HTTP ${raw.status}`;
  if (code) return new AxleError(code, message);
  return new AxleError(
    raw.status === 404 ? ErrorCode.UNREACHABLE : ErrorCode.BAD_MESSAGE,
    `${addr} answered HTTP ${raw.status} (${message}); is it an Axle hub of this release?`,
  );
}

/**
 * Asks `addr` one signed question and returns its signed answer (shared/signed-request.ts).
 * A refusal for the date is asked once more, dated by the server's clock (its Date header):
 * a host whose clock is wrong still enrolls, and the hub still refuses stale replays.
 */
export async function askSigned(addr: string, msg: Message, o: SignedAskOptions): Promise<Message> {
  const signer = signerFor(o.keyPair);
  let at = Date.now();
  for (let attempt = 0; ; attempt++) {
    const { body, nonce } = sealRequest(signer, o.id, o.role, msg, at);
    const raw = await post(addr, body, o);
    if (raw.status === 200 && raw.type.startsWith(SIGNED_CONTENT_TYPE))
      return openReply(raw.body, o.keyPair.publicKey, nonce, o.trusts, addr).msg;
    const e = refusal(addr, raw);
    if (e.code !== ErrorCode.CLOCK_SKEW || attempt > 0 || Number.isNaN(raw.date)) throw e;
    at = raw.date + 500;
  }
}
