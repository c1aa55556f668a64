import { AxleError, ErrorCode } from './errors.js';
import { custom, type Schema } from './schema.js';

/**
 * One spelling per host. Everything that names an envoy (enrollment, lookups, routing, globs,
 * token patterns, re-key, reassign, the wire) goes through `canonicalHostname`, so
 * "WEB1.DC1.EXAMPLE.COM" and "web1.dc1.example.com." are the host "web1.dc1.example.com", never
 * a second identity next to it.
 *
 * Canonical means: lowercase ASCII, no trailing dot, at most 253 characters, labels of 1-63
 * letters, digits and hyphens that neither start nor end with a hyphen (RFC 1123).
 */
export const MAX_HOSTNAME_LENGTH = 253;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why `name` (already lowercased, trailing dot removed) is not a host name, or undefined. */
function problem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_HOSTNAME_LENGTH)
    return `is ${name.length} characters; a host name has at most ${MAX_HOSTNAME_LENGTH}`;
  for (const label of name.split('.')) {
    if (label.length === 0) return 'has an empty label (two dots in a row, or a leading dot)';
    if (label.length > 63) return `has a label of ${label.length} characters; labels have at most 63`;
    if (!LABEL.test(label)) {
      return `has the label "${label.slice(0, 63)}"; labels are letters, digits and "-", not starting or ending with "-"`;
    }
  }
  return undefined;
}

/** The canonical form of `raw`, or an AxleError (E_INVALID) saying why it is not a host name. */
export function canonicalHostname(raw: string): string {
  // Only ASCII folds: a name with other letters is refused below, not folded into a lookalike.
  const lower = raw.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const name = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  const why = problem(name);
  if (why) throw new AxleError(ErrorCode.INVALID, `host name "${raw.slice(0, 80)}" ${why}`);
  return name;
}

/** True when `name` is already in canonical form. */
export function isCanonicalHostname(name: string): boolean {
  return problem(name) === undefined;
}

/**
 * Wire and API fields that carry a host name: only the canonical form is accepted, so a peer
 * that sends "Web1." learns the rule instead of creating a second host.
 */
export function hostnameField(): Schema<string> {
  return custom('hostname', (v) => {
    if (typeof v !== 'string') throw new Error('expected a host name');
    if (problem(v) === undefined) return v;
    const canonical = canonicalHostname(v);
    throw new Error(
      `host name "${v.slice(0, 80)}" is not in canonical form; send "${canonical}" (lowercase, no trailing dot)`,
    );
  });
}

/**
 * Host names an operator writes (envoy.yaml, the admin API's import): taken in any case and
 * with a trailing dot, and kept canonical. Unlike `hostnameField`, which refuses a peer's
 * non-canonical spelling, this one folds it.
 */
export function operatorHostnameField(): Schema<string> {
  return custom(
    'hostname',
    (v) => {
      if (typeof v !== 'string') throw new Error('expected a host name');
      return canonicalHostname(v);
    },
    ['web1.dc1.example.com'],
  );
}

/** An envoy's connection id is its host name, and only the canonical spelling may connect. */
export function requireCanonicalEnvoyId(id: string): void {
  if (isCanonicalHostname(id)) return;
  let hint = '';
  try {
    hint = `; connect as "${canonicalHostname(id)}" (upgrade the agent, or set hostname in envoy.yaml)`;
  } catch {
    hint = '; set a valid hostname in envoy.yaml';
  }
  throw new AxleError(ErrorCode.INVALID, `envoy id "${id.slice(0, 80)}" is not a canonical host name${hint}`);
}
