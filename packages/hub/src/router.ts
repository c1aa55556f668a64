import { Minimatch, braceExpand } from 'minimatch';
import { AxleError, ErrorCode } from '@axle/shared';

/** Patterns are typed by operators; anything longer is a mistake or an attack on the matcher. */
export const MAX_PATTERN_LENGTH = 256;
/** `{a,b}` expansion is allowed but bounded, so one pattern cannot become a million matchers. */
export const MAX_BRACE_EXPANSION = 64;

const MM_OPTIONS = {
  nocase: true,
  // Extglobs (`+(a|b)`) are off: they add nothing for host names and are where glob engines go quadratic.
  noext: true,
  nonegate: true,
  nocomment: true,
  noglobstar: true,
  nobrace: true,
} as const;

export interface CompiledPattern {
  readonly source: string;
  /** `host` must already be lower-case. */
  test(host: string): boolean;
}

/**
 * The longest run of plain characters a name must contain to match, e.g. ".dc1." for
 * "*.dc1.*". Checking it with `includes` first skips the glob engine for nearly every
 * pattern that cannot match, which is most of them when there are hundreds of spokes.
 */
function requiredLiteral(p: string): string {
  if (p.includes('\\')) return '';
  let best = '';
  let cur = '';
  let inClass = false;
  for (const ch of p) {
    if (inClass) {
      if (ch === ']') inClass = false;
      continue;
    }
    if (ch === '*' || ch === '?' || ch === '[') {
      if (cur.length > best.length) best = cur;
      cur = '';
      inClass = ch === '[';
      continue;
    }
    cur += ch;
  }
  if (cur.length > best.length) best = cur;
  return best.toLowerCase();
}

/** Compiles a hostname glob once; throws an Error saying what is wrong with it. */
export function compilePattern(source: string): CompiledPattern {
  if (source.length === 0) throw new Error('a pattern must not be empty');
  if (source.length > MAX_PATTERN_LENGTH)
    throw new Error(`pattern is ${source.length} characters; the limit is ${MAX_PATTERN_LENGTH}`);
  if (source.includes('/'))
    throw new Error(`pattern "${source}" contains "/"; host name patterns match names such as "web3.dc1.example.com"`);
  const expanded = braceExpand(source, { braceExpandMax: MAX_BRACE_EXPANSION + 1 });
  if (expanded.length > MAX_BRACE_EXPANSION) {
    throw new Error(
      `pattern "${source}" expands to more than ${MAX_BRACE_EXPANSION} alternatives; split it into several patterns`,
    );
  }
  const parts = expanded.map((p) => {
    const mm = new Minimatch(p, MM_OPTIONS);
    const lit = requiredLiteral(p);
    const exact = !mm.hasMagic() ? p.toLowerCase() : undefined;
    return { mm, lit, exact };
  });
  return {
    source,
    test(host: string): boolean {
      for (const part of parts) {
        if (part.exact !== undefined) {
          if (part.exact === host) return true;
          continue;
        }
        if (part.lit !== '' && !host.includes(part.lit)) continue;
        if (part.mm.match(host)) return true;
      }
      return false;
    },
  };
}

export interface RouteSpoke {
  id: string;
  patterns: readonly string[];
}

/** Why a matching spoke was passed over; undefined means it can take the envoy. */
export type Eligibility = (spokeId: string) => string | undefined;

export interface RouteChoice {
  spokeId: string;
  via: 'pattern' | 'default';
}

/**
 * First matching spoke in config order wins. Patterns are compiled when the router is
 * built (start and each reload), never per enrollment.
 */
export class Router {
  private readonly spokes: { id: string; patterns: CompiledPattern[] }[];

  constructor(
    spokes: readonly RouteSpoke[],
    readonly defaultSpoke?: string,
  ) {
    this.spokes = spokes.map((s) => ({ id: s.id, patterns: s.patterns.map((p) => compilePattern(p)) }));
  }

  /** Ids of every spoke whose patterns match, in config order. */
  matching(hostname: string): string[] {
    const host = hostname.toLowerCase();
    const out: string[] = [];
    for (const s of this.spokes) if (s.patterns.some((p) => p.test(host))) out.push(s.id);
    return out;
  }

  /** The first matching spoke, ignoring health and quotas (the pure routing decision). */
  first(hostname: string): string | undefined {
    const host = hostname.toLowerCase();
    for (const s of this.spokes) {
      for (const p of s.patterns) if (p.test(host)) return s.id;
    }
    return this.defaultSpoke;
  }

  /**
   * Every spoke that may take `hostname`, best first: matching spokes in config order, then
   * the default spoke. Throws E_NO_ROUTE naming why each candidate was passed over.
   */
  candidates(hostname: string, eligible: Eligibility, exclude?: string): RouteChoice[] {
    const out: RouteChoice[] = [];
    const skipped: string[] = [];
    const matched = this.matching(hostname);
    for (const id of matched) {
      if (id === exclude) continue;
      const why = eligible(id);
      if (why === undefined) out.push({ spokeId: id, via: 'pattern' });
      else skipped.push(`${id} (${why})`);
    }
    const d = this.defaultSpoke;
    if (d !== undefined && d !== exclude && !out.some((c) => c.spokeId === d)) {
      const why = eligible(d);
      if (why === undefined) out.push({ spokeId: d, via: 'default' });
      else if (!matched.includes(d)) skipped.push(`default spoke ${d} (${why})`);
    }
    if (out.length === 0) {
      const what =
        matched.length === 0 && d === undefined
          ? `no spoke pattern matches "${hostname}" and no default_spoke is configured; add a pattern for it to spanner.spokes or set spanner.default_spoke`
          : `no spoke can take "${hostname}" now: ${skipped.join(', ') || 'none left'}; bring a spoke back online, raise max_envoys, or add a pattern`;
      throw new AxleError(ErrorCode.NO_ROUTE, what);
    }
    return out;
  }
}
