import { createHash } from 'node:crypto';

/**
 * Unified diffs for results: what a changed (or drifting) file, line or block looked like
 * before and after. Bounded three ways: inputs over 1 MiB are not diffed, a diff is cut at
 * 8 KiB, and a run stops attaching diffs after 128 KiB so a report stays far below the frame
 * limit. Content marked sensitive is never diffed; its result names only hashes.
 */
export const DIFF_LIMITS = Object.freeze({ inputBytes: 1024 * 1024, diffChars: 8 * 1024, runChars: 128 * 1024 });

export const shortHash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

const isText = (b: Uint8Array): boolean => {
  if (b.subarray(0, 8192).includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

export interface ContentChange {
  /** A phrase for the result message ("content differs", with hashes when sensitive or binary). */
  summary: string;
  diff?: string;
}

let diffModule: Promise<typeof import('diff')> | undefined;

/** Describes how `after` differs from `before` (undefined: the file does not exist yet). */
export async function describeChange(
  path: string,
  before: Uint8Array | undefined,
  after: Uint8Array,
  sensitive: boolean,
): Promise<ContentChange> {
  const hashes = `sha256 ${before ? shortHash(before) : 'none'} -> ${shortHash(after)}`;
  if (sensitive) return { summary: `content differs (sensitive; ${hashes})` };
  const old = before ?? new Uint8Array(0);
  if (old.length > DIFF_LIMITS.inputBytes || after.length > DIFF_LIMITS.inputBytes)
    return { summary: `content differs (too large to diff; ${hashes})` };
  if (!isText(old) || !isText(after)) return { summary: `binary content differs (${hashes})` };
  // Loaded on the first change: an idle agent whose hosts are in sync never holds it.
  diffModule ??= import('diff');
  const { createTwoFilesPatch } = await diffModule;
  const diff = createTwoFilesPatch(
    before ? path : '/dev/null',
    path,
    Buffer.from(old).toString('utf8'),
    Buffer.from(after).toString('utf8'),
    undefined,
    undefined,
    { context: 3, timeout: 500 },
  );
  if (diff === undefined) return { summary: `content differs (diff took too long; ${hashes})` };
  // The header line of "=====" that jsdiff adds carries nothing a reader needs.
  return { summary: 'content differs', diff: capDiff(diff.replace(/^=+\n/, '')) };
}

export function capDiff(diff: string): string {
  if (diff.length <= DIFF_LIMITS.diffChars) return diff;
  const cut = diff.lastIndexOf('\n', DIFF_LIMITS.diffChars - 100);
  const rest = diff.slice(cut + 1).split('\n').length - 1;
  return `${diff.slice(0, cut + 1)}... (diff cut at ${DIFF_LIMITS.diffChars / 1024} KiB; ${rest} more lines)\n`;
}
