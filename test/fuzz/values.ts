import fc from 'fast-check';
import type { Schema, SchemaSpec } from '@axle/shared';

/**
 * Values derived from Axle's own schemas (SchemaSpec): `validValue` builds what a schema
 * accepts, `hostileValue` what a hostile peer would send instead (wrong types, sizes at and past
 * the limits, deep nesting, unicode, huge numbers), and `mutated` takes a valid value and breaks
 * one part of it. Every wire message type and every config-like body is covered by walking the
 * schema tables, so a new message or field is fuzzed without anyone editing this file.
 */

const UNICODE = ['', ' ', '\u0000', '\u202e', '\ud800', 'é', '日本', '🙂', 'x'.repeat(70), '%00', '../..', '__proto__'];

/** Anything at all, with the shapes parsers trip on. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(
      null,
      true,
      false,
      0,
      -1,
      -0,
      1.5,
      2 ** 31,
      2 ** 53,
      -(2 ** 53),
      Number.MAX_SAFE_INTEGER + 2,
      1e308,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ),
    fc.constantFrom(...UNICODE),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.integer(),
    fc.double(),
    fc.uint8Array({ maxLength: 80 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('type', '__proto__', 'constructor')),
      tie('v'),
      {
        maxKeys: 4,
      },
    ),
  ),
})).v;

/** Nested lists this deep are past every decoder's depth limit. */
export const deepValue = fc.integer({ min: 20, max: 80 }).map((n) => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = [v];
  return v;
});

function stringFor(spec: Extract<SchemaSpec, { kind: 'string' }>): fc.Arbitrary<string> {
  const len = fc.integer({ min: spec.min, max: Math.max(spec.min, Math.min(spec.max, 40)) });
  if (spec.pattern) {
    const pattern = spec.pattern;
    const plain = len.map((n) => 'a'.repeat(Math.max(n, spec.min, 1)));
    try {
      const matching = fc.stringMatching(pattern).filter((s) => s.length >= spec.min && s.length <= spec.max);
      // Plain letters only where some can match (a filter that never passes would spin forever).
      if (!pattern.test('a'.repeat(Math.max(spec.min, 1)))) return matching;
      return fc.oneof(
        matching,
        plain.filter((s) => pattern.test(s)),
      );
    } catch {
      // A pattern fast-check cannot generate from (lookaheads): plain letters usually pass.
      return plain;
    }
  }
  return len.chain((n) => fc.string({ minLength: n, maxLength: n }));
}

/** Values the schema accepts (most of the time: patterns and custom validators are approximated). */
export function validValue(s: Schema<unknown>, depth = 0): fc.Arbitrary<unknown> {
  const spec = s.spec;
  switch (spec.kind) {
    case 'string':
      return stringFor(spec);
    case 'enum':
      return fc.constantFrom(...spec.values);
    case 'literal':
      return fc.constant(spec.value);
    case 'integer':
      return fc.oneof(
        fc.integer({ min: Math.max(spec.min, -1e6), max: Math.min(spec.max, 1e6) }),
        fc.constantFrom(spec.min, spec.max),
      );
    case 'number':
      return fc.double({ min: spec.min ?? -1e6, max: spec.max ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'bytes':
      return spec.len !== undefined
        ? fc.uint8Array({ minLength: spec.len, maxLength: spec.len })
        : fc.uint8Array({ maxLength: Math.min(spec.max ?? 64, 64) });
    case 'duration':
      return fc.constantFrom('1s', '30s', '5m', 1000);
    case 'list':
      if (depth > 4) return fc.constant([]);
      return fc.array(validValue(spec.item, depth + 1), { minLength: spec.min, maxLength: Math.max(spec.min, 3) });
    case 'record':
      if (depth > 4) return fc.constant({});
      return fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/), validValue(spec.value, depth + 1), {
        maxKeys: Math.min(3, spec.maxKeys),
      });
    case 'mapping': {
      const parts: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, sub] of Object.entries(spec.shape)) parts[k] = validValue(sub, depth + 1);
      const optional = Object.entries(spec.shape)
        .filter(([, sub]) => sub.optional || sub.fallback)
        .map(([k]) => k);
      return fc.record(parts, { requiredKeys: Object.keys(spec.shape).filter((k) => !optional.includes(k)) });
    }
    case 'union':
      return fc.oneof(...Object.values(spec.variants).map((v) => validValue(v, depth + 1)));
    case 'json':
      return fc.jsonValue({ maxDepth: Math.min(spec.maxDepth, 3) });
    case 'custom':
      return spec.examples.length > 0 ? fc.constantFrom(...spec.examples) : hostileValue;
  }
}

/** `value` (valid for `s`) with one field replaced by something hostile, or a field added or dropped. */
export function mutated(s: Schema<unknown>, value: unknown): fc.Arbitrary<unknown> {
  const spec = s.spec;
  if (spec.kind === 'mapping' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(spec.shape);
    if (keys.length === 0) return fc.constant(value);
    return fc.oneof(
      fc
        .constantFrom(...keys)
        .chain((k) =>
          fc
            .oneof(mutated(spec.shape[k]!, (value as Record<string, unknown>)[k]), hostileValue, deepValue)
            .map((v) => ({ ...(value as object), [k]: v })),
        ),
      fc.constantFrom(...keys).map((k) => {
        const { [k]: _gone, ...rest } = value as Record<string, unknown>;
        return rest;
      }),
      fc.tuple(fc.string({ maxLength: 12 }), hostileValue).map(([k, v]) => ({ ...(value as object), [k]: v })),
    );
  }
  if (spec.kind === 'union' && value !== null && typeof value === 'object') {
    const tag = (value as Record<string, unknown>)[spec.tag];
    const variant = typeof tag === 'string' ? spec.variants[tag] : undefined;
    return variant ? mutated(variant, value) : fc.constant(value);
  }
  if (spec.kind === 'list' && Array.isArray(value)) {
    return fc.oneof(
      fc.constant(Array.from({ length: Math.min(spec.max + 1, 20_000) }, () => value[0] ?? null)),
      fc.array(hostileValue, { maxLength: 5 }),
      value.length > 0
        ? fc
            .nat(value.length - 1)
            .chain((i) => mutated(spec.item, value[i]).map((v) => value.map((x, j) => (j === i ? v : x))))
        : hostileValue,
    );
  }
  if (spec.kind === 'string') {
    return fc.oneof(
      fc.constant('x'.repeat(spec.max + 1)),
      fc.constantFrom(...UNICODE),
      fc.string({ unit: 'binary', maxLength: 30 }),
      hostileValue,
    );
  }
  if (spec.kind === 'integer' || spec.kind === 'number') {
    const min = 'min' in spec && spec.min !== undefined ? spec.min : -(2 ** 60);
    const max = 'max' in spec && spec.max !== undefined ? spec.max : 2 ** 60;
    return fc.constantFrom(min - 1, max + 1, 0.5, Number.NaN, -(2 ** 63), 2 ** 64, '1', null, [1]);
  }
  return hostileValue;
}

/** A valid value, then (most of the time) one mutation of it. */
export function fuzzValue(s: Schema<unknown>): fc.Arbitrary<unknown> {
  return validValue(s).chain((v) =>
    fc.oneof({ weight: 1, arbitrary: fc.constant(v) }, { weight: 4, arbitrary: mutated(s, v) }),
  );
}
