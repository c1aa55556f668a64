import type { SecretRemoved } from '@axle/shared';
import {
  MAX_SECRET_BYTES,
  arr,
  custom,
  globField,
  obj,
  secretNameSchema,
  type Infer,
  type Router,
  type SecretList,
  type SecretRequest,
  type SecretView,
} from '@axle/shared';
import { body, route, type ApiDeps, type BodyMatches } from './api.js';

/** The value as base64; a bad one is refused without ever echoing it (error texts reach logs). */
const secretValue = () =>
  custom('secret value', (v) => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new Error('expected the value as base64');
    const bytes = Buffer.from(v, 'base64');
    if (bytes.length === 0 || bytes.length > MAX_SECRET_BYTES) {
      throw new Error(`the value must be 1 to ${MAX_SECRET_BYTES} bytes, got ${bytes.length}`);
    }
    return new Uint8Array(bytes);
  });

const setBody = obj({
  name: secretNameSchema,
  value: secretValue(),
  hosts: arr(globField(), { min: 1, max: 100 }),
});
const _contract: BodyMatches<Infer<typeof setBody>, SecretRequest, 'value'> = true;

/** Secrets (secrets.ts): admin only, and no answer ever carries a value. */
export function secretRoutes(r: Router, d: ApiDeps): void {
  r.get(
    '/api/v1/secrets',
    route(d, 'admin', () => ({ secrets: d.secrets.list() }) satisfies SecretList),
  );
  r.post(
    '/api/v1/secrets',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, setBody);
      return { secret: await d.secrets.set(b.name, b.value, b.hosts, tok.name) } satisfies { secret: SecretView };
    }),
  );
  r.delete(
    '/api/v1/secrets/:name',
    route(d, 'admin', async (ctx, tok) => {
      const name = ctx.params.name as string;
      await d.secrets.remove(name, tok.name);
      return { removed: name } satisfies SecretRemoved;
    }),
  );
}
