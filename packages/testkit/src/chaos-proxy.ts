import { createServer, connect, type Server, type Socket } from 'node:net';

interface Pair {
  a: Socket;
  b: Socket | undefined;
  /** Accepted during a cut: never connected onward. */
  stale: boolean;
  /** Bytes read while cut, delivered on heal (as TCP would retransmit them). */
  heldAB: Buffer[];
  heldBA: Buffer[];
  /** One end closed while cut: the other learns of it only once the link is back. */
  closedDuringCut: boolean;
}

/**
 * A TCP relay on 127.0.0.1 that stands in for a network link. `blackhole()` cuts the link
 * silently: connections stay open, no byte crosses in either direction, a close on one
 * side is not passed on, and new connections are accepted and then ignored, which is what
 * a pulled cable or a dropping firewall looks like to both ends (no RST, no FIN).
 * `heal()` forwards again: held bytes are delivered in order (as TCP would retransmit
 * them), closes that happened during the cut are passed on, and connections accepted
 * during the cut are dropped (their handshakes have long timed out).
 */
export class ChaosProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<Pair>();
  private cut = false;
  private nextId = 0;
  port = 0;
  /** Connections accepted so far, open or closed: a dialler that reconnects shows here. */
  accepted = 0;
  /** Sees every byte relayed, per connection and direction: a passive eavesdropper on the link. */
  tap: ((conn: number, dir: 'up' | 'down', bytes: Buffer) => void) | undefined;

  constructor(
    private target: string,
    readonly name = 'link',
  ) {}

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  get blackholed(): boolean {
    return this.cut;
  }

  setTarget(addr: string): void {
    this.target = addr;
  }

  async listen(port = 0): Promise<string> {
    const server = createServer((a) => this.accept(a));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const a = server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    this.server = server;
    return this.addr;
  }

  private accept(a: Socket): void {
    this.accepted++;
    a.on('error', () => undefined);
    const pair: Pair = { a, b: undefined, stale: false, heldAB: [], heldBA: [], closedDuringCut: false };
    this.pairs.add(pair);
    const end = () => {
      if (this.cut) {
        pair.closedDuringCut = true;
        return;
      }
      this.pairs.delete(pair);
      pair.a.destroy();
      pair.b?.destroy();
    };
    a.once('close', end);
    if (this.cut) {
      pair.stale = true;
      return;
    }
    const i = this.target.lastIndexOf(':');
    const b = connect({ host: this.target.slice(0, i), port: Number(this.target.slice(i + 1)) });
    pair.b = b;
    b.on('error', () => undefined);
    b.once('close', end);
    const id = this.nextId++;
    a.on('data', (d) => {
      this.tap?.(id, 'up', d);
      if (this.cut) pair.heldAB.push(d);
      else b.write(d);
    });
    b.on('data', (d) => {
      this.tap?.(id, 'down', d);
      if (this.cut) pair.heldBA.push(d);
      else a.write(d);
    });
  }

  /** Silently stops every byte, both ways, on every connection, old and new. */
  blackhole(): void {
    this.cut = true;
  }

  /** Forwards again; see the class comment for what happens to what was held. */
  heal(): void {
    this.cut = false;
    for (const p of [...this.pairs]) {
      if (p.stale || p.closedDuringCut || !p.b) {
        this.pairs.delete(p);
        p.a.destroy();
        p.b?.destroy();
        continue;
      }
      for (const d of p.heldAB.splice(0)) p.b.write(d);
      for (const d of p.heldBA.splice(0)) p.a.write(d);
    }
  }

  get connections(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.cut = false;
    for (const p of this.pairs) {
      p.a.destroy();
      p.b?.destroy();
    }
    this.pairs.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
