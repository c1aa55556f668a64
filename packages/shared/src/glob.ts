import { AxleError, ErrorCode } from './errors.js';
import { custom, type Schema } from './schema.js';

/**
 * Host name globs: the one grammar for spoke patterns, token patterns, `match=` queries, job
 * targets and policy `hosts:`. Operators type these, and viewers send them to every spoke, so
 * the grammar is bounded where glob engines are not: the source length, the number of
 * alternatives braces expand to (counted before anything is expanded), and the wildcards per
 * alternative. Matching is the two-pointer wildcard walk, linear in practice and O(name x
 * pattern) at worst, and every step can be charged to a `CostBudget`.
 *
 *   *        any run of characters, dots included ("*.dc1.*")
 *   ?        one character
 *   [a-z0-9] one character from a class; [!x] or [^x] negates it
 *   {a,b}    either alternative (nested groups allowed); {1..20} a numeric range
 *   \x       x itself
 *
 * A pattern matches the whole name (anchored at both ends), and matching ignores case: patterns
 * are folded to lowercase and names are canonical (hostname.ts).
 */
export interface GlobLimits {
  maxLength: number;
  maxAlternatives: number;
  maxWildcards: number;
}

export const GLOB_LIMITS: Readonly<GlobLimits> = Object.freeze({
  maxLength: 256,
  maxAlternatives: 64,
  maxWildcards: 16,
});

/** Matching steps a single query may spend (about 100-200 ms of one core here). */
export const DEFAULT_QUERY_STEPS = 50_000_000;

type Token =
  | { t: 'lit'; c: string }
  | { t: 'any' }
  | { t: 'star' }
  | { t: 'class'; negate: boolean; chars: string; ranges: [string, string][] };

/** One expanded alternative, ready to match. */
export interface GlobAlternative {
  readonly tokens: readonly Token[];
  /** Literal text every match starts with ("web" for "web*.dc1"). */
  readonly prefix: string;
  /** Literal text every match ends with. */
  readonly suffix: string;
  /** The longest literal run; a name without it cannot match. */
  readonly required: string;
  /** Set when the alternative has no wildcard at all. */
  readonly exact: string | undefined;
}

/**
 * Work a query may do. Each matching step costs one; past `max` the query stops with
 * E_QUERY_TOO_COSTLY rather than hold the process.
 */
export class CostBudget {
  spent = 0;
  constructor(readonly max: number = DEFAULT_QUERY_STEPS) {}
  charge(steps: number): void {
    this.spent += steps;
    if (this.spent > this.max) {
      throw new AxleError(
        ErrorCode.QUERY_TOO_COSTLY,
        `the query needed more than ${this.max} matching steps and was stopped; use a narrower pattern (fewer "*" and braces) or a literal prefix`,
      );
    }
  }
}

const invalid = (source: string, why: string) =>
  new AxleError(ErrorCode.INVALID, `pattern "${source.slice(0, 80)}" ${why}`);

// ---- braces: parsed into a tree so the expansion count is known before expanding ----

type Part = string | Part[][]; // a literal run, or a group of alternatives (each a sequence)

function parseBraces(src: string, source: string): Part[] {
  // Matching braces first, in one pass, so parsing never backtracks over unclosed ones.
  const close = new Map<number, number>();
  const open: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (ch === '\\') i++;
    else if (ch === '[' && src.indexOf(']', i + 2) !== -1) i = src.indexOf(']', i + 2);
    else if (ch === '{') open.push(i);
    else if (ch === '}' && open.length > 0) close.set(open.pop() as number, i);
  }
  const parse = (from: number, to: number): Part[] => {
    const parts: Part[] = [];
    let lit = '';
    for (let i = from; i < to; i++) {
      const ch = src[i] as string;
      if (ch === '\\' && i + 1 < to) {
        lit += src.slice(i, i + 2);
        i++;
        continue;
      }
      if (ch === '[' && src.indexOf(']', i + 2) !== -1 && src.indexOf(']', i + 2) < to) {
        const end = src.indexOf(']', i + 2);
        lit += src.slice(i, end + 1);
        i = end;
        continue;
      }
      const end = ch === '{' ? close.get(i) : undefined;
      if (end === undefined || end >= to) {
        lit += ch;
        continue;
      }
      const range = /^\{(-?\d{1,9})\.\.(-?\d{1,9})\}$/.exec(src.slice(i, end + 1));
      const commas: number[] = [];
      for (let k = i + 1; k < end; k++) {
        const c = src[k];
        if (c === '\\') k++;
        else if (c === '[' && src.indexOf(']', k + 2) !== -1 && src.indexOf(']', k + 2) < end)
          k = src.indexOf(']', k + 2);
        else if (c === '{' && close.has(k)) k = close.get(k) as number;
        else if (c === ',') commas.push(k);
      }
      if (!range && commas.length === 0) {
        // "{x}" is the text "{x}", as in a shell; what is inside may still hold groups.
        lit += '{';
        if (lit) parts.push(lit);
        lit = '';
        parts.push(...parse(i + 1, end));
        lit = '}';
        i = end;
        continue;
      }
      if (lit) parts.push(lit);
      lit = '';
      if (range) parts.push(rangeGroup(range[1] as string, range[2] as string, source));
      else {
        const bounds = [i, ...commas, end];
        parts.push(bounds.slice(1).map((b, k) => parse((bounds[k] as number) + 1, b)));
      }
      i = end;
    }
    if (lit) parts.push(lit);
    return parts;
  };
  return parse(0, src.length);
}

