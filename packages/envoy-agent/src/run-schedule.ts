import { createTask, type ScheduledTask } from 'node-cron';
import { jitter } from '@axle/shared';
import type { EnvoyConfig } from './config.js';

/**
 * Scheduled runs: node-cron fires on `schedule`, then a random delay within `splay` spreads
 * the fleet out. A tick while the last one still waits out its splay is skipped.
 */
export class RunSchedule {
  private task: ScheduledTask | undefined;
  private splayTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      config: () => EnvoyConfig;
      stopping: () => boolean;
      random: (() => number) | undefined;
      fire: () => void;
    },
  ) {}

  start(): void {
    const cfg = this.o.config();
    this.task = createTask(
      cfg.schedule,
      () => {
        if (this.o.stopping() || this.splayTimer) return;
        const delay = Math.floor(jitter(this.o.config().splay, this.o.random));
        this.splayTimer = setTimeout(() => {
          this.splayTimer = undefined;
          if (this.o.stopping()) return;
          this.o.fire();
        }, delay);
      },
      { noOverlap: true, name: `envoy-${cfg.hostname}-${Math.random().toString(36).slice(2)}` },
    );
    void this.task.start();
  }

  stop(): void {
    if (this.splayTimer) clearTimeout(this.splayTimer);
    this.splayTimer = undefined;
    const t = this.task;
    this.task = undefined;
    if (t) void Promise.resolve(t.destroy()).catch(() => undefined);
  }
}
