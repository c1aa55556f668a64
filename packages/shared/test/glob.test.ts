import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CostBudget,
  Glob,
  canonicalHostname,
  isCanonicalHostname,
  requireCanonicalEnvoyId,
  type AxleError,
} from '@axle/shared';

/** The obvious regex for a small pattern: the oracle the linear matcher is checked against. */
function oracle(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '{') re += '(?:';
    else if (c === '}') re += ')';
    else if (c === ',') re += '|';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      const body = pattern.slice(i + 1, end);
      re += body.startsWith('!') ? `[^${body.slice(1)}]` : `[${body}]`;
      i = end;
    } else re += c === '.' ? '\\.' : c;
  }
  return new RegExp(`^${re}$`);
}

/** Patterns over a tiny alphabet, with classes and one level of braces, so the oracle is exact. */
const atom = fc.constantFrom('a', 'b', '.', '*', '?', '[ab]', '[!a]', '[a-c]');
const plain = fc.array(atom, { minLength: 1, maxLength: 4 }).map((x) => x.join(''));
const pattern = fc
  .array(
    fc.oneof(
      atom,
      fc.array(plain, { minLength: 2, maxLength: 3 }).map((alts) => `{${alts.join(',')}}`),
    ),
    {
      minLength: 1,
      maxLength: 6,
    },
  )
  .map((x) => x.join(''));
const name = fc.array(fc.constantFrom('a', 'b', 'c', '.'), { maxLength: 10 }).map((x) => x.join(''));

describe('globs: one bounded grammar', () => {
  it('agree with a regex oracle on random patterns and names', () => {
    fc.assert(
      fc.property(pattern, name, (p, n) => {
        const braces = (p.match(/\{/g) ?? []).length;
        fc.pre(braces <= 3);
        expect(Glob.compile(p).test(n)).toBe(oracle(p).test(n));
      }),
      { numRuns: 3000, seed: 14 },
    );
  });

  it('match the documented forms, anchored and case-folded', () => {
    const t = (p: string, n: string) => Glob.compile(p).test(n);
    expect(t('*.dc1.*', 'web3.dc1.example.com')).toBe(true);
    expect(t('*.dc1.*', 'web3.dc2.example.com')).toBe(false);
    expect(t('WEB?.{dc1,dc2}.*', 'web3.dc2.x')).toBe(true);
    expect(t('db[0-9].x', 'db7.x')).toBe(true);
    expect(t('db[0-9].x', 'dbz.x')).toBe(false);
    expect(t('web{1..12}.x', 'web11.x')).toBe(true);
    expect(t('web{01..12}.x', 'web03.x')).toBe(true);
    expect(t('web{01..12}.x', 'web3.x')).toBe(false);
    expect(t('exact.host', 'exact.host')).toBe(true);
    expect(t('exact.host', 'exact.host.evil')).toBe(false);
    // Extglob syntax is literal text, not a pattern language.
    expect(t('@(a|b).x', 'a.x')).toBe(false);
    // Unclosed braces and brackets are text.
    expect(t('{a', '{a')).toBe(true);
    expect(t('[a', '[a')).toBe(true);
  });

  it('refuse long, slash-containing, explosive and wildcard-heavy patterns before expanding anything', () => {
    expect(() => Glob.compile('a'.repeat(300))).toThrow(/limit is 256/);
    expect(() => Glob.compile('a/b')).toThrow(/contains "\/"/);
    expect(() => Glob.compile('{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}')).toThrow(/more than 64 alternatives/);
    // The shape from the field: 51 brace groups would be 2^51 alternatives.
    expect(() => Glob.compile('{a,b}'.repeat(51))).toThrow(/more than 64 alternatives/);
    expect(() => Glob.compile('*a'.repeat(17))).toThrow(/17 wildcards/);
    expect(() => Glob.compile('{1..100}.x')).toThrow(/range \{1\.\.100\}/);
    // Unclosed braces do not make the parser backtrack.
    expect(Glob.compile('{'.repeat(256)).test('{'.repeat(256))).toBe(true);
  });

  it('charge every matching step to the budget and stop past it', () => {
    const g = Glob.compile('*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b*');
    const budget = new CostBudget(100_000);
    const names = Array.from({ length: 1000 }, () => `${'a'.repeat(240)}.b`);
    let stopped: AxleError | undefined;
    try {
      for (const n of names) g.test(n, budget);
    } catch (e) {
      stopped = e as AxleError;
    }
    expect(stopped?.code).toBe('E_QUERY_TOO_COSTLY');
    expect(budget.spent).toBeGreaterThan(100_000);
  });
});

describe('host names: one canonical spelling', () => {
  it('fold case and drop the trailing dot, so variants are one host', () => {
    expect(canonicalHostname('WEB1.DC1.EXAMPLE.COM')).toBe('web1.dc1.example.com');
    expect(canonicalHostname('web1.dc1.example.com.')).toBe('web1.dc1.example.com');
    expect(isCanonicalHostname('web1.dc1.example.com')).toBe(true);
    expect(isCanonicalHostname('Web1.dc1.example.com')).toBe(false);
    expect(isCanonicalHostname('web1.dc1.example.com.')).toBe(false);
  });

  it('refuse what RFC 1123 refuses, saying why', () => {
    for (const [bad, why] of [
      ['', /empty/],
      ['a..b', /empty label/],
      ['-a.b', /label "-a"/],
      ['a_b.c', /label "a_b"/],
      [`${'a'.repeat(64)}.b`, /64 characters/],
      [`${'a.'.repeat(127)}aa`, /256 characters/],
      ['wеb1.example.com', /label/], // a Cyrillic "е": refused, never folded into a lookalike
    ] as const) {
      expect(() => canonicalHostname(bad)).toThrow(why);
    }
  });

  it('only the canonical spelling may connect as an envoy', () => {
    expect(() => requireCanonicalEnvoyId('web1.example.com')).not.toThrow();
    expect(() => requireCanonicalEnvoyId('WEB1.example.com')).toThrow(/connect as "web1.example.com"/);
  });

  it('canonical form is idempotent and stable under case and a trailing dot', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 5 }), fc.boolean(), (labels, dot) => {
        const host = labels.join('.');
        const variant = `${host.toUpperCase()}${dot ? '.' : ''}`;
        expect(canonicalHostname(variant)).toBe(host);
        expect(canonicalHostname(canonicalHostname(variant))).toBe(host);
      }),
      { numRuns: 500, seed: 14 },
    );
  });
});
