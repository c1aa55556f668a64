import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Parser, Unpack, create, type ReadEntry } from 'tar';
import { AxleError, ErrorCode } from './errors.js';
import type { Signer } from './sign.js';
import { verifyDetached } from './sign.js';

/**
 * Config bundles: the hub tars its config directory deterministically, hashes and signs it;
 * spokes and envoys verify, extract into a private staging directory with every check a
 * hostile archive calls for, and switch `.live` to it by one atomic rename.
 */
export interface BundleLimits {
  maxFiles: number;
  maxFileBytes: number;
  maxTotalBytes: number;
  /** Uncompressed/compressed ratio above which an archive over 1 MiB is taken for a bomb. */
  maxRatio: number;
}

export const DEFAULT_BUNDLE_LIMITS: BundleLimits = Object.freeze({
  maxFiles: 10_000,
  maxFileBytes: 16 * 1024 * 1024,
  maxTotalBytes: 64 * 1024 * 1024,
  maxRatio: 200,
});

const SIGN_CONTEXT = Buffer.from('axle-bundle-v1');

const refused = (why: string) => new AxleError(ErrorCode.BUNDLE_REFUSED, `config bundle refused: ${why}`);

/** Lists regular files and directories under `dir`, sorted; refuses links and special files. */
function listTree(dir: string, limits: BundleLimits): string[] {
  const out: string[] = [];
  let total = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const st = lstatSync(full);
      const rel = relative(dir, full).split(sep).join(posix.sep);
      if (st.isDirectory()) {
        out.push(`${rel}/`);
        walk(full);
      } else if (st.isFile()) {
        total += st.size;
        if (st.size > limits.maxFileBytes)
          throw new AxleError(
            ErrorCode.INVALID,
            `${rel} is ${st.size} bytes, over the ${limits.maxFileBytes}-byte file limit`,
          );
        out.push(rel);
      } else {
        throw new AxleError(
          ErrorCode.INVALID,
          `${rel} is not a regular file or directory; bundles carry only files and directories (no links or devices)`,
        );
      }
      if (out.length > limits.maxFiles)
        throw new AxleError(ErrorCode.INVALID, `config directory has more than ${limits.maxFiles} entries`);
    }
  };
  walk(dir);
  if (total > limits.maxTotalBytes)
    throw new AxleError(
      ErrorCode.INVALID,
      `config directory holds ${total} bytes, over the ${limits.maxTotalBytes}-byte limit`,
    );
  return out;
}

/** Same directory contents give the same bytes: sorted entries, fixed mtime, no owner names. */
export async function buildBundle(
  dir: string,
  limits: BundleLimits = DEFAULT_BUNDLE_LIMITS,
): Promise<{ data: Buffer; hash: Uint8Array; files: string[] }> {
  const entries = listTree(dir, limits);
  const chunks: Buffer[] = [];
  const stream = create(
    { gzip: { level: 9 }, portable: true, mtime: new Date(0), cwd: dir, noDirRecurse: true },
    entries.length > 0 ? entries : [],
  );
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  const data = Buffer.concat(chunks);
  return { data, hash: sha256(data), files: entries.filter((e) => !e.endsWith('/')) };
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function signedBytes(version: number, hash: Uint8Array): Buffer {
  const v = Buffer.alloc(8);
  v.writeBigUInt64BE(BigInt(version));
  return Buffer.concat([SIGN_CONTEXT, v, hash]);
}

export function signBundle(version: number, hash: Uint8Array, signer: Signer): Uint8Array {
  return signer.sign(signedBytes(version, hash));
}

/** Checks the hash of `data` and that one of `trusted` keys signed (version, hash); returns that key. */
export function verifyBundle(
  b: { version: number; hash: Uint8Array; signature: Uint8Array; data: Uint8Array },
  trusted: readonly Uint8Array[],
): Uint8Array {
  if (!Buffer.from(sha256(b.data)).equals(Buffer.from(b.hash)))
    throw refused(`content hash does not match (version ${b.version})`);
  const msg = signedBytes(b.version, b.hash);
  const signer = trusted.find((k) => verifyDetached(msg, b.signature, k));
  if (!signer) throw refused(`signature on version ${b.version} is not from a trusted hub key`);
  return signer;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'Directory']);

function checkPath(p: string): string | undefined {
  if (p.length === 0 || p.length > 1024) return 'empty or overlong path';
  if (p.includes('\0')) return 'NUL byte in path';
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p) || p.startsWith('\\')) return `absolute path "${p}"`;
  const parts = p.split(/[\\/]+/);
  if (parts.includes('..')) return `path "${p}" climbs out of the bundle with ".."`;
  return undefined;
}

/**
 * Reads every header before anything touches the disk: only files and directories, relative
 * paths inside the tree, and sizes and counts within limits.
 */
