import type { Change } from '../store/model.js';
import type { HubStore } from '../store/state.js';
import type { Job, JobTarget } from './model.js';

export type JobEvent =
  | { type: 'target'; jobId: string; target: JobTarget }
  | { type: 'progress'; job: Job }
  | { type: 'done'; job: Job };

/** Targets per `job.targets` change, so one log entry (and one replication frame) stays small. */
const TARGETS_PER_CHANGE = 500;
const PROGRESS_EVERY_MS = 100;

/**
 * A running job's records: the job and its targets, the job's counts kept in step with the
 * targets' states, every change written through the HubStore (callers of one turn coalesced
 * into one transaction), and progress events at most every PROGRESS_EVERY_MS.
 *
 * Records are replaced, never mutated, so a change handed to the store is never altered later.
 */
export class JobLedger {
  job: Job;
  readonly targets: Map<string, JobTarget>;
  private readonly dirty = new Set<string>();
  private flushP: Promise<void> | undefined;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly d: { state: HubStore; emit: (ev: JobEvent) => void },
    job: Job,
    targets: JobTarget[],
  ) {
    this.job = job;
    this.targets = new Map(targets.map((t) => [t.hostname, t]));
  }

  /** Replaces a target's record, keeping the job's counts in step, and marks it for the next write. */
  set(t: JobTarget): void {
    const prev = this.targets.get(t.hostname);
    if (prev && prev.state !== t.state) {
      const counts = { ...this.job.counts };
      counts[prev.state]--;
      counts[t.state]++;
      this.job = { ...this.job, counts };
    }
    this.targets.set(t.hostname, t);
    this.dirty.add(t.hostname);
  }

  /** Announces the job's progress: now, or once within PROGRESS_EVERY_MS however many changes come. */
  progress(now = false): void {
    if (now) {
      this.quiet();
      this.d.emit({ type: 'progress', job: this.job });
      return;
    }
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = undefined;
      this.d.emit({ type: 'progress', job: this.job });
    }, PROGRESS_EVERY_MS);
  }

  /** Drops a progress event still waiting (the job ended or this hub stopped running it). */
  quiet(): void {
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = undefined;
  }

  /** Writes the job and every changed target, coalescing callers of the same turn into one transaction. */
  flush(): Promise<void> {
    this.flushP ??= new Promise<void>((r) => setImmediate(r)).then(() => {
      this.flushP = undefined;
      const targets = [...this.dirty].map((h) => this.targets.get(h)!);
      this.dirty.clear();
      const changes: Change[] = [{ kind: 'job.put', job: this.job }];
      for (let i = 0; i < targets.length; i += TARGETS_PER_CHANGE) {
        changes.push({ kind: 'job.targets', jobId: this.job.id, targets: targets.slice(i, i + TARGETS_PER_CHANGE) });
      }
      return this.d.state.applyAll(changes).then(() => undefined);
    });
    return this.flushP;
  }
}
