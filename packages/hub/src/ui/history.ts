import type { Fleet } from '../fleet.js';

/** One point of the fleet compliance chart. */
export interface ComplianceSample {
  at: number;
  compliant: number;
  noncompliant: number;
  unknown: number;
  /** compliant / (compliant + noncompliant); null while nothing has been judged. */
  ratio: number | null;
  spokesOnline: number;
  spokesTotal: number;
}

/**
 * A ring buffer of fleet compliance samples for the web UI's chart. It is fed by spoke
 * health events (every probe, push or failure), not by a timer of its own, so it needs no
 * stop() and samples only while the hub is watching spokes. Not durable: a restarted hub
 * starts a fresh chart.
 */
export class ComplianceHistory {
  private readonly buf: ComplianceSample[] = [];
  private next = 0;
  private lastAt = 0;
  private lastKey = '';

  constructor(
    private readonly fleet: Fleet,
    readonly intervalMs = 5_000,
    readonly capacity = 720,
  ) {
    const h = fleet.health;
    const poke = () => this.maybeSample();
    h.on('ok', poke);
    h.on('failed', poke);
  }

  /** Takes a sample when the interval has passed, or at once when the counts or the online spokes changed (so steps show where they happen). */
  maybeSample(now = Date.now()): void {
    const s = this.current(now);
    const key = `${s.spokesOnline}/${s.compliant}/${s.noncompliant}/${s.unknown}`;
    if (now - this.lastAt < this.intervalMs && key === this.lastKey) return;
    this.lastKey = key;
    this.push(s);
  }

  current(now = Date.now()): ComplianceSample {
    let compliant = 0;
    let noncompliant = 0;
    let unknown = 0;
    let online = 0;
    const ids = this.fleet.ids();
    for (const id of ids) {
      const h = this.fleet.health.get(id);
      if (h.online) online++;
      // A spoke that is down keeps its last known numbers: its envoys still exist.
      const c = h.stats?.compliance;
      if (!c) continue;
      compliant += c.compliant;
      noncompliant += c.noncompliant;
      unknown += c.unknown;
    }
    const judged = compliant + noncompliant;
    return {
      at: now,
      compliant,
      noncompliant,
      unknown,
      ratio: judged === 0 ? null : compliant / judged,
      spokesOnline: online,
      spokesTotal: ids.length,
    };
  }

  private push(s: ComplianceSample): void {
    this.lastAt = s.at;
    if (this.buf.length < this.capacity) this.buf.push(s);
    else {
      this.buf[this.next] = s;
      this.next = (this.next + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  samples(since = 0): ComplianceSample[] {
    const ordered =
      this.buf.length < this.capacity
        ? this.buf.slice()
        : [...this.buf.slice(this.next), ...this.buf.slice(0, this.next)];
    return since > 0 ? ordered.filter((s) => s.at > since) : ordered;
  }
}