function scanEntries(tarBytes: Buffer, limits: BundleLimits): void {
  let files = 0;
  let total = 0;
  let problem: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      entry.resume();
      if (problem) return;
      const p = entry.path;
      if (!ALLOWED_TYPES.has(entry.type))
        problem = `entry "${p}" is a ${entry.type}; only files and directories are allowed`;
      else problem = checkPath(p);
      if (problem) return;
      if (entry.type !== 'Directory') {
        files++;
        total += entry.size ?? 0;
        if ((entry.size ?? 0) > limits.maxFileBytes)
          problem = `"${p}" is ${entry.size} bytes, over the ${limits.maxFileBytes}-byte file limit`;
        else if (files > limits.maxFiles) problem = `more than ${limits.maxFiles} files`;
        else if (total > limits.maxTotalBytes) problem = `more than ${limits.maxTotalBytes} bytes in all`;
      }
    },
  });
  let parseError: Error | undefined;
  parser.on('error', (e: Error) => (parseError = e));
  parser.on('warn', (_code: string, msg: string | Error) => (parseError ??= new Error(String(msg))));
  parser.end(tarBytes);
  if (problem) throw refused(problem);
  if (parseError) throw refused(`not a valid tar archive (${parseError.message})`);
}

/**
 * Extracts into a fresh directory (mode 0700) under `parent` and returns it. Nothing is
 * written unless every entry passed `scanEntries`; the unpacker is strict and filtered too,
 * in case the two parsers ever disagree.
 */
export async function extractBundle(
  data: Uint8Array,
  parent: string,
  limits: BundleLimits = DEFAULT_BUNDLE_LIMITS,
): Promise<string> {
  const tarBytes = inspectBundle(data, limits);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const staging = mkdtempSync(join(parent, '.staging-'));
  try {
    await new Promise<void>((resolve, reject) => {
      const unpack = new Unpack({
        cwd: staging,
        strict: true,
        preservePaths: false,
        preserveOwner: false,
        noMtime: true,
        filter: (p: string, entry) => ALLOWED_TYPES.has((entry as ReadEntry).type) && checkPath(p) === undefined,
      });
      unpack.on('error', reject);
      unpack.on('close', () => resolve());
      unpack.end(tarBytes);
    });
    assertPlainTree(staging);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    throw e instanceof AxleError ? e : refused(`extraction failed (${(e as Error).message})`);
  }
  return staging;
}

/**
 * Every check extraction makes, without touching the disk: gzip size and ratio, entry types,
 * paths, sizes and counts. Returns the tar bytes. The hub runs it on what it is about to sign,
 * so it never signs what spokes and envoys would refuse (and refuses it with their message).
 */
export function inspectBundle(data: Uint8Array, limits: BundleLimits = DEFAULT_BUNDLE_LIMITS): Buffer {
  let tarBytes: Buffer;
  const maxTar = limits.maxTotalBytes + (limits.maxFiles + 2) * 1024;
  try {
    tarBytes = gunzipSync(data, { maxOutputLength: maxTar });
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof RangeError || /maxOutputLength|buffer/i.test(msg))
      throw refused(`decompresses to more than ${maxTar} bytes (a gzip bomb?)`);
    throw refused(`not gzip data (${msg})`);
  }
  if (tarBytes.length > 1024 * 1024 && tarBytes.length / Math.max(1, data.length) > limits.maxRatio) {
    throw refused(
      `decompression ratio ${Math.round(tarBytes.length / data.length)}:1 is over ${limits.maxRatio}:1 (a gzip bomb?)`,
    );
  }
  scanEntries(tarBytes, limits);
  return tarBytes;
}

function assertPlainTree(dir: string): void {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    const st = lstatSync(full);
    if (st.isDirectory()) assertPlainTree(full);
    else if (!st.isFile()) throw refused(`extracted entry ${name} is not a regular file`);
  }
}

/**
 * Makes `staging` the live tree of `root` as version `version`: it is renamed into the
 * versions directory, and the link `name` (default `.live`) is replaced by one rename, so
 * readers see the old tree or the new one and never a mix. The previous version is kept for
 * rollback. A real directory where the link belongs (hand-written policies from before the
 * first bundle) is moved aside to `<name>.before-bundles` rather than lost.
 */
export function activateBundle(root: string, staging: string, version: number, name = '.live'): string {
  const versions = join(root, versionsDirOf(name));
  mkdirSync(versions, { recursive: true, mode: 0o755 });
  const target = join(versions, String(version));
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
  const link = join(root, name);
  try {
    if (lstatSync(link).isDirectory()) renameSync(link, `${link}.before-bundles`);
  } catch {
    // Nothing there yet.
  }
  const tmpLink = join(root, `${name}.tmp-${process.pid}`);
  rmSync(tmpLink, { force: true });
  symlinkSync(join(versionsDirOf(name), String(version)), tmpLink);
  const previous = liveVersion(root, name);
  renameSync(tmpLink, link);
  for (const entry of readdirSync(versions)) {
    const v = Number(entry);
    if (Number.isInteger(v) && v !== version && v !== previous)
      rmSync(join(versions, entry), { recursive: true, force: true });
  }
  return link;
}

function versionsDirOf(name: string): string {
  return name === '.live' ? 'versions' : `.${name.replace(/^\./, '')}-versions`;
}

/** The version the link `name` points at, or 0 when there is none yet. */
export function liveVersion(root: string, name = '.live'): number {
  try {
    const v = Number(readlinkSync(join(root, name)).split(/[\\/]/).pop());
    return Number.isInteger(v) && v > 0 ? v : 0;
  } catch {
    return 0;
  }
}