function rangeGroup(a: string, b: string, source: string): Part[][] {
  const from = Number(a);
  const to = Number(b);
  const count = Math.abs(to - from) + 1;
  if (count > GLOB_LIMITS.maxAlternatives) {
    throw invalid(
      source,
      `has the range {${a}..${b}} of ${count} numbers; split it (at most ${GLOB_LIMITS.maxAlternatives})`,
    );
  }
  const width = /^-?0\d/.test(a) || /^-?0\d/.test(b) ? Math.max(a.length, b.length) : 0;
  const step = from <= to ? 1 : -1;
  const out: Part[][] = [];
  for (let n = from; n !== to + step; n += step) out.push([String(n).padStart(width, '0')]);
  return out;
}

/** How many strings a sequence expands to, saturating past `cap` so nothing huge is computed. */
function countSeq(parts: Part[], cap: number): number {
  let n = 1;
  for (const p of parts) {
    if (typeof p === 'string') continue;
    let sum = 0;
    for (const alt of p) sum = Math.min(cap + 1, sum + countSeq(alt, cap));
    n = Math.min(cap + 1, n * sum);
  }
  return n;
}

function expand(parts: Part[]): string[] {
  let out = [''];
  for (const p of parts) {
    if (typeof p === 'string') out = out.map((s) => s + p);
    else {
      const alts = p.flatMap(expand);
      out = out.flatMap((s) => alts.map((a) => s + a));
    }
  }
  return out;
}

// ---- one alternative: tokens ----

function tokenize(text: string, source: string): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '\\' && i + 1 < text.length) {
      tokens.push({ t: 'lit', c: text[++i] as string });
    } else if (ch === '*') {
      if (tokens.at(-1)?.t !== 'star') tokens.push({ t: 'star' });
    } else if (ch === '?') {
      tokens.push({ t: 'any' });
    } else if (ch === '[' && text.indexOf(']', i + 2) !== -1) {
      const close = text.indexOf(']', i + 2);
      let body = text.slice(i + 1, close);
      i = close;
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      let chars = '';
      const ranges: [string, string][] = [];
      for (let k = 0; k < body.length; k++) {
        const c = body[k] as string;
        if (body[k + 1] === '-' && k + 2 < body.length) {
          const hi = body[k + 2] as string;
          if (hi < c) throw invalid(source, `has the backwards range [${c}-${hi}]`);
          ranges.push([c, hi]);
          k += 2;
        } else chars += c;
      }
      tokens.push({ t: 'class', negate, chars, ranges });
    } else {
      tokens.push({ t: 'lit', c: ch });
    }
  }
  return tokens;
}

function literalRuns(tokens: readonly Token[]): { prefix: string; suffix: string; required: string } {
  const runs: string[] = [];
  let cur = '';
  let prefixDone = false;
  let prefix = '';
  for (const tk of tokens) {
    if (tk.t === 'lit') cur += tk.c;
    else {
      if (!prefixDone) prefix = cur;
      prefixDone = true;
      runs.push(cur);
      cur = '';
    }
  }
  runs.push(cur);
  if (!prefixDone) prefix = cur;
  const suffix = tokens.at(-1)?.t === 'lit' ? cur : '';
  const required = runs.reduce((a, b) => (b.length > a.length ? b : a), '');
  return { prefix, suffix, required };
}

