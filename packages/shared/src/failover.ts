import { EventEmitter } from 'node:events';
import { Backoff } from './backoff.js';
import { parseHostPort } from './config.js';
import { AxleError, ErrorCode, isAxleError } from './errors.js';

export interface FailoverOptions<C extends { closed: Promise<unknown> }> {
  /** "host:port", primary first, then fallbacks. */
  addrs: string[];
  /** Resolves once connected and authenticated; should give up when `signal` aborts. */
  connect: (addr: string, signal: AbortSignal) => Promise<C>;
  /** Consecutive failures on one address before moving on (default 3). */
  failuresBeforeSwitch?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A connect attempt that takes longer than this is aborted and counted as a failure (default 15 s). */
  connectTimeoutMs?: number;
  /** How to close a connection we give up on; default calls `conn.close()` when there is one. */
  close?: (conn: C) => void;
  random?: () => number;
  name?: string;
}

export interface FailoverEvents<C> {
  connected: [conn: C, addr: string];
  disconnected: [addr: string, reason: unknown];
  connect_error: [addr: string, error: AxleError];
  failover: [from: string, to: string, failures: number];
  /** Emitted before each wait; `attempt` is the backoff exponent, `delayMs` the jittered wait. */
  retry: [addr: string, attempt: number, delayMs: number];
}

const UNRESOLVABLE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);

/**
 * Keeps one connection open to the first address that works, moving through the list
 * (and round again) after repeated failures, with exponential backoff and full jitter
 * so a fleet of clients does not reconnect in lock-step after a hub restart.
 */
export class FailoverClient<C extends { closed: Promise<unknown> }> extends EventEmitter<FailoverEvents<C>> {
  current: C | undefined;
  readonly name: string;
  private readonly addrs: readonly string[];
  private readonly opts: Required<Omit<FailoverOptions<C>, 'addrs' | 'connect' | 'close' | 'name'>>;
  private readonly connectFn: FailoverOptions<C>['connect'];
  private readonly closeFn: (conn: C) => void;
  private index = 0;
  private connectFailures = 0;
  /** Kept apart from connect failures: a connection that opens but cannot serve is still failing. */
  private reportedFailures = 0;
  private readonly backoff: Backoff;
  /** Connections in a row that died young; keeps a server that accepts then drops from being hammered. */
  private flaps = 0;
  private started = false;
  private stopped = false;
  private readonly stopCtl = new AbortController();
  /** One promise for the whole life of the client, so each connection does not add a listener. */
  private readonly stopping = abortPromise(this.stopCtl.signal);
  private loop: Promise<void> | undefined;
  private drop: ((reason: unknown) => void) | undefined;

  constructor(opts: FailoverOptions<C>) {
    super();
    if (!Array.isArray(opts.addrs) || opts.addrs.length === 0) {
      throw new AxleError(ErrorCode.INVALID, 'failover client needs at least one address (host:port)');
    }
    for (const a of opts.addrs) parseHostPort(a);
    this.addrs = [...opts.addrs];
    this.connectFn = opts.connect;
    this.name = opts.name ?? 'failover';
    this.opts = {
      failuresBeforeSwitch: Math.max(1, opts.failuresBeforeSwitch ?? 3),
      initialBackoffMs: opts.initialBackoffMs ?? 200,
      maxBackoffMs: opts.maxBackoffMs ?? 30_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 15_000,
      random: opts.random ?? Math.random,
    };
    this.closeFn = opts.close ?? defaultClose;
    this.backoff = new Backoff({
      initialMs: this.opts.initialBackoffMs,
      maxMs: this.opts.maxBackoffMs,
      random: this.opts.random,
    });
  }

  get currentAddr(): string {
    return this.addrs[this.index] as string;
  }

  start(): void {
    if (this.stopped) throw new AxleError(ErrorCode.CLOSED, `${this.name}: cannot start after stop()`);
    if (this.started) return;
    this.started = true;
    this.loop = this.run();
  }

