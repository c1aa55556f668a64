/**
 * Many protocol-level envoys in one process, for the reconnect-storm scenario:
 *   node --import tsx test/system/storm-envoys.ts SPEC.json
 * SPEC: {spokeAddr, spokePub (base64), backoffMaxMs, resultFile, envoys: [{h, pub, sec, epoch}]}.
 * Each envoy keeps one signed WebSocket to the spoke. On every (re)connection it checks in
 * and sends one report with a fresh run id, which it forgets only on the spoke's ack (a
 * report not acked is sent again on the next connection, with the same id). A lost link is
 * retried at once, then with full-jitter backoff up to backoffMaxMs: after an outage they
 * all come back together, which is the storm. Prints a JSON stats line every 500 ms; on
 * SIGTERM writes every acked run id to resultFile and exits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connectPeer, fromBase64, type Connection, type KeyPair, type Run } from '@axle/shared';

interface Spec {
  spokeAddr: string;
  spokePub: string;
  backoffMaxMs: number;
  resultFile: string;
  envoys: { h: string; pub: string; sec: string; epoch: number }[];
}

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec;
const spokePub = fromBase64(spec.spokePub, 32);
let stopping = false;
const stopCtl = new AbortController();

const stats = {
  connected: 0,
  checkedIn: 0,
  acked: 0,
  duplicates: 0,
  connectFailures: 0,
  refused: 0,
  redirects: 0,
  errors: 0,
};
const lastError = new Map<string, number>();

class StormEnvoy {
  conn: Connection | undefined;
  /** A run waiting for its ack; sent again on the next connection. */
  pending: Run | undefined;
  readonly acked: string[] = [];
  sessions = 0;
  connectedNow = false;
  checkedInNow = false;

  constructor(
    readonly h: string,
    readonly kp: KeyPair,
    readonly epoch: number,
  ) {}

  async loop(): Promise<void> {
    let attempt = 0;
    while (!stopping) {
      try {
        const conn = await connectPeer(spec.spokeAddr, {
          id: this.h,
          role: 'envoy',
          keyPair: this.kp,
          expectServerKey: spokePub,
          requestTimeoutMs: 30_000,
          handshakeTimeoutMs: 20_000,
          keepaliveMs: 5000,
          signal: stopCtl.signal,
        });
        attempt = 0;
        await this.session(conn);
      } catch (e) {
        if (stopping) break;
        stats.connectFailures++;
        const m = (e as Error).message ?? String(e);
        if (/429|Too Many/i.test(m)) stats.refused++;
        const k = m.replace(/[0-9a-f]{8,}|\d+/g, '#').slice(0, 120);
        lastError.set(k, (lastError.get(k) ?? 0) + 1);
      }
      if (stopping) break;
      // First retry at once (that is the storm), then full-jitter backoff.
      const cap = Math.min(spec.backoffMaxMs, 100 * 2 ** Math.min(attempt, 10));
      const delay = attempt === 0 ? 0 : Math.random() * cap;
      attempt++;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async session(conn: Connection): Promise<void> {
    this.conn = conn;
    this.sessions++;
    this.connectedNow = true;
    stats.connected++;
    try {
      const r = await conn.request({ type: 'checkin', hostname: this.h, epoch: this.epoch, term: 0, configVersion: 0 });
      if (r.type !== 'checkin_ok') {
        stats.redirects++;
        throw new Error(`check-in answered with ${r.type}`);
      }
      this.checkedInNow = true;
      stats.checkedIn++;
      const now = Date.now();
      this.pending ??= {
        id: `storm-${this.sessions}-${Math.random().toString(36).slice(2, 10)}`,
        hostname: this.h,
        startedAt: now,
        finishedAt: now,
        configVersion: 0,
        mode: 'audit',
        trigger: 'schedule',
        compliant: true,
        counts: { ok: 0, changed: 0, failed: 0, drift: 0 },
        results: [],
      };
      const a = await conn.request({ type: 'report', hostname: this.h, epoch: this.epoch, run: this.pending });
      if (a.type === 'ack' && a.runId === this.pending.id) {
        this.acked.push(this.pending.id);
        if (a.duplicate) stats.duplicates++;
        stats.acked++;
        this.pending = undefined;
      }
      await conn.closed;
    } catch (e) {
      if (!stopping) stats.errors++;
      const k = `session: ${((e as Error).message ?? String(e)).replace(/\d+/g, '#').slice(0, 120)}`;
      lastError.set(k, (lastError.get(k) ?? 0) + 1);
      conn.close();
    } finally {
      this.conn = undefined;
      if (this.checkedInNow) stats.checkedIn--;
      this.checkedInNow = false;
      this.connectedNow = false;
      stats.connected--;
    }
  }
}

const envoys = spec.envoys.map(
  (e) => new StormEnvoy(e.h, { publicKey: fromBase64(e.pub, 32), secretKey: fromBase64(e.sec, 64) }, e.epoch),
);
const loops = envoys.map((e) => e.loop());

const report = () => {
  const mem = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({ msg: 'storm', ...stats, envoys: envoys.length, pending: envoys.filter((e) => e.pending).length, rssMiB: Math.round(mem.rss / 2 ** 20), errors: Object.fromEntries([...lastError].slice(0, 5)) })}\n`,
  );
};
const timer = setInterval(report, 500);
report();

process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  stopCtl.abort();
  for (const e of envoys) e.conn?.close();
  writeFileSync(spec.resultFile, JSON.stringify(Object.fromEntries(envoys.map((e) => [e.h, e.acked]))));
  void Promise.race([Promise.allSettled(loops), new Promise((r) => setTimeout(r, 5000))]).then(() => {
    process.stdout.write(`${JSON.stringify({ msg: 'storm stopped' })}\n`);
    process.exit(0);
  });
});
