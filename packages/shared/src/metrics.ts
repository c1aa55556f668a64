import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SlotTotals } from './slots.js';

/**
 * One Prometheus registry per daemon. Names get the daemon's prefix (`axle_hub_`,
 * `axle_spoke_`) so a shared Prometheus can tell them apart.
 */
export class Metrics {
  readonly registry = new Registry();
  constructor(
    readonly prefix: string,
    o: { defaults?: boolean } = {},
  ) {
    if (o.defaults ?? true) collectDefaultMetrics({ register: this.registry, prefix });
  }
  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name: this.prefix + name, help, labelNames, registers: [this.registry] });
  }
  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    collect?: (this: Gauge<L>) => void,
  ): Gauge<L> {
    return new Gauge({
      name: this.prefix + name,
      help,
      labelNames,
      registers: [this.registry],
      ...(collect ? { collect } : {}),
    });
  }
  histogram<L extends string = never>(
    name: string,
    help: string,
    buckets: number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    return new Histogram({ name: this.prefix + name, help, buckets, labelNames, registers: [this.registry] });
  }
  async text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A fixed-size window of recent samples for p50/p99 without keeping history. */
export class LatencyWindow {
  private readonly buf: Float64Array;
  private n = 0;
  private i = 0;
  constructor(size = 2048) {
    this.buf = new Float64Array(size);
  }
  add(v: number): void {
    this.buf[this.i] = v;
    this.i = (this.i + 1) % this.buf.length;
    if (this.n < this.buf.length) this.n++;
  }
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const sorted = Array.from(this.buf.subarray(0, this.n)).sort((a, b) => a - b);
    return sorted[Math.min(this.n - 1, Math.floor((p / 100) * this.n))] as number;
  }
}

/**
 * `<prefix>connection_slots{state}`: sockets held on the daemon's port, by state (pending,
 * http, handshakes, conns), summed over addresses. Shows a leak, or an address at its caps.
 */
export function slotMetrics(m: Metrics, totals: () => SlotTotals | undefined): void {
  m.gauge('connection_slots', 'Sockets held on the listening port, by state', ['state'], function collect() {
    const t = totals();
    if (!t) return;
    for (const state of ['pending', 'http', 'handshakes', 'conns'] as const) this.set({ state }, t[state]);
  });
}
