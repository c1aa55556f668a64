import { FORBIDDEN_KEYS } from './codec.js';
import { AxleError, ErrorCode } from './errors.js';
import { parseDuration } from './duration.js';

/**
 * Small validators that narrow `unknown` (decoded msgpack, parsed YAML, JSON bodies) into
 * typed values. Each collects every problem with its path instead of stopping at the first,
 * so a config error lists all that is wrong at once.
 */
export interface Issue {
  path: string;
  message: string;
}

/**
 * What a schema accepts, as data: lets tools derive values from the same tables the
 * validators use (the fuzz suite generates every wire message from `messageSchema` this way).
 */
export type SchemaSpec =
  | { kind: 'string'; min: number; max: number; pattern?: RegExp | undefined }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'literal'; value: string | number | boolean }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'number'; min?: number | undefined; max?: number | undefined }
  | { kind: 'boolean' }
  | { kind: 'bytes'; len?: number | undefined; max?: number | undefined }
  | { kind: 'duration'; min?: number | undefined; max?: number | undefined }
  | { kind: 'list'; item: Schema<unknown>; min: number; max: number }
  | { kind: 'record'; value: Schema<unknown>; maxKeys: number }
  | { kind: 'mapping'; shape: Record<string, Schema<unknown>> }
  | { kind: 'union'; tag: string; variants: Record<string, Schema<unknown>> }
  | { kind: 'json'; maxDepth: number }
  | { kind: 'custom'; name: string; examples: readonly unknown[] };

export interface Schema<T> {
  readonly kind: string;
  readonly spec: SchemaSpec;
  /** Returns the narrowed value, or `undefined` after pushing at least one issue. */
  parse(v: unknown, path: string, issues: Issue[]): T | undefined;
  readonly optional?: boolean;
  readonly fallback?: () => T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type InferShape<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Infer<S[K]>;
};
type Simplify<T> = { [K in keyof T]: T[K] } & {};

