import type { SpokeReport } from '@axle/shared';
import type { Command } from 'commander';
import { HubClient } from './client.js';
import { EXIT } from './errors.js';
import { json, type Io } from './output.js';
import { resolveSettings } from './settings.js';

export interface GlobalOpts {
  hub?: string;
  token?: string;
  caFile?: string;
  config?: string;
  json?: boolean;
}

/** What a fan-out answer says of each spoke (the contract's SpokeReport), as much as warnings need. */
export type SpokeOutcome = Pick<SpokeReport, 'id' | 'outcome'>;

/** What every command gets: output, the client (settings resolved on first use), and the exit code so far. */
export class Ctx {
  exitCode: number = EXIT.OK;
  private c: HubClient | undefined;
  private ready: Promise<void> | undefined;

  constructor(
    readonly io: Io,
    private readonly cmd: Command,
  ) {}

  get opts(): GlobalOpts {
    return this.cmd.optsWithGlobals() as GlobalOpts;
  }

  get json(): boolean {
    return Boolean(this.opts.json);
  }

  get client(): HubClient {
    if (!this.c) throw new Error('Ctx.connect() must run before the client is used');
    return this.c;
  }

  /** Resolves --hub/--token (flags, environment, config file) once, before the command body runs. */
  connect(): Promise<void> {
    this.ready ??= resolveSettings(this.opts, this.io.env).then((s) => {
      this.c = new HubClient(s, this.io);
    });
    return this.ready;
  }

  print(human: () => string, data: unknown): void {
    this.io.out(this.json ? json(data) : human());
  }

  warn(msg: string): void {
    this.io.err(`warning: ${msg}\n`);
  }

  /** A fan-out answer that misses spokes: a warning naming each one (stderr) and exit 1. */
  partial(spokes: SpokeOutcome[] | undefined, what = 'results'): void {
    const missing = (spokes ?? []).filter((s) => s.outcome !== 'ok');
    for (const s of missing) {
      this.warn(
        `spoke ${s.id} did not answer (${s.outcome}); these ${what} leave out its envoys. Check it with: axle spanner spoke ${s.id}`,
      );
    }
    if (missing.length > 0) this.exitCode = EXIT.FAILED;
  }
}

export type Action<A extends unknown[]> = (ctx: Ctx, ...args: A) => Promise<void>;

/** Wraps a command's action for commander: gives it a Ctx connected to the hub and keeps the worst exit code. */
export type ActionRunner = <A extends unknown[]>(fn: Action<A>) => (...a: unknown[]) => Promise<void>;
