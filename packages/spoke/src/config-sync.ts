import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  AxleError,
  Assembler,
  CHUNK_BYTES,
  DEFAULT_BUNDLE_LIMITS,
  ErrorCode,
  activateBundle,
  extractBundle,
  fromBase64,
  inspectBundle,
  liveVersion,
  toBase64,
  verifyBundle,
  type BundleLimits,
  type Logger,
  type MessageOf,
  type RevertOrder,
} from '@axle/shared';
import { writeDurably } from './durable-file.js';
import { RevertBook } from './reverts.js';

interface Upload {
  version: number;
  stage: boolean;
  hash: Uint8Array;
  signature: Uint8Array;
  parts: Assembler;
}

interface StoredMeta {
  version: number;
  hash: string;
  signature: string;
  hubKey: string;
}

/**
 * The spoke's copy of the published config: verifies each offered bundle (hub signature,
 * content hash, a version newer than its own), extracts it safely and switches
 * `<data_dir>/config/.live` to it atomically, and keeps the signed bytes to serve envoys.
 * A refused bundle leaves `.live` exactly as it was.
 *
 * For a rollout it also holds one *staged* version: verified and kept, served only to an
 * envoy that asks for it by number (a rollout's order tells it to), never at check-ins. When
 * a rollout is rolled back the hub's signed revert orders are kept here, so a host that took
 * the withdrawn version is moved back when it next checks in, on whichever spoke it is.
 */
export class ConfigSync {
  readonly dir: string;
  private chain: Promise<unknown> = Promise.resolve();
  private meta: StoredMeta | undefined;
  private staged: StoredMeta | undefined;
  /** Signed bytes by version: the live one and the staged one, read from disk once. */
  private readonly bytes = new Map<number, Uint8Array>();
  private upload: Upload | undefined;
  readonly reverts: RevertBook;

  constructor(
    dataDir: string,
    private readonly trusted: Uint8Array[],
    private readonly log: Logger,
    private readonly limits?: BundleLimits,
  ) {
    this.dir = join(dataDir, 'config');
    mkdirSync(join(this.dir, 'bundles'), { recursive: true, mode: 0o700 });
    const live = liveVersion(this.dir);
    const m = this.readMeta(`${live}.json`);
    if (m?.version === live) this.meta = m;
    const s = this.readMeta('staged.json');
    if (s && s.version > this.version) this.staged = s;
    this.reverts = new RevertBook(join(this.dir, 'reverts.json'), log);
  }

  get version(): number {
    return this.meta?.version ?? 0;
  }

  /** The version held for a rollout (0: none). */
  get stagedVersion(): number {
    return this.staged?.version ?? 0;
  }

