import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AxleError,
  ErrorCode,
  arr,
  fromBase64,
  int,
  loadOrCreateKeyPair,
  obj,
  oneOf,
  opt,
  parse,
  str,
  toBase64,
  type KeyPair,
  type SpokeTarget,
} from '@axle/shared';
import { writeFileAtomic, writeFileAtomicSync } from './fsutil.js';

/** Where this envoy belongs, as the hub last said (or a spoke redirected it). */
export interface Assignment {
  status: 'assigned' | 'pending';
  target?: SpokeTarget;
  epoch: number;
  /** The highest hub term this envoy has seen; orders from a lower term are refused. */
  term: number;
  hubAddrs: string[];
  /** Every hub's key, as a hub's own enrollment or locate answer listed them (never a spoke). */
  hubKeys?: Uint8Array[];
  updatedAt: number;
}

const assignmentFile = obj({
  status: oneOf(['assigned', 'pending'] as const),
  target: opt(obj({ spokeId: str({ min: 1 }), addr: str({ min: 1 }), pubkey: str({ min: 1 }) })),
  epoch: int({ min: 0 }),
  term: int({ min: 0 }),
  hubAddrs: arr(str({ min: 1 })),
  hubKeys: opt(arr(str({ min: 1 }), { max: 17 })),
  updatedAt: int({ min: 0 }),
});

/**
 * The envoy's own state under `state_dir`: `key` (0600), `assignment.json`,
 * `config-version`, and the report spool in `spool/`. Every write is atomic and fsynced.
 */
export class StateStore {
  readonly dir: string;
  readonly keyFile: string;
  private readonly assignmentPath: string;
  private readonly versionPath: string;
  private current: Assignment | undefined;

  constructor(dir: string) {
    this.dir = dir;
    this.keyFile = join(dir, 'key');
    this.assignmentPath = join(dir, 'assignment.json');
    this.versionPath = join(dir, 'config-version');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  loadKey(): { keyPair: KeyPair; created: boolean } {
    return loadOrCreateKeyPair(this.keyFile);
  }

  get assignment(): Assignment | undefined {
    if (this.current) return this.current;
    let text: string;
    try {
      text = readFileSync(this.assignmentPath, 'utf8');
    } catch {
      return undefined;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new AxleError(
        ErrorCode.BAD_CONFIG,
        `${this.assignmentPath} is not valid JSON (${(e as Error).message}); delete it and enroll again`,
      );
    }
    const a = parse(assignmentFile, raw, this.assignmentPath, ErrorCode.BAD_CONFIG);
    this.current = {
      status: a.status,
      epoch: a.epoch,
      term: a.term,
      hubAddrs: a.hubAddrs,
      ...(a.hubKeys ? { hubKeys: a.hubKeys.map((k) => fromBase64(k, 32, 'hub public key')) } : {}),
      updatedAt: a.updatedAt,
      ...(a.target
        ? {
            target: {
              spokeId: a.target.spokeId,
              addr: a.target.addr,
              pubkey: fromBase64(a.target.pubkey, 32, 'spoke public key'),
            },
          }
        : {}),
    };
    return this.current;
  }

  async saveAssignment(a: Assignment): Promise<void> {
    await writeFileAtomic(this.assignmentPath, serialise(a));
    this.current = a;
  }

  /**
   * The hub keys this envoy trusts for terms and bundles: the ones pinned in its config when it
   * has any (then only those), else those a hub's own answer listed. A key is never learned from
   * a spoke or from merely connecting to an address.
   */
  trustedHubKeys(pinned: readonly string[] | undefined): Uint8Array[] {
    if (pinned && pinned.length > 0) return pinned.map((k) => fromBase64(k, 32, 'hub public key'));
    return [...(this.assignment?.hubKeys ?? [])];
  }

  /** Raises the remembered term without changing where the envoy goes. */
  async raiseTerm(term: number): Promise<void> {
    const a = this.assignment;
    if (!a || term <= a.term) return;
    await this.saveAssignment({ ...a, term, updatedAt: Date.now() });
  }

  get configVersion(): number {
    try {
      const n = Number(readFileSync(this.versionPath, 'utf8').trim());
      return Number.isInteger(n) && n >= 0 ? n : 0;
    } catch {
      return 0;
    }
  }

  setConfigVersion(v: number): void {
    writeFileAtomicSync(this.versionPath, `${v}\n`);
  }
}

function serialise(a: Assignment): string {
  return `${JSON.stringify(
    {
      status: a.status,
      ...(a.target
        ? { target: { spokeId: a.target.spokeId, addr: a.target.addr, pubkey: toBase64(a.target.pubkey) } }
        : {}),
      epoch: a.epoch,
      term: a.term,
      hubAddrs: a.hubAddrs,
      ...(a.hubKeys ? { hubKeys: a.hubKeys.map((k) => toBase64(k)) } : {}),
      updatedAt: a.updatedAt,
    },
    null,
    2,
  )}\n`;
}
