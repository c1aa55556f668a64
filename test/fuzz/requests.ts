import fc from 'fast-check';
import type { RouteInfo } from '@axle/shared';
import { hostileValue } from './values.js';

/**
 * HTTP requests generated from a daemon's own route table (GET /api/v1/routes, GET /routes):
 * every route, with malformed paths, percent-escapes, parameters, queries, headers, methods and
 * bodies, sent with no token, a viewer token, an admin token or a garbage one. A route added
 * tomorrow is fuzzed tomorrow.
 */
export type Auth = 'none' | 'viewer' | 'admin' | 'garbage';

export interface FuzzRequest {
  method: string;
  target: string;
  auth: Auth;
  headers: string[];
  body?: Buffer;
  route: string;
}

/** Query parameter names the routes read, plus noise; unknown names must be harmless too. */
const QUERY_NAMES = [
  'limit',
  'cursor',
  'runs',
  'runs_cursor',
  'match',
  'trait',
  'spoke',
  'compliance',
  'noncompliant',
  'seen_after',
  'seen_before',
  'after',
  'type',
  'since',
  'ttl_s',
  'wait',
  'token',
  'range',
];
/** Keys the API's bodies use, so generated bodies get past "unknown key" now and then. */
const BODY_KEYS = [
  'hostname',
  'to',
  'spoke',
  'wait',
  'envoys',
  'pubkey',
  'dir',
  'version',
  'ttl',
  'max_uses',
  'pattern',
  'spokes',
  'note',
  'role',
  'name',
  'token',
  'target',
  'match',
  'action',
  'kind',
  'max_parallel',
  'canary',
  'wave_size',
  'wave_pause',
  'max_failure_rate',
  'auto_rollback',
  'rollback',
];
const WEIRD_TARGETS = [
  '//[',
  '//x:99999/',
  '*',
  '/%',
  '/%%30',
  'http://[::1',
  'http://x:99999/api/v1/envoys',
  '/api/v1/envoys/%E0%A4%A',
  '/api/v1/envoys/%00',
  '/api/v1/../../etc/passwd',
  '/ws',
  `/${'a'.repeat(9000)}`,
];
const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'FOO'];

const segment = (names: string[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...names) },
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
    fc.string({ unit: 'binary', maxLength: 12 }).map((s) => encodeURIComponent(s)),
    fc.constantFrom('%', '%E0%A4%A', '%ZZ', '%2F', '%00', '..', '.', '', 'WEB1.DC1.EXAMPLE.COM.', 'a'.repeat(300)),
  );

const queryValue = fc.oneof(
  fc.integer().map(String),
  fc.constantFrom('-1', '0', '1e309', 'NaN', '1.5', '9'.repeat(30), '', '*', '{a,b}'.repeat(51), 'x=y', '%E0%A4%A'),
  fc.string({ maxLength: 40 }),
);

const body = fc.oneof(
  fc.dictionary(fc.constantFrom(...BODY_KEYS), hostileValue, { maxKeys: 4 }).map((o) => JSON.stringify(o)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('{', '[1,2', 'null', '"x"', '{"__proto__":{"admin":true}}', `{"a":${'['.repeat(5000)}}`),
  fc.string({ unit: 'binary', maxLength: 200 }),
);

export function requestArb(routes: RouteInfo[], names: string[]): fc.Arbitrary<FuzzRequest> {
  const fromRoute = fc.constantFrom(...routes).chain((r) =>
    fc
      .tuple(
        fc.array(segment(names), { minLength: 3, maxLength: 3 }),
        fc.constantFrom<'as-is' | 'double-slash' | 'trailing' | 'extra' | 'upper'>(
          'as-is',
          'as-is',
          'as-is',
          'double-slash',
          'trailing',
          'extra',
          'upper',
        ),
        fc.oneof({ weight: 4, arbitrary: fc.constant(r.method) }, fc.constantFrom(...METHODS)),
      )
      .map(([values, shape, method]) => {
        let i = 0;
        let path = r.path
          .split('/')
          .map((p) => (p.startsWith(':') ? (values[i++ % values.length] as string) : p))
          .join('/');
        if (shape === 'double-slash') path = `/${path}`;
        else if (shape === 'trailing') path = `${path}/`;
        else if (shape === 'extra') path = `${path}/${values[0]}`;
        else if (shape === 'upper') path = path.toUpperCase();
        return { path, method, route: `${r.method} ${r.path}` };
      }),
  );
  const weird = fc
    .tuple(fc.constantFrom(...WEIRD_TARGETS), fc.constantFrom(...METHODS))
    .map(([path, method]) => ({ path, method, route: 'weird' }));
  return fc
    .record({
      where: fc.oneof({ weight: 6, arbitrary: fromRoute }, { weight: 1, arbitrary: weird }),
      query: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_NAMES), fc.string({ maxLength: 8 })), queryValue), {
        maxLength: 4,
      }),
      auth: fc.constantFrom<Auth>('none', 'viewer', 'admin', 'admin', 'garbage'),
      headers: fc.array(
        fc.constantFrom(
          'Content-Type: application/json',
          'Content-Type: text/plain',
          `X-Request-Id: ${'r'.repeat(200)}`,
          'X-Request-Id: \u00ff\u00fe',
          'Cookie: axle_session=nope',
          'Accept: text/event-stream',
          'Origin: http://evil.example',
          'Sec-Fetch-Site: cross-site',
          'X-Axle-Csrf: x',
          'Transfer-Encoding: chunked',
          `X-Big: ${'b'.repeat(20_000)}`,
          'Bad Header Without Colon',
        ),
        { maxLength: 3 },
      ),
      body: fc.option(body, { nil: undefined }),
    })
    .map(({ where, query, auth, headers, body: b }) => {
      const q = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
      return {
        method: where.method,
        target: q && where.path.startsWith('/') ? `${where.path}?${q}` : where.path,
        auth,
        headers,
        route: where.route,
        ...(b !== undefined ? { body: Buffer.from(b, 'utf8') } : {}),
      };
    });
}

/** The request as bytes on the wire. Transfer-Encoding is never combined with a length. */
export function encodeRequest(r: FuzzRequest, tokens: Record<Auth, string | undefined>): string | Buffer {
  const lines = [`${r.method} ${r.target} HTTP/1.1`, 'Host: fuzz'];
  const tok = tokens[r.auth];
  if (tok) lines.push(`Authorization: Bearer ${tok}`);
  const chunked = r.headers.some((h) => h.startsWith('Transfer-Encoding'));
  lines.push(...r.headers);
  if (r.body && !chunked) lines.push(`Content-Length: ${r.body.length}`);
  lines.push('Connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');
  if (!r.body) return head;
  const payload = chunked
    ? Buffer.concat([Buffer.from(`${r.body.length.toString(16)}\r\n`), r.body, Buffer.from('\r\n0\r\n\r\n')])
    : r.body;
  return Buffer.concat([head, payload]);
}
