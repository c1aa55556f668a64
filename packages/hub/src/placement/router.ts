import { AxleError, ErrorCode, Glob } from '@axle/shared';

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
 * First matching spoke in config order wins. Patterns (shared's Glob grammar) are compiled
 * when the router is built (start and each reload), never per enrollment.
 */
export class HostRouter {
  private readonly spokes: { id: string; patterns: Glob[] }[];

  constructor(
    spokes: readonly RouteSpoke[],
    readonly defaultSpoke?: string,
  ) {
    this.spokes = spokes.map((s) => ({ id: s.id, patterns: s.patterns.map((p) => Glob.compile(p)) }));
  }

  /** Ids of every spoke whose patterns match `hostname` (canonical), in config order. */
  matching(hostname: string): string[] {
    const out: string[] = [];
    for (const s of this.spokes) if (s.patterns.some((p) => p.test(hostname))) out.push(s.id);
    return out;
  }

  /** The first matching spoke, ignoring health and quotas (the pure routing decision). */
  first(hostname: string): string | undefined {
    for (const s of this.spokes) {
      for (const p of s.patterns) if (p.test(hostname)) return s.id;
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
