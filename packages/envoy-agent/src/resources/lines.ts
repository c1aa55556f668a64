import { readFile } from 'node:fs/promises';
import type { ResourceOf } from '../policy.js';
import { failed, ok, type Outcome, type ResourceContext } from './context.js';
import { kindOf, lstatOrNone, syncFile } from './files.js';

/**
 * `line` and `block` edit part of a file someone else owns (a package's sshd_config, a
 * distribution's sysctl.conf), leaving the rest as it is. Both need the file to exist: a file
 * that should be created whole is a `file` resource. The file keeps its mode and owner.
 */

/**
 * Reads `path`, lets `edit` compute the new text (or refuse with an outcome), and writes it
 * back keeping mode and owner; `inPlace` is the message when nothing had to change.
 */
async function editFile(
  path: string,
  state: 'present' | 'absent',
  sensitive: boolean,
  ctx: ResourceContext,
  edit: (text: string) => string | Outcome,
  inPlace: string,
): Promise<Outcome> {
  const st = await lstatOrNone(path);
  if (!st)
    return state === 'absent'
      ? ok('file absent')
      : failed(`${path} does not exist; create it with a file resource (or the package that owns it) first`);
  if (!st.isFile()) return failed(`${path} is a ${kindOf(st)}, not a regular file`);
  const text = await readFile(path, 'utf8');
  const next = edit(text);
  if (typeof next !== 'string') return next;
  if (next === text) return ok(inPlace);
  const keep = { mode: undefined, uid: undefined, gid: undefined, sensitive };
  return syncFile(path, Buffer.from(next), keep, ctx);
}

const splitLines = (text: string) => {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
};
const joinLines = (lines: string[]) => (lines.length > 0 ? `${lines.join('\n')}\n` : '');

/**
 * present: the first line matching `match` (or equal to `content`) becomes `content`, later
 * matching lines go, and with no match `content` is appended. absent: lines equal to
 * `content` (or matching `match`) go.
 */
export function editLine(text: string, r: Pick<ResourceOf<'line'>, 'content' | 'match' | 'state'>): string {
  const re = r.match !== undefined ? new RegExp(r.match) : undefined;
  const hit = (l: string) => l === r.content || (re?.test(l) ?? false);
  const lines = splitLines(text);
  if (r.state === 'absent') return joinLines(lines.filter((l) => !(re ? re.test(l) : l === r.content)));
  const first = lines.findIndex(hit);
  if (first === -1) return joinLines([...lines, r.content]);
  return joinLines(lines.flatMap((l, i) => (i === first ? [r.content] : i > first && hit(l) ? [] : [l])));
}

export function applyLine(r: ResourceOf<'line'>, ctx: ResourceContext): Promise<Outcome> {
  return editFile(r.line, r.state, r.sensitive, ctx, (text) => editLine(text, r), `line ${r.state}`);
}

/** The marker lines of a block: "# BEGIN AXLE MANAGED BLOCK app" by default. */
export function blockMarkers(r: Pick<ResourceOf<'block'>, 'marker' | 'name'>): [string, string] {
  const m = r.marker ?? `# {mark} AXLE MANAGED BLOCK${r.name ? ` ${r.name}` : ''}`;
  return [m.replace('{mark}', 'BEGIN'), m.replace('{mark}', 'END')];
}

/** Replaces the text between the markers (markers included), or appends a new block at the end. */
export function editBlock(text: string, r: Pick<ResourceOf<'block'>, 'content' | 'marker' | 'name' | 'state'>): string {
  const [begin, end] = blockMarkers(r);
  const lines = splitLines(text);
  const b = lines.indexOf(begin);
  const e = b === -1 ? -1 : lines.indexOf(end, b + 1);
  const body = r.state === 'present' ? [begin, ...splitLines(r.content), end] : [];
  if (b === -1 || e === -1) return r.state === 'present' ? joinLines([...lines, ...body]) : text;
  return joinLines([...lines.slice(0, b), ...body, ...lines.slice(e + 1)]);
}

export function applyBlock(r: ResourceOf<'block'>, ctx: ResourceContext): Promise<Outcome> {
  const [begin, end] = blockMarkers(r);
  const check = (text: string) => {
    const lines = splitLines(text);
    const b = lines.indexOf(begin);
    if (b !== -1 && lines.indexOf(end, b + 1) === -1)
      return failed(`${r.block} has the line "${begin}" but no "${end}" after it; fix the file by hand`);
    return editBlock(text, r);
  };
  return editFile(r.block, r.state, r.sensitive, ctx, check, r.state === 'present' ? 'block in place' : 'block absent');
}
