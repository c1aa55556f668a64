import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
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
  liveVersion,
  toBase64,
  verifyBundle,
  type BundleLimits,
  type Logger,
  type MessageOf,
} from '@axle/shared';

interface Upload {
  version: number;
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
 */
export class ConfigSync {
  readonly dir: string;
  private chain: Promise<unknown> = Promise.resolve();
  private meta: StoredMeta | undefined;
  private bytes: Uint8Array | undefined;
  private upload: Upload | undefined;

  constructor(
    dataDir: string,
    private readonly trusted: Uint8Array[],
    private readonly log: Logger,
    private readonly limits?: BundleLimits,
  ) {
    this.dir = join(dataDir, 'config');
    mkdirSync(join(this.dir, 'bundles'), { recursive: true, mode: 0o700 });
    const live = liveVersion(this.dir);
    try {
      const m = JSON.parse(readFileSync(join(this.dir, 'bundles', `${live}.json`), 'utf8')) as StoredMeta;
      if (m.version === live) this.meta = m;
    } catch {
      // No bundle yet (version 0), or the bytes were lost: the hub re-sends on the next status.
    }
  }

  get version(): number {
    return this.meta?.version ?? 0;
  }

  /**
   * Takes one chunk of an offered bundle. Answers with the live version and, until the last
   * chunk is in, how many bytes it holds; the last chunk is verified and made live.
   */
  accept(chunk: MessageOf<'config_offer'>): Promise<MessageOf<'config_ok'>> {
    const run = this.chain.then(() => this.take(chunk));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async take(c: MessageOf<'config_offer'>): Promise<MessageOf<'config_ok'>> {
    if (c.version <= this.version) {
      throw new AxleError(
        ErrorCode.BUNDLE_REFUSED,
        `config bundle refused: version ${c.version} is not newer than this spoke's ${this.version}`,
      );
    }
    if (c.offset === 0) {
      this.upload = {
        version: c.version,
        hash: c.hash,
        signature: c.signature,
        parts: new Assembler(c.total, (this.limits ?? DEFAULT_BUNDLE_LIMITS).maxTotalBytes),
      };
    }
    const up = this.upload;
    if (!up || up.version !== c.version || up.parts.total !== c.total) {
      throw new AxleError(
        ErrorCode.INVALID,
        `chunk of version ${c.version} at ${c.offset} does not continue an upload here; send from offset 0`,
      );
    }
    if (!up.parts.add(c.offset, c.data)) return { type: 'config_ok', version: this.version, received: up.parts.size };
    this.upload = undefined;
    return {
      type: 'config_ok',
      version: await this.install({ version: c.version, hash: up.hash, signature: up.signature, data: up.parts.bytes }),
    };
  }

  private async install(o: {
    version: number;
    hash: Uint8Array;
    signature: Uint8Array;
    data: Uint8Array;
  }): Promise<number> {
    let hubKey: Uint8Array;
    try {
      hubKey = verifyBundle(o, this.trusted);
      const staging = await extractBundle(o.data, this.dir, this.limits);
      // Bytes first, then the switch: a crash in between leaves the old version live and served.
      const meta: StoredMeta = {
        version: o.version,
        hash: Buffer.from(o.hash).toString('hex'),
        signature: toBase64(o.signature),
        hubKey: toBase64(hubKey),
      };
      writeDurably(join(this.dir, 'bundles', `${o.version}.tar.gz`), o.data);
      writeDurably(join(this.dir, 'bundles', `${o.version}.json`), Buffer.from(JSON.stringify(meta)));
      activateBundle(this.dir, staging, o.version);
      const previous = this.meta?.version;
      this.meta = meta;
      this.bytes = o.data;
      this.prune(o.version, previous);
    } catch (e) {
      this.log.warn({ version: o.version, err: (e as Error).message }, 'refused config bundle');
      throw e;
    }
    this.log.info({ version: o.version }, 'config bundle is live');
    return o.version;
  }

  private prune(current: number, previous: number | undefined): void {
    for (const name of readdirSync(join(this.dir, 'bundles'))) {
      const v = Number(name.split('.')[0]);
      if (v !== current && v !== previous) rmSync(join(this.dir, 'bundles', name), { force: true });
    }
  }

  /** One chunk of the live bundle, as an envoy fetches it. */
  chunk(offset = 0): MessageOf<'config_bundle'> {
    const m = this.meta;
    if (!m) throw new AxleError(ErrorCode.NOT_FOUND, 'no config has been published to this spoke yet');
    this.bytes ??= new Uint8Array(readFileSync(join(this.dir, 'bundles', `${m.version}.tar.gz`)));
    if (offset >= this.bytes.length)
      throw new AxleError(
        ErrorCode.INVALID,
        `offset ${offset} is past the end of version ${m.version} (${this.bytes.length} bytes)`,
      );
    return {
      type: 'config_bundle',
      version: m.version,
      hash: new Uint8Array(Buffer.from(m.hash, 'hex')),
      signature: fromBase64(m.signature, 64),
      hubKey: fromBase64(m.hubKey, 32),
      total: this.bytes.length,
      offset,
      data: this.bytes.subarray(offset, offset + CHUNK_BYTES),
    };
  }
}

function writeDurably(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
