import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  AxleServer,
  type Connection,
  type KeyPair,
  type Message,
  generateKeyPair,
  saveKeyPair,
  toBase64,
} from '@axle/shared';
import { Child } from '../support/fleet.js';
import { bin } from '../support/proc.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import type { FuzzStats } from './properties.js';
import { messageArb } from './wire.js';

/**
 * The envoy agent under attack from its spoke: the real agent (the built bin, a child process)
 * assigned to a peer of ours that answers every check-in, report and bundle fetch with
 * generated and mutated messages, and sends it generated requests and events. After each batch
 * the agent must be alive, its term and config version unchanged (nothing the peer sends is a
 * hub's signature), and its assignment and spool files readable.
 */
export class EnvoyTarget {
  private readonly key: KeyPair = generateKeyPair();
  private server!: AxleServer;
  private child!: Child;
  private addr = '';
  private stateDir = '';
  private readonly queue: unknown[] = [];
  private conns = new Set<Connection>();
  private cleanup: () => void = () => undefined;
  readonly hostname = 'fuzz-envoy.dc1.example.com';

  static async start(): Promise<EnvoyTarget> {
    const t = new EnvoyTarget();
    await t.boot();
    return t;
  }

  private assignment(): Message {
    return {
      type: 'assignment',
      status: 'assigned',
      target: { spokeId: 'dc1', addr: this.addr, pubkey: this.key.publicKey },
      epoch: 1,
      term: 3,
      hubAddrs: [this.addr],
      hubKeys: [generateKeyPair().publicKey],
    };
  }

  /** The next queued answer; redirects are kept pointing here, or the agent would wander off. */
  private next(): unknown {
    const m = this.queue.shift() as Record<string, unknown> | undefined;
    if (m && m.type === 'redirect' && m.to) {
      return { ...m, to: { spokeId: 'dc1', addr: this.addr, pubkey: this.key.publicKey } };
    }
    return m ?? { type: 'checkin_ok', configVersion: 3, term: 3, runNow: false };
  }

  private async boot(): Promise<void> {
    const t = tempDir('axle-fuzz-envoy-');
    this.cleanup = t.cleanup;
    this.server = new AxleServer({
      host: '127.0.0.1',
      port: 0,
      id: 'dc1',
      keyPair: this.key,
      authenticate: () => ({ role: 'envoy' }),
      onConnection: (conn) => {
        this.conns.add(conn);
        void conn.closed.then(() => this.conns.delete(conn));
        conn.onRequest = (m) => {
          if (m.type === 'locate' || m.type === 'enroll') return this.assignment();
          return this.next() as Message;
        };
      },
    });
    const { port } = await this.server.listen();
    this.addr = `127.0.0.1:${port}`;
    this.stateDir = join(t.dir, 'state');
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    saveKeyPair(join(this.stateDir, 'key'), generateKeyPair());
    writeFileSync(
      join(this.stateDir, 'assignment.json'),
      JSON.stringify({
        status: 'assigned',
        target: { spokeId: 'dc1', addr: this.addr, pubkey: toBase64(this.key.publicKey) },
        epoch: 1,
        term: 3,
        hubAddrs: [this.addr],
        hubKeys: [toBase64(generateKeyPair().publicKey)],
        updatedAt: Date.now(),
      }),
    );
    writeFileSync(join(this.stateDir, 'config-version'), '3\n');
    const config = join(t.dir, 'envoy.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        hub_addrs: [this.addr],
        insecure_transport: true,
        state_dir: this.stateDir,
        hostname: this.hostname,
        run_on_start: false,
        schedule: '0 0 1 1 *',
        checkin_interval: '100ms',
        keepalive: '1s',
        request_timeout: '2s',
        backoff_initial: '20ms',
        backoff_max: '200ms',
        failures_before_locate: 100,
        traits_interval: '1h',
        log_level: 'warn',
      }),
    );
    this.child = Child.spawn('fuzz-envoy', [bin('envoy-agent', 'axle-envoy'), '--config', config]);
    await waitFor(() => this.conns.size > 0 || !this.child.alive, { timeoutMs: 20_000, what: 'the agent connecting' });
    if (!this.child.alive) throw new Error(`the agent exited at start: ${JSON.stringify(this.child.recent.slice(-5))}`);
  }

  property(stats: FuzzStats) {
    const arb = fc.tuple(
      fc.array(messageArb(), { minLength: 4, maxLength: 12 }),
      fc.array(fc.tuple(messageArb(), fc.boolean()), { maxLength: 4 }),
    );
    return fc.asyncProperty(arb, async ([answers, pushes]) => {
      stats.cases++;
      this.queue.push(...answers);
      for (const [m, asEvent] of pushes) {
        for (const c of this.conns) {
          try {
            if (asEvent) c.send(m as Message);
            else void c.request(m as Message, 3000).catch(() => undefined);
          } catch {
            // a message our own codec will not encode never reaches the agent
          }
        }
      }
      stats.sent += answers.length + pushes.length;
      for (const m of [...answers, ...pushes.map((p) => p[0])]) {
        const type = (m as { type?: unknown } | null)?.type;
        const label = typeof type === 'string' ? type : '(no type)';
        stats.covered.add(`envoy ${label}`);
        stats.count(label);
      }
      // The agent asks every 100 ms; give it the time to take every answer, however it ends.
      await waitFor(() => this.queue.length === 0 || !this.child.alive, { timeoutMs: 10_000, intervalMs: 20 }).catch(
        () => undefined,
      );
      if (!this.child.alive) {
        throw new Error(
          `the envoy agent exited: ${this.child.recent
            .slice(-8)
            .map((l) => JSON.stringify(l))
            .join('\n')}`,
        );
      }
      const a = JSON.parse(readFileSync(join(this.stateDir, 'assignment.json'), 'utf8')) as { term: number };
      if (a.term !== 3) throw new Error(`the agent's term moved to ${a.term} on the word of a spoke`);
      const v = readFileSync(join(this.stateDir, 'config-version'), 'utf8').trim();
      if (v !== '3') throw new Error(`the agent's config version moved to ${v} without a hub-signed bundle`);
      readdirSync(join(this.stateDir));
    });
  }

  async stop(): Promise<void> {
    await this.child?.stop(5000);
    await this.server?.close(100);
    this.cleanup();
  }
}
