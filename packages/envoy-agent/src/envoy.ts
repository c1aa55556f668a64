import { join } from 'node:path';
import {
  AxleError,
  ErrorCode,
  errorText,
  Codec,
  INSECURE_WARNING,
  fingerprint,
  fitRun,
  silentLogger,
  type Connection,
  type Logger,
  type Message,
  type MessageOf,
  type KeyPair,
  type RevertOrder,
  type Run,
} from '@axle/shared';
import { loadEnvoyConfig, type EnvoyConfig } from './config.js';
import { runPolicies } from './engine.js';
import { BundleFetcher } from './config-fetch.js';
import { RunQueue, type Trigger } from './run-queue.js';
import { RunSchedule } from './run-schedule.js';
import { fetchSecrets } from './secret-fetch.js';
import { runJob } from './tasks.js';
import { SpokeLink } from './link.js';
import { Spool } from './spool.js';
import { StateStore, type Assignment } from './state.js';
import { collectTraits, traitsDigest, type Traits } from './traits.js';
import type { CommandRunner } from './command.js';
import type { RunSecrets } from './resources/context.js';

/** Measures runs for fitting to the report limit. */
const sizer = new Codec();

export interface EnvoyOptions {
  logger?: Logger;
  /** The file the config came from; `reload()` reads it again. */
  configFile?: string;
  /** Replaces the command runner for exec/package/service resources and trait executables. */
  runner?: CommandRunner;
  random?: () => number;
}

export interface EnvoyState {
  hostname: string;
  assignment: Assignment | undefined;
  connected: { spokeId: string; addr: string } | undefined;
  spooled: number;
  dropped: number;
  configVersion: number;
  running: boolean;
  lastRun: { id: string; trigger: Trigger; compliant: boolean; finishedAt: number; configVersion: number } | undefined;
  lastError: string | undefined;
}

/**
 * The envoy agent: one per fleet host (many per process in tests and the demo, each with its
 * own hostname, key and state_dir; nothing is global). Keeps its spoke link, collects traits,
 * runs policies on the schedule, at start and on demand, and spools every report until a
 * spoke acknowledges it.
 */
export class Envoy {
  private cfg: EnvoyConfig;
  readonly log: Logger;
  private readonly store: StateStore;
  private readonly spool: Spool;
  private readonly opts: EnvoyOptions;
  private link: SpokeLink | undefined;
  /** This envoy's key, loaded at start: it opens the secrets the hub seals to it. */
  private keyPair: KeyPair | undefined;
  private bundles!: BundleFetcher;
  private traits: { traits: Traits; digest: string } | undefined;
  private readonly schedule: RunSchedule;
  private readonly runs: RunQueue;
  private traitsTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopping = false;
  private last: EnvoyState['lastRun'];

  constructor(config: EnvoyConfig, o: EnvoyOptions = {}) {
    this.cfg = config;
    this.opts = o;
    this.log = o.logger ?? silentLogger();
    this.store = new StateStore(config.state_dir);
    this.spool = new Spool(join(config.state_dir, 'spool'), { max: config.spool_max, log: this.log });
    this.runs = new RunQueue({ stopping: () => this.stopping, run: (trigger, signal) => this.doRun(trigger, signal) });
    this.schedule = new RunSchedule({
      config: () => this.cfg,
      stopping: () => this.stopping,
      random: o.random,
      fire: () =>
        this.runNow('schedule').catch((e: unknown) => this.log.error({ err: errorText(e) }, 'scheduled run failed')),
    });
  }

  get config(): EnvoyConfig {
    return this.cfg;
  }

  /** The SpokeLink's events (connected, redirected, located, acked), for tests and the demo. */
  get events(): SpokeLink | undefined {
    return this.link;
  }

  get state(): EnvoyState {
    return {
      hostname: this.cfg.hostname,
      assignment: this.store.assignment,
      connected: this.link?.connected,
      spooled: this.spool.size,
      dropped: this.spool.dropped,
      configVersion: this.store.configVersion,
      running: this.runs.running,
      lastRun: this.last,
      lastError: this.link?.lastError,
    };
  }

