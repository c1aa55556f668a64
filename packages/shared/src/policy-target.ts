import { Glob, globField } from './glob.js';
import { arr, custom, num, obj, opt, record, str, type Infer, type Json, type Schema } from './schema.js';

/**
 * Which hosts a policy is for: `hosts:` (hostname globs, any one matching) and `when:` (trait
 * conditions, all holding). The envoy evaluates them with its own traits and reports, for a
 * policy it skips, the first condition that did not hold.
 *
 *   hosts: ["web*.dc1.*"]
 *   when:
 *     os_id: debian                      # equals
 *     os_version_id: { gte: 12 }         # numeric: gt, gte, lt, lte
 *     os_id_like: { in: [debian, ubuntu] }
 *     fqdn: { glob: "*.example.com" }
 *     app.role: { exists: true }         # dotted paths reach into custom traits
 *     env: { not: production }
 */

type Scalar = string | number | boolean;

const scalar = () =>
  custom('scalar', (v): Scalar => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    throw new Error('expected a string, number or boolean');
  });

const conditionObj = obj({
  equals: opt(scalar()),
  not: opt(scalar()),
  in: opt(arr(scalar(), { min: 1, max: 1000 })),
  glob: opt(
    custom('glob', (v) => {
      if (typeof v !== 'string') throw new Error('expected a glob such as "*.example.com"');
      Glob.compile(v, undefined, { values: true });
      return v;
    }),
  ),
  exists: opt(custom('boolean', (v) => (typeof v === 'boolean' ? v : fail('expected true or false')))),
  gt: opt(num()),
  gte: opt(num()),
  lt: opt(num()),
  lte: opt(num()),
});
type ConditionObj = Infer<typeof conditionObj>;
export type Condition = Scalar | ConditionObj;

function fail(message: string): never {
  throw new Error(message);
}

const condition: Schema<Condition> = {
  kind: 'condition',
  spec: { kind: 'custom', name: 'condition', examples: ['debian', { gte: 12 }] },
  parse(v, path, issues) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    const before = issues.length;
    const c = conditionObj.parse(v, path, issues);
    if (c === undefined || issues.length > before) return undefined;
    if (Object.keys(c).length === 0)
      return void issues.push({
        path,
        message: 'give a value to compare with, or one of equals, not, in, glob, exists, gt, gte, lt, lte',
      });
    return c;
  },
};

export const targetShape = {
  hosts: opt(arr(globField(), { max: 1000 })),
  when: opt(record(condition, { maxKeys: 64, key: str({ min: 1, max: 200, pattern: /^[A-Za-z0-9_.-]+$/ }) })),
};

export interface Target {
  hosts?: readonly string[] | undefined;
  when?: Readonly<Record<string, Condition>> | undefined;
}

/** A trait by its flat name ("os_id"), or by a dotted path into a custom trait ("app.role"). */
export function traitValue(traits: Record<string, Json>, key: string): Json | undefined {
  if (Object.hasOwn(traits, key)) return traits[key];
  let cur: Json | undefined = traits;
  for (const part of key.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, Json>)[part];
  }
  return cur;
}

const show = (v: Json | undefined) => (v === undefined ? 'missing' : JSON.stringify(v).slice(0, 100));
const isScalar = (v: Json | undefined): v is Scalar =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
const same = (have: Json | undefined, want: Scalar) => isScalar(have) && String(have) === String(want);
const numeric = (v: Json | undefined) =>
  typeof v === 'number'
    ? v
    : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))
      ? Number(v)
      : undefined;

/** Why `key` fails `c` on this host, or undefined when it holds. */
function conditionFails(key: string, c: Condition, have: Json | undefined): string | undefined {
  const is = `${key} is ${show(have)}`;
  if (isScalar(c as Json)) return same(have, c as Scalar) ? undefined : `${is}, not ${JSON.stringify(c)}`;
  const o = c as ConditionObj;
  if (o.exists !== undefined && (have !== undefined && have !== null) !== o.exists)
    return o.exists ? `${key} is missing` : `${key} exists`;
  if (o.equals !== undefined && !same(have, o.equals)) return `${is}, not ${JSON.stringify(o.equals)}`;
  if (o.not !== undefined && same(have, o.not)) return `${is}`;
  if (o.in !== undefined && !o.in.some((w) => same(have, w)))
    return `${is}, not one of ${o.in.map((w) => JSON.stringify(w)).join(', ')}`;
  if (
    o.glob !== undefined &&
    !(typeof have === 'string' && Glob.compile(o.glob, undefined, { values: true }).test(have.toLowerCase()))
  )
    return `${is}, which does not match ${JSON.stringify(o.glob)}`;
  const cmp: [keyof ConditionObj, string, (a: number, b: number) => boolean][] = [
    ['gt', '>', (a, b) => a > b],
    ['gte', '>=', (a, b) => a >= b],
    ['lt', '<', (a, b) => a < b],
    ['lte', '<=', (a, b) => a <= b],
  ];
  for (const [k, op, test] of cmp) {
    const want = o[k] as number | undefined;
    if (want === undefined) continue;
    const n = numeric(have);
    if (n === undefined) return `${is}, not a number to compare with ${op} ${want}`;
    if (!test(n, want)) return `${is}, not ${op} ${want}`;
  }
  return undefined;
}

/**
 * Why this host is not a target (the first condition that fails, as a phrase for the report),
 * or undefined when it is.
 */
export function targetMismatch(t: Target, hostname: string, traits: Record<string, Json>): string | undefined {
  if (t.hosts && !t.hosts.some((g) => Glob.compile(g).test(hostname)))
    return `hosts: ${hostname} matches none of ${t.hosts.slice(0, 5).join(', ')}${t.hosts.length > 5 ? ', ...' : ''}`;
  for (const [key, c] of Object.entries(t.when ?? {})) {
    const why = conditionFails(key, c, traitValue(traits, key));
    if (why) return `when: ${why}`;
  }
  return undefined;
}
