import { AxleError, ErrorCode, errorText, type Connection, type Logger, type MessageOf } from '@axle/shared';
import type { Counter } from 'prom-client';
import type { Fleet } from './fleet.js';
import type { SpokeMetrics } from './metrics.js';

/** The spoke waits this much past the target's timeout for the envoy (which kills the command at the timeout). */
export const SPOKE_GRACE_MS = 1500;

type Result = MessageOf<'job_result'>;

/**
 * Dispatches the hub's job orders to connected envoys: `job_dispatch` from the hub becomes a
 * `job_run` request on the envoy's own connection, and the envoy's `job_result` is the answer
 * to the hub. Nothing is stored here: the hub owns the job; the spoke only relays and
 * enforces the timeout when an envoy goes quiet.
 */
export class SpokeJobs {
  /** The live connection of each envoy (the newest when it has several). */
  private readonly conns = new Map<string, Connection>();
  private readonly outcomes: Counter<'status'>;
  running = 0;

  constructor(private readonly d: { fleet: Fleet; log: Logger; metrics: SpokeMetrics }) {
    this.outcomes = d.metrics.m.counter('job_targets_total', 'Job orders relayed to envoys, by result status', [
      'status',
    ]);
    const self = this;
    d.metrics.m.gauge('job_targets_running', 'Job orders waiting on an envoy now', [], function collect() {
      this.set(self.running);
    });
  }

  track(conn: Connection): void {
    const h = conn.peer.id;
    this.conns.set(h, conn);
    void conn.closed.then(() => {
      if (this.conns.get(h) === conn) this.conns.delete(h);
    });
  }

  async dispatch(msg: MessageOf<'job_dispatch'>): Promise<Result> {
    const r = this.d.fleet.get(msg.hostname);
    if (!r || r.released) {
      // The hub looks the envoy up again and sends the order to its current spoke.
      throw new AxleError(
        ErrorCode.UNKNOWN_ENVOY,
        `spoke ${this.d.fleet.spokeId} does not own ${msg.hostname}${r?.released ? ' (released)' : ''}`,
      );
    }
    const conn = this.conns.get(msg.hostname);
    if (!conn?.isOpen)
      return this.count(
        fail(
          `envoy ${msg.hostname} is not connected to spoke ${this.d.fleet.spokeId}${r.lastSeen ? ` (last seen ${new Date(r.lastSeen).toISOString()})` : ' (never connected)'}`,
          'not_run',
        ),
      );
    this.running++;
    try {
      const reply = await conn.request(
        { type: 'job_run', jobId: msg.jobId, action: msg.action, timeoutMs: msg.timeoutMs, attempt: msg.attempt },
        msg.timeoutMs + SPOKE_GRACE_MS,
        'job_result',
      );
      return this.count(reply);
    } catch (e) {
      const code = e instanceof AxleError ? e.code : undefined;
      if (code === ErrorCode.TIMEOUT)
        return this.count({
          type: 'job_result',
          status: 'timed_out',
          message: `envoy ${msg.hostname} gave no result within ${msg.timeoutMs} ms`,
          output: '',
        });
      if (code === ErrorCode.CLOSED || code === ErrorCode.KEEPALIVE)
        return this.count(
          fail(
            `envoy ${msg.hostname} disconnected before it answered (${errorText(e)}); its outcome is unknown`,
            'unknown',
          ),
        );
      this.d.log.warn(
        { envoy: msg.hostname, job: msg.jobId, err: errorText(e) },
        'envoy answered a job order with an error',
      );
      return this.count(fail(`envoy ${msg.hostname} could not take the order: ${errorText(e)}`));
    } finally {
      this.running--;
    }
  }

  private count(r: Result): Result {
    this.outcomes.inc({ status: r.status });
    return r;
  }
}

function fail(message: string, outcome?: Result['outcome']): Result {
  return {
    type: 'job_result',
    status: 'failed',
    message: message.slice(0, 4096),
    output: '',
    ...(outcome ? { outcome } : {}),
  };
}