  async start(): Promise<void> {
    if (this.started) return;
    const { keyPair, created } = this.store.loadKey();
    this.keyPair = keyPair;
    const a = this.store.assignment;
    if (!a || created) {
      throw new AxleError(
        ErrorCode.UNKNOWN_ENVOY,
        `${this.cfg.hostname} is not enrolled (no assignment in ${this.cfg.state_dir}); run \`axle-envoy enroll --config FILE --token TOKEN\` first`,
      );
    }
    this.started = true;
    const cfg = this.cfg;
    if (cfg.insecure_transport) this.log.warn(INSECURE_WARNING);
    this.bundles = new BundleFetcher({
      trustedKeys: () => this.store.trustedHubKeys(this.cfg.hub_pubkeys),
      appliedVersion: () => this.store.configVersion,
      setApplied: (v) => this.store.setConfigVersion(v),
      configDir: cfg.config_dir,
      timeoutMs: cfg.request_timeout,
      log: this.log,
    });
    await this.refreshTraits();
    this.link = new SpokeLink({
      config: () => this.cfg,
      keyPair,
      store: this.store,
      spool: this.spool,
      log: this.log,
      traits: () => this.traits,
      configVersion: () => this.store.configVersion,
      onRunNow: (reason) => {
        this.log.info({ reason }, 'run requested');
        this.runNow('demand').catch((e: unknown) => this.log.error({ err: errorText(e) }, 'demanded run failed'));
      },
      onConfigVersion: (v, conn, revert) => this.onConfigVersion(v, conn, revert),
      onJobRun: (m) => this.runJob(m),
      ...(this.opts.random ? { random: this.opts.random } : {}),
    });
    this.link.start();
    this.schedule.start();
    this.traitsTimer = setInterval(() => void this.refreshTraits(), this.cfg.traits_interval);
    this.log.info(
      {
        hostname: this.cfg.hostname,
        key: fingerprint(keyPair.publicKey),
        spoke: a.target?.spokeId,
        schedule: this.cfg.schedule,
        mode: this.cfg.mode,
      },
      'envoy started',
    );
    if (this.cfg.run_on_start) {
      this.runNow('start').catch((e: unknown) => this.log.error({ err: errorText(e) }, 'start run failed'));
    }
  }

  /**
   * Stops scheduling, lets a run in progress finish for up to `stop_grace`, then abandons it
   * (its partial report is still spooled), and closes the spoke link.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.schedule.stop();
    if (this.traitsTimer) clearInterval(this.traitsTimer);
    await this.runs.settle(this.cfg.stop_grace, this.log);
    await this.link?.stop();
  }

  /** Re-reads the config file (if any) and applies what can change while running. */
  async reload(next?: EnvoyConfig): Promise<void> {
    const n = next ?? (this.opts.configFile ? loadEnvoyConfig(this.opts.configFile) : this.cfg);
    for (const k of ['hostname', 'state_dir'] as const) {
      if (n[k] !== this.cfg[k])
        throw new AxleError(
          ErrorCode.BAD_CONFIG,
          `${k} cannot change on reload (${this.cfg[k]} -> ${n[k]}); restart the envoy`,
        );
    }
    const reschedule = n.schedule !== this.cfg.schedule || n.splay !== this.cfg.splay;
    this.cfg = n;
    if (this.started && !this.stopping && reschedule) {
      this.schedule.stop();
      this.schedule.start();
    }
    await this.refreshTraits();
    this.link?.checkinSoon();
    this.log.info({ schedule: n.schedule, mode: n.mode }, 'config reloaded');
  }

  /** Runs the policies now (or right after the run in progress; concurrent requests share one run). */
  runNow(trigger: Trigger = 'demand'): Promise<Run> {
    return this.runs.ask(trigger);
  }

