/**
 * Build steps that are skipped when their inputs did not change: each output has a stamp
 * beside it holding the sha256 of everything it was made from. Packaging copies and
 * compresses hundreds of MiB, so a second `npm run package` (or a second test file asking
 * for the packages) only redoes what changed.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An output and the key of the inputs it was made from. */
export interface Step {
  path: string;
  key: string;
}

export function sha256Of(parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? `${p.length}:${p}` : p);
  return h.digest('hex');
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Runs `make` unless `output` exists and was made from inputs with this `key`. */
export async function stamped(output: string, key: string, make: () => Promise<void> | void): Promise<boolean> {
  const stamp = `${output}.stamp`;
  if (existsSync(output) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return false;
  rmSync(stamp, { force: true });
  await make();
  writeFileSync(stamp, key);
  return true;
}

/**
 * The Node binary running this build, without its symbol and debug sections (about 12 MiB
 * less; the dynamic symbols native addons link against stay). Both the agent executable and
 * the hub's and spoke's private runtime start from it.
 */
export async function strippedNode(work: string): Promise<Step> {
  const path = join(work, 'node');
  const s = statSync(process.execPath);
  const key = sha256Of([process.execPath, process.version, String(s.size), String(s.mtimeMs)]);
  await stamped(path, key, () => {
    execFileSync('strip', ['--strip-all', '-o', path, process.execPath]);
  });
  return { path, key };
}