  /** Aborts any connect in flight, closes the current connection and waits for the loop to end. */
  async stop(): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    this.stopCtl.abort();
    const conn = this.current;
    this.current = undefined;
    if (conn) this.safeClose(conn);
    await this.loop;
  }

  /** Resolves with the current connection, or the next one made within `timeoutMs`. */
  waitConnected(timeoutMs: number): Promise<C> {
    if (this.current) return Promise.resolve(this.current);
    if (this.stopped) return Promise.reject(new AxleError(ErrorCode.CLOSED, `${this.name}: stopped`));
    return new Promise<C>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('connected', onConnected);
        this.stopCtl.signal.removeEventListener('abort', onStop);
      };
      const onConnected = (conn: C): void => {
        done();
        resolve(conn);
      };
      const onStop = (): void => {
        done();
        reject(new AxleError(ErrorCode.CLOSED, `${this.name}: stopped before connecting`));
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new AxleError(
            ErrorCode.TIMEOUT,
            `${this.name}: no connection to any of ${this.addrs.join(', ')} within ${timeoutMs}ms`,
          ),
        );
      }, timeoutMs);
      this.on('connected', onConnected);
      this.stopCtl.signal.addEventListener('abort', onStop, { once: true });
    });
  }

  /**
   * A request on the current connection failed (e.g. a status push timed out): count it
   * toward switching and drop the connection so the loop reconnects.
   */
  reportFailure(reason: unknown): void {
    const conn = this.current;
    if (!conn || this.stopped) return;
    this.current = undefined;
    this.reportedFailures += 1;
    this.drop?.(reason);
    this.safeClose(conn);
  }

  /** A request succeeded: earlier reported failures no longer count as consecutive. */
  reportSuccess(): void {
    this.reportedFailures = 0;
  }

  private async run(): Promise<void> {
    let delay = 0;
    while (!this.stopped) {
      if (delay > 0 && !(await this.sleep(delay))) break;
      const addr = this.currentAddr;
      let conn: C;
      try {
        conn = await this.attemptConnect(addr);
      } catch (e) {
        if (this.stopped) break;
        this.emit('connect_error', addr, classify(addr, e));
        this.connectFailures += 1;
        this.maybeSwitch(addr);
        delay = this.retryDelay();
        continue;
      }
      if (this.stopped) {
        this.safeClose(conn);
        break;
      }
      this.connectFailures = 0;
      this.backoff.reset();
      this.current = conn;
      const since = Date.now();
      const dropped = new Promise<{ reported: unknown }>((resolve) => (this.drop = (r) => resolve({ reported: r })));
      this.emit('connected', conn, addr);
      const ended = await Promise.race([
        conn.closed.then(
          (r: unknown) => ({ closed: r }),
          (e: unknown) => ({ closed: e }),
        ),
        dropped,
        this.stopping,
      ]);
      this.drop = undefined;
      if (this.current === conn) this.current = undefined;
      if (this.stopped) break;
      const reported = 'reported' in ended;
      this.emit(
        'disconnected',
        addr,
        'reported' in ended ? ended.reported : 'closed' in ended ? ended.closed : undefined,
      );
      if (reported) this.maybeSwitch(addr);
      // A clean close of a long-lived connection retries promptly; short-lived ones back off.
      this.flaps = reported || Date.now() - since < this.opts.maxBackoffMs ? this.flaps + 1 : 0;
      delay = this.retryDelay(Math.max(0, this.flaps - 1));
    }
  }

  private maybeSwitch(addr: string): void {
    const failures = this.connectFailures + this.reportedFailures;
    if (failures < this.opts.failuresBeforeSwitch) return;
    this.connectFailures = 0;
    this.reportedFailures = 0;
    if (this.addrs.length === 1) return;
    this.index = (this.index + 1) % this.addrs.length;
    this.emit('failover', addr, this.currentAddr, failures);
  }

  /** The next connect-failure delay, or the one at `attempt` (flaps) without advancing the count. */
  private retryDelay(attempt?: number): number {
    const n = attempt ?? this.backoff.attempt;
    const delay = attempt === undefined ? this.backoff.next() : this.backoff.at(attempt);
    this.emit('retry', this.currentAddr, n, delay);
    return delay;
  }

  /** Resolves true after `ms`, or false as soon as stop() is called (clearing the timer). */
  private sleep(ms: number): Promise<boolean> {
    const signal = this.stopCtl.signal;
    return new Promise((resolve) => {
      // Not unref'd: while running, reconnecting is this process's job, not background noise.
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async attemptConnect(addr: string): Promise<C> {
    const ctl = new AbortController();
    const onStop = (): void => ctl.abort(new AxleError(ErrorCode.CLOSED, `${this.name}: stopped`));
    this.stopCtl.signal.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(
      () =>
        ctl.abort(
          new AxleError(ErrorCode.TIMEOUT, `${addr}: connect did not complete within ${this.opts.connectTimeoutMs}ms`),
        ),
      this.opts.connectTimeoutMs,
    );
    let pending: Promise<C> | undefined;
    try {
      pending = this.connectFn(addr, ctl.signal);
      // Race the abort too: a connect function that ignores its signal must not wedge stop().
      const aborted = abortPromise(ctl.signal).then((): never => {
        throw ctl.signal.reason;
      });
      return await Promise.race([pending, aborted]);
    } catch (e) {
      // Whatever the abandoned attempt still produces must not leak a socket or reject unhandled.
      if (ctl.signal.aborted)
        pending?.then(
          (late) => this.safeClose(late),
          () => undefined,
        );
      throw e;
    } finally {
      clearTimeout(timer);
      this.stopCtl.signal.removeEventListener('abort', onStop);
    }
  }

  private safeClose(conn: C): void {
    try {
      this.closeFn(conn);
    } catch {
      // Closing is best effort: the connection is being abandoned either way.
    }
  }
}

function defaultClose(conn: unknown): void {
  const close = (conn as { close?: unknown }).close;
  if (typeof close !== 'function') return;
  const r: unknown = close.call(conn);
  if (r instanceof Promise) r.catch(() => undefined);
}

function abortPromise(signal: AbortSignal): Promise<{ aborted: true }> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve({ aborted: true });
    else signal.addEventListener('abort', () => resolve({ aborted: true }), { once: true });
  });
}

/** Turns whatever connect threw into an AxleError; an unresolvable name is never just "failed". */
function classify(addr: string, e: unknown): AxleError {
  const code = (e as { code?: unknown } | null)?.code;
  const reason = e instanceof Error ? e.message : String(e);
  if (isAxleError(e, ErrorCode.UNRESOLVABLE) || (typeof code === 'string' && UNRESOLVABLE_CODES.has(code))) {
    const host = parseHostPort(addr).host;
    return new AxleError(
      ErrorCode.UNRESOLVABLE,
      `${addr}: cannot resolve host name "${host}" (${reason}); check the name and DNS`,
      { cause: e },
    );
  }
  if (e instanceof AxleError) return e;
  return new AxleError(ErrorCode.UNREACHABLE, `${addr}: ${reason}`, { cause: e });
}