  /** One run: the policies against fresh traits, its report spooled for the spoke. */
  private async doRun(trigger: Trigger, signal: AbortSignal): Promise<Run> {
    await this.refreshTraits();
    const run = await runPolicies({
      configDir: this.cfg.config_dir,
      hostname: this.cfg.hostname,
      traits: this.traits?.traits ?? {},
      mode: this.cfg.mode,
      configVersion: this.store.configVersion,
      trigger,
      execTimeoutMs: this.cfg.exec_timeout,
      signal,
      log: this.log,
      secrets: (names) => this.fetchSecrets(names),
      ...(this.opts.runner ? { runner: this.opts.runner } : {}),
    });
    this.last = {
      id: run.id,
      trigger,
      compliant: run.compliant,
      finishedAt: run.finishedAt,
      configVersion: run.configVersion,
    };
    this.log.info(
      {
        run: run.id,
        trigger,
        ...run.counts,
        compliant: run.compliant,
        ms: run.finishedAt - run.startedAt,
        ...(run.error ? { error: run.error } : {}),
      },
      'run finished',
    );
    try {
      await this.spool.put(fitRun(run, this.cfg.max_report_bytes, sizer));
    } catch (e) {
      this.log.error({ run: run.id, err: errorText(e) }, 'cannot spool the report; it will not be sent');
    }
    this.link?.kick();
    return run;
  }

  private async refreshTraits(): Promise<void> {
    try {
      const traits = await collectTraits({
        hostname: this.cfg.hostname,
        timeoutMs: this.cfg.traits_timeout,
        log: this.log,
        ...(this.cfg.traits_dir ? { traitsDir: this.cfg.traits_dir } : {}),
        ...(this.opts.runner ? { runner: this.opts.runner } : {}),
      });
      const digest = traitsDigest(traits);
      const changedNow = this.traits !== undefined && digest !== this.traits.digest;
      this.traits = { traits, digest };
      if (changedNow) this.link?.checkinSoon();
    } catch (e) {
      this.log.warn({ err: errorText(e) }, 'collecting traits failed');
    }
  }

  private fetchSecrets(names: string[]): Promise<RunSecrets> {
    const link = this.link;
    const keyPair = this.keyPair;
    if (!link || !keyPair) return Promise.reject(new AxleError(ErrorCode.CLOSED, 'the envoy is not running'));
    return fetchSecrets((m, t) => link.request(m, t), keyPair, names, this.cfg.request_timeout);
  }

  /** A job order from the spoke: converge now (a run reported as usual), or one task of the applied bundle. */
  private runJob(m: MessageOf<'job_run'>): Promise<Message> {
    if (this.stopping)
      return Promise.resolve({
        type: 'job_result',
        status: 'refused',
        message: `${this.cfg.hostname} is stopping`,
        output: '',
      });
    return runJob(m, {
      configDir: this.cfg.config_dir,
      hostname: this.cfg.hostname,
      configVersion: this.store.configVersion,
      traits: () => this.traits?.traits ?? {},
      converge: () => this.runNow('job'),
      config: {
        applied: () => this.store.configVersion,
        apply: (want) => {
          const link = this.link;
          if (!link) throw new AxleError(ErrorCode.CLOSED, 'the envoy is not running');
          return this.bundles.fetch((msg, t) => link.request(msg, t), want);
        },
        lastCompliant: () => this.last?.compliant,
      },
      log: this.log,
      ...(this.opts.runner ? { runner: this.opts.runner } : {}),
    });
  }

  /**
   * The spoke serves another config version: fetch it, check a hub signed it, apply it, run.
   * Versions only rise: a spoke serving an older one (even hub-signed) is not followed back,
   * unless it hands over the hub's signed order moving this host down to exactly that version.
   */
  private onConfigVersion(version: number, conn: Connection, revert?: RevertOrder): void {
    const was = this.store.configVersion;
    if (version === was || this.stopping) return;
    if (version < was && revert?.to !== version) return;
    this.bundles
      .fetch((m, t) => conn.request(m, t), version < was ? { version, ...(revert ? { revert } : {}) } : undefined)
      .then(
        (applied) => {
          if (applied !== was && !this.stopping) return this.runNow('demand').then(() => undefined);
          return undefined;
        },
        (e: unknown) =>
          this.log.warn(
            { served: version, applied: this.store.configVersion, err: errorText(e) },
            'could not apply the config bundle; keeping the one applied',
          ),
      )
      .catch((e: unknown) => this.log.error({ err: errorText(e) }, 'run after a config change failed'));
  }
}