  /**
   * Takes one chunk of an offered bundle. Answers with the live version and, until the last
   * chunk is in, how many bytes it holds; the last chunk is verified and made live (or kept
   * staged, when the offer says `stage`).
   */
  accept(chunk: MessageOf<'config_offer'>): Promise<MessageOf<'config_ok'>> {
    const run = this.chain.then(() => this.take(chunk));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The rollout of staged `version` stopped: drop it, and keep the order that moves its hosts back. */
  unstage(m: MessageOf<'config_unstage'>): Promise<MessageOf<'config_ok'>> {
    const run = this.chain.then(() => {
      if (this.staged?.version === m.version) {
        this.dropFiles(m.version);
        rmSync(join(this.dir, 'bundles', 'staged.json'), { force: true });
        this.staged = undefined;
        this.log.info({ version: m.version }, 'dropped the staged config bundle');
      }
      if (m.revert) this.reverts.add(m.revert);
      return this.ok();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The order that moves a host on `applied` back to the live version, if the hub gave one. */
  revertFor(applied: number): RevertOrder | undefined {
    return applied > this.version ? this.reverts.find(applied, this.version) : undefined;
  }

  private ok(received?: number): MessageOf<'config_ok'> {
    return {
      type: 'config_ok',
      version: this.version,
      ...(received !== undefined ? { received } : {}),
      ...(this.staged ? { staged: this.staged.version } : {}),
    };
  }

  private async take(c: MessageOf<'config_offer'>): Promise<MessageOf<'config_ok'>> {
    const stage = c.stage === true;
    if (c.version <= this.version) {
      throw new AxleError(
        ErrorCode.BUNDLE_REFUSED,
        `config bundle refused: version ${c.version} is not newer than this spoke's ${this.version}`,
      );
    }
    if (c.offset === 0) {
      this.upload = {
        version: c.version,
        stage,
        hash: c.hash,
        signature: c.signature,
        parts: new Assembler(c.total, (this.limits ?? DEFAULT_BUNDLE_LIMITS).maxTotalBytes),
      };
    }
    const up = this.upload;
    if (!up || up.version !== c.version || up.stage !== stage || up.parts.total !== c.total) {
      throw new AxleError(
        ErrorCode.INVALID,
        `chunk of version ${c.version} at ${c.offset} does not continue an upload here; send from offset 0`,
      );
    }
    if (!up.parts.add(c.offset, c.data)) return this.ok(up.parts.size);
    this.upload = undefined;
    const b = { version: c.version, hash: up.hash, signature: up.signature, data: up.parts.bytes };
    if (stage) await this.hold(b);
    else await this.install(b);
    return this.ok();
  }

  private verified(o: { version: number; hash: Uint8Array; signature: Uint8Array; data: Uint8Array }): StoredMeta {
    const hubKey = verifyBundle(o, this.trusted);
    return {
      version: o.version,
      hash: Buffer.from(o.hash).toString('hex'),
      signature: toBase64(o.signature),
      hubKey: toBase64(hubKey),
    };
  }

  /** Checks a staged bundle as fully as a live one (signature, hash, every entry) and keeps it unserved. */
  private async hold(o: { version: number; hash: Uint8Array; signature: Uint8Array; data: Uint8Array }): Promise<void> {
    try {
      const meta = this.verified(o);
      inspectBundle(o.data, this.limits);
      writeDurably(join(this.dir, 'bundles', `${o.version}.tar.gz`), o.data);
      writeDurably(join(this.dir, 'bundles', 'staged.json'), Buffer.from(JSON.stringify(meta)));
      const before = this.staged?.version;
      this.staged = meta;
      this.bytes.set(o.version, o.data);
      if (before !== undefined && before !== o.version) this.dropFiles(before);
    } catch (e) {
      this.log.warn({ version: o.version, err: (e as Error).message }, 'refused staged config bundle');
      throw e;
    }
    this.log.info({ version: o.version }, 'config bundle staged for a rollout');
  }

  private async install(o: {
    version: number;
    hash: Uint8Array;
    signature: Uint8Array;
    data: Uint8Array;
  }): Promise<void> {
    try {
      const meta = this.verified(o);
      const staging = await extractBundle(o.data, this.dir, this.limits);
      // Bytes first, then the switch: a crash in between leaves the old version live and served.
      writeDurably(join(this.dir, 'bundles', `${o.version}.tar.gz`), o.data);
      writeDurably(join(this.dir, 'bundles', `${o.version}.json`), Buffer.from(JSON.stringify(meta)));
      activateBundle(this.dir, staging, o.version);
      const previous = this.meta?.version;
      this.meta = meta;
      this.bytes.set(o.version, o.data);
      // A staged version at or below the live one has been made live or overtaken.
      if (this.staged && this.staged.version <= o.version) {
        rmSync(join(this.dir, 'bundles', 'staged.json'), { force: true });
        this.staged = undefined;
      }
      this.prune(o.version, previous);
    } catch (e) {
      this.log.warn({ version: o.version, err: (e as Error).message }, 'refused config bundle');
      throw e;
    }
    this.log.info({ version: o.version }, 'config bundle is live');
  }

  private prune(current: number, previous: number | undefined): void {
    const keep = new Set([current, previous, this.staged?.version]);
    for (const name of readdirSync(join(this.dir, 'bundles'))) {
      const v = Number(name.split('.')[0]);
      if (Number.isInteger(v) && !keep.has(v)) rmSync(join(this.dir, 'bundles', name), { force: true });
    }
    for (const v of this.bytes.keys()) if (!keep.has(v)) this.bytes.delete(v);
  }

  private dropFiles(version: number): void {
    if (version === this.version) return;
    rmSync(join(this.dir, 'bundles', `${version}.tar.gz`), { force: true });
    this.bytes.delete(version);
  }

  private readMeta(name: string): StoredMeta | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'bundles', name), 'utf8')) as StoredMeta;
    } catch {
      // No bundle yet (version 0), or the bytes were lost: the hub re-sends on the next status.
      return undefined;
    }
  }

  /**
   * One chunk of a bundle as an envoy fetches it: the live one (`version` 0 or the live
   * number), the previous live one, or the staged one when the envoy names it (a rollout's
   * order). The envoy checks the hub's signature and the version rule itself.
   */
  chunk(version: number, offset = 0): MessageOf<'config_bundle'> {
    const m =
      version === 0 || version === this.meta?.version
        ? this.meta
        : version === this.staged?.version
          ? this.staged
          : this.readMeta(`${version}.json`);
    if (!m) {
      throw new AxleError(
        ErrorCode.NOT_FOUND,
        version === 0
          ? 'no config has been published to this spoke yet'
          : `this spoke does not hold config version ${version} (live: ${this.version}, staged: ${this.stagedVersion || 'none'})`,
      );
    }
    let bytes = this.bytes.get(m.version);
    if (!bytes) {
      bytes = new Uint8Array(readFileSync(join(this.dir, 'bundles', `${m.version}.tar.gz`)));
      if (m === this.meta || m === this.staged) this.bytes.set(m.version, bytes);
    }
    if (offset >= bytes.length)
      throw new AxleError(
        ErrorCode.INVALID,
        `offset ${offset} is past the end of version ${m.version} (${bytes.length} bytes)`,
      );
    return {
      type: 'config_bundle',
      version: m.version,
      hash: new Uint8Array(Buffer.from(m.hash, 'hex')),
      signature: fromBase64(m.signature, 64),
      hubKey: fromBase64(m.hubKey, 32),
      total: bytes.length,
      offset,
      data: bytes.subarray(offset, offset + CHUNK_BYTES),
    };
  }
}
