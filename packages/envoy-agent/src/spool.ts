import { mkdirSync, readdirSync } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, parse, runSchema, type Logger, type Run } from '@axle/shared';
import { syncDir, writeFileAtomic } from './fsutil.js';

const NAME = /^(\d{12})-([A-Za-z0-9-]+)\.json$/;

/**
 * Run reports waiting for a spoke's ack: one JSON file per run, written atomically and
 * fsynced before anyone tries to send it, removed only once a spoke acknowledged it. Files
 * are named by a rising sequence number, so the order survives restarts. One file per
 * report keeps hundreds of envoys in one process cheap (no database per envoy).
 */
export class Spool {
  readonly dir: string;
  private readonly rejectedDir: string;
  private readonly max: number;
  private readonly log: Logger;
  /** File names, oldest first. */
  private names: string[];
  private seq: number;
  /** Reports dropped because the spool was full, since this process started. */
  dropped = 0;

  constructor(dir: string, o: { max: number; log: Logger }) {
    this.dir = dir;
    this.rejectedDir = join(dir, 'rejected');
    this.max = o.max;
    this.log = o.log;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.names = readdirSync(dir)
      .filter((n) => NAME.test(n))
      .sort();
    const last = this.names.at(-1);
    this.seq = last ? Number(NAME.exec(last)?.[1] ?? 0) : 0;
  }

  get size(): number {
    return this.names.length;
  }

  /** Durably stores a report; drops the oldest when full (counted and logged). */
  async put(run: Run): Promise<void> {
    const name = `${String(++this.seq).padStart(12, '0')}-${run.id}.json`;
    await writeFileAtomic(join(this.dir, name), JSON.stringify(run));
    this.names.push(name);
    while (this.names.length > this.max) {
      const oldest = this.names.shift() as string;
      this.dropped += 1;
      await unlink(join(this.dir, oldest)).catch(() => undefined);
      this.log.warn(
        { dropped: oldest, spoolMax: this.max, droppedTotal: this.dropped },
        'report spool full: dropped the oldest report',
      );
    }
  }

  /** The oldest pending reports, up to `limit`, in order. Unreadable files are set aside, not retried forever. */
  async peek(limit: number): Promise<{ name: string; run: Run }[]> {
    const out: { name: string; run: Run }[] = [];
    for (const name of this.names.slice(0, limit)) {
      try {
        const run = parse(
          runSchema,
          JSON.parse(await readFile(join(this.dir, name), 'utf8')) as unknown,
          `spooled report ${name}`,
          ErrorCode.INVALID,
        );
        out.push({ name, run });
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') {
          this.forget(name);
          continue;
        }
        await this.reject(name, (e as Error).message);
      }
    }
    return out;
  }

  /** A spoke acknowledged it: the report may now leave the host. */
  async remove(name: string): Promise<void> {
    this.forget(name);
    await unlink(join(this.dir, name)).catch(() => undefined);
    await syncDir(this.dir);
  }

  /**
   * A report no spoke will ever accept (invalid) would block the queue forever; it is moved to
   * `spool/rejected/` for the operator instead of being deleted.
   */
  async reject(name: string, reason: string): Promise<void> {
    this.forget(name);
    mkdirSync(this.rejectedDir, { recursive: true, mode: 0o700 });
    await rename(join(this.dir, name), join(this.rejectedDir, name)).catch(() => undefined);
    this.log.error({ report: name, reason, dir: this.rejectedDir }, 'report refused as invalid; moved aside');
  }

  private forget(name: string): void {
    const i = this.names.indexOf(name);
    if (i >= 0) this.names.splice(i, 1);
  }
}