function classMatches(tk: Extract<Token, { t: 'class' }>, c: string): boolean {
  let hit = tk.chars.includes(c);
  if (!hit) for (const [lo, hi] of tk.ranges) if (c >= lo && c <= hi) hit = true;
  return hit !== tk.negate;
}

/** Two-pointer wildcard match; returns the verdict and the steps it took. */
function matchTokens(tokens: readonly Token[], name: string): { ok: boolean; steps: number } {
  const n = name.length;
  const m = tokens.length;
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  let steps = 0;
  while (s < n) {
    steps++;
    const tk = p < m ? (tokens[p] as Token) : undefined;
    if (tk && tk.t !== 'star') {
      const c = name[s] as string;
      const hit = tk.t === 'any' || (tk.t === 'lit' ? tk.c === c : classMatches(tk, c));
      if (hit) {
        p++;
        s++;
        continue;
      }
    } else if (tk) {
      starP = p++;
      starS = s;
      continue;
    }
    if (starP < 0) return { ok: false, steps };
    p = starP + 1;
    s = ++starS;
  }
  while (p < m && (tokens[p] as Token).t === 'star') p++;
  return { ok: p === m, steps };
}

/** A compiled host name glob. Compile once per query or config load, test many names. */
export class Glob {
  readonly alternatives: readonly GlobAlternative[];

  private constructor(
    readonly source: string,
    alternatives: GlobAlternative[],
  ) {
    this.alternatives = alternatives;
  }

  /**
   * Compiles `source`; throws E_INVALID naming what is wrong with it. `values: true` is for
   * globs over trait values rather than host names, where "/" is ordinary text.
   */
  static compile(source: string, limits: GlobLimits = GLOB_LIMITS, o: { values?: boolean } = {}): Glob {
    if (source.length === 0) throw invalid(source, 'is empty');
    if (source.length > limits.maxLength) {
      throw invalid(source, `is ${source.length} characters; the limit is ${limits.maxLength}`);
    }
    if (!o.values && source.includes('/')) {
      throw invalid(source, 'contains "/"; host name patterns match names such as "web3.dc1.example.com"');
    }
    const lower = source.replace(/[A-Z]/g, (c) => c.toLowerCase());
    const tree = parseBraces(lower, source);
    const count = countSeq(tree, limits.maxAlternatives);
    if (count > limits.maxAlternatives) {
      throw invalid(
        source,
        `expands to more than ${limits.maxAlternatives} alternatives; split it into several patterns`,
      );
    }
    const alternatives = [...new Set(expand(tree))].map((text): GlobAlternative => {
      const tokens = tokenize(text, source);
      const wild = tokens.filter((t) => t.t !== 'lit').length;
      if (wild > limits.maxWildcards) {
        throw invalid(source, `has ${wild} wildcards in one alternative; the limit is ${limits.maxWildcards}`);
      }
      const runs = literalRuns(tokens);
      return { tokens, ...runs, exact: wild === 0 ? runs.prefix : undefined };
    });
    return new Glob(source, alternatives);
  }

  /** Does `name` (canonical, so lowercase; fold other text first) match? Charges `budget` for the work, if given. */
  test(name: string, budget?: CostBudget): boolean {
    let steps = 0;
    try {
      for (const alt of this.alternatives) {
        steps++;
        if (alt.exact !== undefined) {
          if (alt.exact === name) return true;
          continue;
        }
        if (!name.startsWith(alt.prefix) || !name.endsWith(alt.suffix)) continue;
        if (alt.required.length > 0) {
          steps += name.length >> 3;
          if (!name.includes(alt.required)) continue;
        }
        const r = matchTokens(alt.tokens, name);
        steps += r.steps;
        if (r.ok) return true;
      }
      return false;
    } finally {
      budget?.charge(steps);
    }
  }
}

/** A request or config field holding a glob: refused at validation, with the grammar's reason, when it will not compile. */
export function globField(): Schema<string> {
  return custom(
    'glob',
    (v) => {
      if (typeof v !== 'string') throw new Error('expected a host name glob such as "*.dc1.*"');
      try {
        Glob.compile(v);
      } catch (e) {
        throw new Error((e as Error).message);
      }
      return v;
    },
    ['*.dc1.*', 'web{1..3}.dc2.*', 'db?.example.com'],
  );
}
