import {
  AxleError,
  ErrorCode,
  HttpError,
  int,
  obj,
  opt,
  readBody,
  str,
  type ConfigVersionView,
  type ConfigVersions,
  type Infer,
  type PublishRequest,
  type PublishResultView,
  type RollbackRequest,
  type Router,
} from '@axle/shared';
import { body, route, type ApiDeps, type BodyMatches } from './api.js';
import type { PublishResult } from '../jobs/config-publish.js';
import type { ConfigBundleMeta } from '../store/model.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../store/webhooks.js';

const publishBody = obj({ dir: opt(str({ min: 1, max: 1024 })) });
const rollbackBody = obj({ version: int({ min: 1 }) });
const _publish: BodyMatches<Infer<typeof publishBody>, PublishRequest> = true;
const _rollback: BodyMatches<Infer<typeof rollbackBody>, RollbackRequest> = true;
/** A signed publish request older than this is refused, so a captured one cannot be replayed later. */
const WEBHOOK_MAX_AGE_S = 300;

function metaView(b: ConfigBundleMeta): ConfigVersionView {
  return {
    version: b.version,
    hash: Buffer.from(b.hash).toString('hex'),
    signature: Buffer.from(b.signature).toString('base64'),
    files: b.files,
    publishedAt: b.publishedAt,
    by: b.by,
    source: b.source,
    ...(b.from !== undefined ? { from: b.from } : {}),
    ...(b.stage !== undefined ? { stage: b.stage } : {}),
    ...(b.rollout !== undefined ? { rollout: b.rollout } : {}),
    ...(b.revert !== undefined ? { revert: b.revert } : {}),
    bytes: b.bytes,
  };
}

function resultView(r: PublishResult): PublishResultView {
  return { version: r.version, unchanged: r.unchanged, bundle: metaView(r.bundle), spokes: r.spokes };
}

export function configRoutes(r: Router, d: ApiDeps): void {
  r.post(
    '/api/v1/config/publish',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, publishBody);
      return resultView(await d.publisher.publish({ ...(b.dir ? { dir: b.dir } : {}), by: tok.name }));
    }),
  );

  r.get(
    '/api/v1/config/versions',
    route(d, 'viewer', () => {
      const current = d.publisher.current();
      return {
        current: current?.version ?? 0,
        versions: d.publisher.versions().map((v) => ({ ...metaView(v), hashHex: v.hashHex, signer: v.signer })),
        spokes: d.publisher.spokeVersions(),
      } satisfies ConfigVersions;
    }),
  );

  r.post(
    '/api/v1/config/rollback',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, rollbackBody);
      return resultView(await d.publisher.rollback(b.version, tok.name));
    }),
  );

  // For CI: a git push publishes config_dir. Authenticated by HMAC over "<timestamp>.<body>"
  // with config_publish.webhook_secret, not by an API token.
  r.post('/api/v1/webhooks/publish', async (ctx) => {
    const secret = d.config().config_publish.webhook_secret;
    if (!secret)
      throw new HttpError(
        404,
        ErrorCode.NOT_FOUND,
        'the publish webhook is off; set config_publish.webhook_secret in the hub config',
      );
    const raw = (await readBody(ctx.req, d.config().api.max_body_bytes)).toString('utf8');
    const ts = String(ctx.req.headers[TIMESTAMP_HEADER] ?? '');
    const sig = String(ctx.req.headers[SIGNATURE_HEADER] ?? '');
    if (!/^\d{1,12}$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > WEBHOOK_MAX_AGE_S) {
      throw new HttpError(
        401,
        ErrorCode.NOT_AUTHENTICATED,
        `missing or stale ${TIMESTAMP_HEADER} (unix seconds, within ${WEBHOOK_MAX_AGE_S} s of the hub's clock)`,
      );
    }
    if (!verifyWebhook(secret, ts, raw, sig)) {
      throw new HttpError(
        401,
        ErrorCode.NOT_AUTHENTICATED,
        `bad ${SIGNATURE_HEADER}: sign "<timestamp>.<body>" with HMAC-SHA256 and the webhook secret, sent as sha256=<hex>`,
      );
    }
    try {
      return resultView(await d.publisher.publish({ by: 'webhook', source: 'webhook' }));
    } catch (e) {
      if (e instanceof AxleError && e.code === ErrorCode.INVALID) throw new HttpError(422, e.code, e.message);
      throw e;
    }
  });
}