const describe = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? ''}`.trim();
};

function make<T>(spec: SchemaSpec, parse: Schema<T>['parse']): Schema<T> {
  return { kind: spec.kind === 'custom' ? spec.name : spec.kind, spec, parse };
}

export function str(o: { min?: number; max?: number; pattern?: RegExp; hint?: string } = {}): Schema<string> {
  const max = o.max ?? 4096;
  return make({ kind: 'string', min: o.min ?? 0, max, pattern: o.pattern }, (v, path, issues) => {
    if (typeof v !== 'string') return void issues.push({ path, message: `expected a string, got ${describe(v)}` });
    if (v.length < (o.min ?? 0))
      return void issues.push({
        path,
        message: o.min === 1 ? 'must not be empty' : `must be at least ${o.min} characters`,
      });
    if (v.length > max) return void issues.push({ path, message: `must be at most ${max} characters` });
    if (o.pattern && !o.pattern.test(v))
      return void issues.push({ path, message: o.hint ?? `does not match ${o.pattern}` });
    return v;
  });
}

export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  return make({ kind: 'enum', values }, (v, path, issues) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T[number];
    issues.push({
      path,
      message: `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(v)}`,
    });
    return undefined;
  });
}

export function lit<const T extends string | number | boolean>(value: T): Schema<T> {
  return make({ kind: 'literal', value }, (v, path, issues) => {
    if (v === value) return value;
    issues.push({ path, message: `must be ${JSON.stringify(value)}, got ${describe(v)}` });
    return undefined;
  });
}

export function int(o: { min?: number; max?: number } = {}): Schema<number> {
  const min = o.min ?? Number.MIN_SAFE_INTEGER;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  return make({ kind: 'integer', min, max }, (v, path, issues) => {
    if (typeof v !== 'number' || !Number.isInteger(v))
      return void issues.push({ path, message: `expected an integer, got ${describe(v)}` });
    if (v < min || v > max) return void issues.push({ path, message: `must be between ${min} and ${max}, got ${v}` });
    return v;
  });
}

export function num(o: { min?: number; max?: number } = {}): Schema<number> {
  return make({ kind: 'number', min: o.min, max: o.max }, (v, path, issues) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      return void issues.push({ path, message: `expected a number, got ${describe(v)}` });
    if ((o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max)) {
      return void issues.push({ path, message: `must be between ${o.min ?? '-inf'} and ${o.max ?? 'inf'}, got ${v}` });
    }
    return v;
  });
}

export function bool(): Schema<boolean> {
  return make({ kind: 'boolean' }, (v, path, issues) => {
    if (typeof v === 'boolean') return v;
    issues.push({ path, message: `expected true or false, got ${describe(v)}` });
    return undefined;
  });
}

export function bytes(o: { len?: number; max?: number } = {}): Schema<Uint8Array> {
  return make({ kind: 'bytes', len: o.len, max: o.max }, (v, path, issues) => {
    if (!(v instanceof Uint8Array)) return void issues.push({ path, message: `expected bytes, got ${describe(v)}` });
    if (o.len !== undefined && v.length !== o.len)
      return void issues.push({ path, message: `must be ${o.len} bytes, got ${v.length}` });
    if (o.max !== undefined && v.length > o.max)
      return void issues.push({ path, message: `must be at most ${o.max} bytes` });
    return v;
  });
}

/** A duration written "30s"/"5m" (or a number of milliseconds from the wire) as milliseconds. */
export function duration(o: { min?: number; max?: number } = {}): Schema<number> {
  return make({ kind: 'duration', min: o.min, max: o.max }, (v, path, issues) => {
    let ms: number;
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) ms = v;
    else if (typeof v === 'string') {
      try {
        ms = parseDuration(v);
      } catch (e) {
        return void issues.push({ path, message: (e as Error).message });
      }
    } else return void issues.push({ path, message: `expected a duration such as "30s", got ${describe(v)}` });
    if ((o.min !== undefined && ms < o.min) || (o.max !== undefined && ms > o.max)) {
      return void issues.push({ path, message: `must be between ${o.min ?? 0}ms and ${o.max ?? 'unbounded'}ms` });
    }
    return ms;
  });
}

export function arr<T>(item: Schema<T>, o: { min?: number; max?: number } = {}): Schema<T[]> {
  const max = o.max ?? 10_000;
  return make({ kind: 'list', item: item as Schema<unknown>, min: o.min ?? 0, max }, (v, path, issues) => {
    if (!Array.isArray(v)) return void issues.push({ path, message: `expected a list, got ${describe(v)}` });
    if (v.length < (o.min ?? 0)) return void issues.push({ path, message: `must have at least ${o.min} item(s)` });
    if (v.length > max) return void issues.push({ path, message: `must have at most ${max} items` });
    const out: T[] = [];
    const before = issues.length;
    for (let i = 0; i < v.length; i++) {
      const r = item.parse(v[i], `${path}[${i}]`, issues);
      if (r !== undefined) out.push(r);
    }
    return issues.length === before ? out : undefined;
  });
}

export function record<T>(
  value: Schema<T>,
  o: { maxKeys?: number; key?: Schema<string> } = {},
): Schema<Record<string, T>> {
  const maxKeys = o.maxKeys ?? 1000;
  return make({ kind: 'record', value: value as Schema<unknown>, maxKeys }, (v, path, issues) => {
    if (!isPlainObject(v)) return void issues.push({ path, message: `expected a mapping, got ${describe(v)}` });
    const keys = Object.keys(v);
    if (keys.length > maxKeys) return void issues.push({ path, message: `must have at most ${maxKeys} keys` });
    const out: Record<string, T> = {};
    const before = issues.length;
    for (const k of keys) {
      if (FORBIDDEN_KEYS.has(k)) {
        issues.push({ path: `${path}.${k}`, message: 'this key is not allowed' });
        continue;
      }
      if (o.key) o.key.parse(k, `${path}.${k}`, issues);
      const r = value.parse(v[k], `${path}.${k}`, issues);
      if (r !== undefined) out[k] = r;
    }
    return issues.length === before ? out : undefined;
  });
}

/** Marks a field as optional: absent (or null) is allowed and stays absent. */
export function opt<T>(s: Schema<T>): Schema<T> & { optional: true } {
  return { kind: s.kind, spec: s.spec, parse: s.parse, optional: true };
}

/** A field that takes `value` when absent. */
export function def<T>(s: Schema<T>, value: T | (() => T)): Schema<T> {
  const fallback = typeof value === 'function' ? (value as () => T) : () => value;
  return { kind: s.kind, spec: s.spec, parse: s.parse, fallback };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * A mapping with exactly these keys. Unknown keys are refused by default: a misspelt
 * `treshold` silently ignored is worse than a daemon that will not start.
 */
export function obj<S extends Shape>(shape: S, o: { strict?: boolean } = {}): Schema<Simplify<InferShape<S>>> {
  const strict = o.strict ?? true;
  const keys = Object.keys(shape);
  return make({ kind: 'mapping', shape }, (v, path, issues) => {
    if (!isPlainObject(v))
      return void issues.push({ path: path || '(top)', message: `expected a mapping, got ${describe(v)}` });
    const before = issues.length;
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const s = shape[k] as Schema<unknown>;
      const p = path ? `${path}.${k}` : k;
      const raw = v[k];
      if (raw === undefined || raw === null) {
        if (s.fallback) out[k] = s.fallback();
        else if (!s.optional) issues.push({ path: p, message: 'is required' });
        continue;
      }
      const r = s.parse(raw, p, issues);
      if (r !== undefined) out[k] = r;
    }
    if (strict) {
      for (const k of Object.keys(v)) {
        if (!(k in shape))
          issues.push({
            path: path ? `${path}.${k}` : k,
            message: `unknown key (expected one of: ${keys.join(', ')})`,
          });
      }
    }
    return issues.length === before ? (out as Simplify<InferShape<S>>) : undefined;
  });
}

/** A union told apart by a literal `type` field, each variant with its own schema. */
export function tagged<M extends Record<string, Schema<unknown>>>(
  tag: string,
  variants: M,
): Schema<{ [K in keyof M]: Infer<M[K]> }[keyof M]> {
  return make({ kind: 'union', tag, variants }, (v, path, issues) => {
    if (!isPlainObject(v))
      return void issues.push({ path: path || '(top)', message: `expected a mapping, got ${describe(v)}` });
    const t = v[tag];
    const variant = typeof t === 'string' && Object.hasOwn(variants, t) ? variants[t] : undefined;
    if (!variant)
      return void issues.push({ path: path ? `${path}.${tag}` : tag, message: `unknown ${tag} ${describe(t)}` });
    return variant.parse(v, path, issues) as { [K in keyof M]: Infer<M[K]> }[keyof M] | undefined;
  });
}

export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** Any JSON-like value (trait values, task output), bounded in depth and size. */
export function json(o: { maxDepth?: number } = {}): Schema<Json> {
  const maxDepth = o.maxDepth ?? 8;
  const check = (v: unknown, depth: number): boolean => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
    if (typeof v === 'number') return Number.isFinite(v);
    if (depth >= maxDepth) return false;
    if (Array.isArray(v)) return v.every((x) => check(x, depth + 1));
    if (isPlainObject(v)) return Object.keys(v).every((k) => !FORBIDDEN_KEYS.has(k) && check(v[k], depth + 1));
    return false;
  };
  return make({ kind: 'json', maxDepth }, (v, path, issues) => {
    if (check(v, 0)) return v as Json;
    issues.push({
      path,
      message: `expected plain data (strings, numbers, lists, mappings) at most ${maxDepth} deep, without the keys __proto__, constructor or prototype`,
    });
    return undefined;
  });
}

/**
 * A validator written as a function that returns the value or throws an Error saying why not.
 * `examples` are values it accepts, for tools that generate input from schemas.
 */
export function custom<T>(kind: string, fn: (v: unknown) => T, examples: readonly unknown[] = []): Schema<T> {
  return make({ kind: 'custom', name: kind, examples }, (v, path, issues) => {
    try {
      return fn(v);
    } catch (e) {
      return void issues.push({ path, message: e instanceof Error ? e.message : String(e) });
    }
  });
}

/** Every problem with its path; past 20 the rest are counted, so a hostile input cannot make the message huge. */
export function formatIssues(issues: Issue[]): string {
  const shown = issues.slice(0, 20).map((i) => `${i.path.slice(0, 200) || '(top)'}: ${i.message}`);
  if (issues.length > 20) shown.push(`and ${issues.length - 20} more`);
  return shown.join('; ');
}

/** Narrows `v` or throws an AxleError listing every problem. */
export function parse<T>(
  schema: Schema<T>,
  v: unknown,
  what: string,
  code: AxleError['code'] = ErrorCode.BAD_MESSAGE,
): T {
  const issues: Issue[] = [];
  const r = schema.parse(v, '', issues);
  if (r === undefined || issues.length > 0) {
    throw new AxleError(code, `invalid ${what}: ${formatIssues(issues)}`);
  }
  return r;
}
