import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type YAMLError } from 'yaml';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { custom, formatIssues, type Issue, type Schema } from './schema.js';

/** Configs are a few kilobytes; anything far larger is a wrong path, not a config. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Small enough that an alias bomb fails fast, large enough for any honest use of anchors. */
const MAX_ALIAS_COUNT = 100;
/** Keys that would reach Object.prototype (or look as if they might) in whoever consumes the result. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

type Node = unknown;

/** Reads a YAML config file and validates it; throws one BAD_CONFIG error listing every problem. */
export function loadConfig<T>(file: string, schema: Schema<T>): T {
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_CONFIG_BYTES) {
      throw new AxleError(
        ErrorCode.BAD_CONFIG,
        `${file}: is ${buf.length} bytes, larger than the ${MAX_CONFIG_BYTES}-byte limit for a config file; check the path`,
      );
    }
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof AxleError) throw e;
    const reason = e instanceof Error ? e.message : String(e);
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${file}: cannot read config file (${reason}); create it or point the daemon at the right file`,
      { cause: e },
    );
  }
  return parseConfigText(text, file, schema);
}

/**
 * Validates a config already read (from YAML, or built in code by a test or a CLI); throws one
 * BAD_CONFIG error, `source: every problem`. The one check hub, spoke and envoy configs share.
 */
export function configFrom<T>(schema: Schema<T>, raw: unknown, source: string): T {
  const issues: Issue[] = [];
  const c = schema.parse(raw, '', issues);
  if (c === undefined || issues.length > 0) {
    const shown = issues.length > 0 ? issues : [{ path: '', message: 'is not valid' }];
    throw new AxleError(ErrorCode.BAD_CONFIG, `${source}: ${formatIssues(shown)}`);
  }
  return c;
}

/** A bundle file that could not be read or used: "file:line: key: reason". */
export interface ConfigFileError {
  file: string;
  message: string;
}

/**
 * Reads every YAML file (`*.yaml`, `*.yml`, no dot files) of `<configDir>/<folder>` in name
 * order and hands each to `use` with the name its file gives (the file name without its
 * ending). An absent folder holds nothing; an unreadable one, or a file `use` throws on, is
 * reported (the error code dropped), never thrown, so one bad file never hides the others.
 */
export function readConfigFolder(
  configDir: string,
  folder: string,
  use: (file: string, text: string, fileName: string) => void,
): ConfigFileError[] {
  const dir = join(configDir, folder);
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))
      .sort();
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return [];
    return [{ file: dir, message: `${dir}: cannot read ${folder}: ${errorText(e)}` }];
  }
  const errors: ConfigFileError[] = [];
  for (const n of names) {
    const file = join(dir, n);
    try {
      use(file, readFileSync(file, 'utf8'), n.replace(/\.ya?ml$/, ''));
    } catch (e) {
      errors.push({ file, message: e instanceof Error ? e.message.replace(/^E_[A-Z_]+: /, '') : String(e) });
    }
  }
  return errors;
}

/** Parses config text as if read from `file` (the name only appears in messages). */
export function parseConfigText<T>(text: string, file: string, schema: Schema<T>): T {
  return parseConfigLocated(text, file, schema).value;
}

/**
 * Like parseConfigText, and also returns `line(path)`: the line of an issue path such as
 * `resources[2].require[0]`, for problems found after the schema (references, cycles).
 */
export function parseConfigLocated<T>(
  text: string,
  file: string,
  schema: Schema<T>,
): { value: T; line: (path: string) => number } {
  const lc = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lc,
    uniqueKeys: true,
    prettyErrors: true,
    schema: 'core',
    customTags: [],
    // Without this, `!!binary`, `!!set` and friends still resolve under the core schema.
    resolveKnownTags: false,
  });

  // Unresolved tags are only warnings to the parser, but silently reading `!secret x` as
  // the string "x" is exactly the kind of surprise a config loader must not spring.
  const syntax = [...doc.errors, ...doc.warnings];
  if (syntax.length > 0) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${file}: invalid YAML:\n${syntax.map((e) => yamlErrorLine(file, e)).join('\n')}`,
    );
  }
  if (doc.contents === null) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${file}: is empty; write the settings this daemon needs (see the example config)`,
    );
  }

  const lineOf = (n: Node): number | undefined => {
    const range = (n as { range?: [number, number, number] } | null)?.range;
    return range ? lc.linePos(range[0]).line : undefined;
  };

  const keyProblems: string[] = [];
  walk(doc.contents, '', (key, keyPath) => {
    const line = lineOf(key) ?? 1;
    if (!isScalar(key)) {
      keyProblems.push(`${file}:${line}: ${keyPath || '(top)'}: keys must be plain names, not lists or mappings`);
    } else if (FORBIDDEN_KEYS.has(String(key.value))) {
      keyProblems.push(`${file}:${line}: ${keyPath}: the key "${String(key.value)}" is not allowed`);
    }
  });
  if (keyProblems.length > 0) throw new AxleError(ErrorCode.BAD_CONFIG, problemsMessage(file, keyProblems));

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    // The yaml package reports alias bombs and dangling aliases as ReferenceErrors.
    const reason = e instanceof Error ? e.message : String(e);
    throw new AxleError(ErrorCode.BAD_CONFIG, `${file}: cannot expand aliases: ${reason}`, { cause: e });
  }
  if (raw === null || raw === undefined) {
    throw new AxleError(
      ErrorCode.BAD_CONFIG,
      `${file}: is empty; write the settings this daemon needs (see the example config)`,
    );
  }

  const issues: Issue[] = [];
  const value = schema.parse(raw, '', issues);
  if (issues.length > 0 || value === undefined) {
    if (issues.length === 0) issues.push({ path: '', message: 'is not valid' });
    // In file order, so the list reads alongside the file being fixed.
    const located = issues.map((i) => ({ line: locate(doc, i.path, lineOf), i }));
    located.sort((x, y) => x.line - y.line);
    const lines = located.map(({ line, i }) => `${file}:${line}: ${i.path || '(top)'}: ${i.message}`);
    throw new AxleError(ErrorCode.BAD_CONFIG, problemsMessage(file, lines));
  }
  return { value: deepFreeze(value), line: (path) => locate(doc, path, lineOf) };
}

function problemsMessage(file: string, lines: string[]): string {
  const n = lines.length;
  return `${file}: ${n} problem${n === 1 ? '' : 's'} in config:\n${lines.join('\n')}`;
}

function yamlErrorLine(file: string, e: YAMLError): string {
  const pos = e.linePos?.[0];
  // prettyErrors appends " at line L, column C:" and a source excerpt; keep just the reason.
  const reason = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
  return pos ? `${file}:${pos.line}:${pos.col}: ${reason}` : `${file}: ${reason}`;
}

/** Visits every mapping key under `node`, with the dotted path the schema would use for it. */
function walk(node: Node, path: string, onKey: (key: Node, keyPath: string) => void): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '?';
      const p = path ? `${path}.${k}` : k;
      onKey(pair.key, p);
      walk(pair.value, p, onKey);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      walk(item, `${path}[${i}]`, onKey);
    });
  } else if (isPair(node)) {
    walk(node.value, path, onKey);
  }
}

/**
 * Finds the line an issue path such as `spanner.spokes[0].addr` refers to. Walks as far
 * as the document goes, so a missing key reports the line of the mapping that lacks it.
 */
function locate(doc: Document, path: string, lineOf: (n: Node) => number | undefined): number {
  const tokens: (string | number)[] = [];
  for (const m of path.matchAll(/\[(\d+)\]|([^.[\]]+)/g))
    tokens.push(m[1] !== undefined ? Number(m[1]) : (m[2] as string));
  let node: Node = doc.contents;
  let line = lineOf(node) ?? 1;
  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i];
    if (typeof t === 'number' && isSeq(node)) {
      const item: Node = node.items[t];
      if (item === undefined) break;
      node = item;
      line = lineOf(item) ?? line;
      i += 1;
      continue;
    }
    if (typeof t !== 'string' || !isMap(node)) break;
    // Record keys may themselves contain dots; try "a", then "a.b", ... until one exists.
    let matched = false;
    for (let j = i; j < tokens.length && typeof tokens[j] === 'string'; j++) {
      const key = tokens.slice(i, j + 1).join('.');
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      if (pair) {
        line = lineOf(pair.key) ?? line;
        node = pair.value;
        i = j + 1;
        matched = true;
        break;
      }
    }
    if (!matched) break;
  }
  return line;
}

function deepFreeze<T>(v: T): T {
  // Typed arrays cannot be frozen (and core-schema YAML never produces them anyway).
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || Object.isFrozen(v)) return v;
  Object.freeze(v);
  for (const child of Object.values(v)) deepFreeze(child);
  return v;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** Splits "host:port" (IPv6 as "[::1]:port"); the host comes back without brackets. */
export function parseHostPort(addr: string): { host: string; port: number } {
  const fail = (why: string): never => {
    throw new AxleError(
      ErrorCode.INVALID,
      `"${addr}" is not a valid address: ${why}; write host:port, e.g. "hub.example.com:1530" or "[::1]:1530"`,
    );
  };
  if (typeof addr !== 'string') return fail('expected a string');
  const colon = addr.lastIndexOf(':');
  if (colon < 0) return fail('missing ":port"');
  let host = addr.slice(0, colon);
  const portText = addr.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return fail(`port "${portText}" is not a number`);
  const port = Number(portText);
  if (port > 65535) return fail(`port ${port} is above 65535`);
  if (host === '') return fail('the host is empty');
  if (host.startsWith('[') || host.endsWith(']')) {
    if (!host.startsWith('[') || !host.endsWith(']') || !isIPv6(host.slice(1, -1)))
      return fail(`"${host}" is not a bracketed IPv6 address`);
    host = host.slice(1, -1);
    return { host, port };
  }
  if (host.includes(':')) return fail('put IPv6 addresses in brackets');
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  // A name made only of digits and dots is an IPv4 address typed wrong, not a host name.
  if (labels.every((l) => /^\d+$/.test(l))) {
    if (!isIPv4(host)) return fail(`"${host}" is not a valid IPv4 address`);
    return { host, port };
  }
  if (host.length > 253 || !labels.every((l) => LABEL.test(l))) return fail(`"${host}" is not a valid host name`);
  return { host, port };
}

/** Schema for a "host:port" string; the value stays the string as written. */
export function hostPort(): Schema<string> {
  return custom('host:port', (v) => {
    if (typeof v !== 'string') throw new Error(`expected a "host:port" string, got ${v === null ? 'null' : typeof v}`);
    parseHostPort(v);
    return v;
  });
}
