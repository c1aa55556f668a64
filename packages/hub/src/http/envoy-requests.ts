import {
  AxleError,
  ENVOY_REQUEST_PATH,
  ErrorCode,
  HANDLED,
  SIGNED_CONTENT_TYPE,
  SIGNED_REQUEST_MAX_BYTES,
  openRequest,
  readBody,
  requireCanonicalEnvoyId,
  sealReply,
  type FrameCrypto,
  type Message,
  type Router,
} from '@axle/shared';
import type { Enrollment } from '../placement/enroll.js';

export interface EnvoyRequestDeps {
  enrollment: Enrollment;
  /** Checks envoys' signatures and signs the answers (the hub's worker pool). */
  crypto: FrameCrypto;
  /** This hub's key, named in every answer so the envoy can check it is one it pins. */
  publicKey: Uint8Array;
}

/**
 * POST /api/v1/envoy: what an envoy asks its hub, enroll or locate, as one signed request with a
 * signed answer (shared/signed-request.ts) rather than a WebSocket session per question. No
 * API token: the join token inside an enroll, and the envoy's key for a locate, are the
 * authority. A standby refuses it like any write (421, naming the primary).
 */
export function envoyRequestRoutes(r: Router, d: EnvoyRequestDeps): void {
  r.post(ENVOY_REQUEST_PATH, async (ctx) => {
    const req = await openRequest(await readBody(ctx.req, SIGNED_REQUEST_MAX_BYTES), d.crypto);
    if (req.role !== 'envoy')
      throw new AxleError(ErrorCode.INVALID, `only envoys ask the hub here, not a ${req.role.slice(0, 32)}`);
    requireCanonicalEnvoyId(req.id);
    const asker = { id: req.id, pubkey: req.pubkey, remoteAddress: ctx.req.socket.remoteAddress ?? 'unknown' };
    let answer: Message;
    if (req.msg.type === 'enroll') answer = await d.enrollment.enroll(req.msg, asker);
    else if (req.msg.type === 'locate') answer = d.enrollment.locate(req.msg, asker);
    else
      throw new AxleError(
        ErrorCode.INVALID,
        `the hub answers envoys only enroll and locate, not ${req.msg.type}; send check-ins and reports to your spoke`,
      );
    const body = await sealReply(d.crypto, d.publicKey, req, answer);
    ctx.res.writeHead(200, {
      'content-type': SIGNED_CONTENT_TYPE,
      'content-length': body.length,
      'cache-control': 'no-store',
    });
    ctx.res.end(body);
    return HANDLED;
  });
}
