/**
 * What one source address holds open on a daemon's port: sockets that have not sent a request
 * yet, plain HTTP sockets, WebSocket handshakes in progress and established connections. Every
 * count is taken through a slot that is given back exactly once, whichever way its socket ends
 * (refused upgrade, failed handshake, closed connection, idle timeout), so the books always
 * balance and one address (or a NAT full of hosts behind it) is never locked out by slots
 * nobody holds.
 */
export interface SlotLimits {
  /** Plain HTTP sockets (API, metrics, keep-alive) per address. */
  http: number;
  /** WebSocket handshakes in progress per address. */
  handshakes: number;
  /** Established connections plus handshakes per address. */
  conns: number;
}

interface Counts {
  pending: number;
  http: number;
  handshakes: number;
  conns: number;
}

export type SlotTotals = Counts & { addresses: number };

type State = keyof Counts | 'done';

/** One socket's claim, moving through the states above; `release` is idempotent. */
export class Slot {
  constructor(
    private readonly owner: AddressSlots,
    readonly ip: string,
    private readonly c: Counts,
    private state: State,
  ) {}

  get kind(): State {
    return this.state;
  }

  /** A first plain request on a new socket: false (and still pending) when the address has its share. */
  toHttp(): boolean {
    if (this.state !== 'pending') return this.state === 'http';
    if (this.c.http >= this.owner.limits.http) return false;
    this.move('http');
    return true;
  }

  /** A WebSocket upgrade; a string says why it is refused (the slot is then given back). */
  toHandshake(): string | undefined {
    const c = this.c;
    const why =
      c.conns + c.handshakes >= this.owner.limits.conns
        ? 'Too Many Connections'
        : c.handshakes >= this.owner.limits.handshakes
          ? 'Too Many Handshakes'
          : undefined;
    if (why) this.release();
    else this.move('handshakes');
    return why;
  }

  /** A handshake that completed becomes a connection. */
  promote(): void {
    if (this.state === 'handshakes') this.move('conns');
  }

  release(): void {
    if (this.state === 'done') return;
    this.c[this.state]--;
    this.state = 'done';
    this.owner.tidy(this.ip, this.c);
  }

  private move(to: keyof Counts): void {
    if (this.state === 'done') return;
    this.c[this.state]--;
    this.c[to]++;
    this.state = to;
  }
}

export class AddressSlots {
  private readonly byIp = new Map<string, Counts>();

  constructor(public limits: SlotLimits) {}

  /**
   * A new TCP socket, not yet known to be HTTP or WebSocket. Undefined when the address already
   * has as many of these as it may have HTTP sockets and handshakes together.
   */
  open(ip: string): Slot | undefined {
    let c = this.byIp.get(ip);
    if (!c) this.byIp.set(ip, (c = { pending: 0, http: 0, handshakes: 0, conns: 0 }));
    if (c.pending >= this.limits.http + this.limits.handshakes) {
      this.tidy(ip, c);
      return undefined;
    }
    c.pending++;
    return new Slot(this, ip, c, 'pending');
  }

  /** @internal Forgets an address that holds nothing. */
  tidy(ip: string, c: Counts): void {
    if (c.pending <= 0 && c.http <= 0 && c.handshakes <= 0 && c.conns <= 0) this.byIp.delete(ip);
  }

  totals(): SlotTotals {
    const t: SlotTotals = { addresses: this.byIp.size, pending: 0, http: 0, handshakes: 0, conns: 0 };
    for (const c of this.byIp.values()) {
      t.pending += c.pending;
      t.http += c.http;
      t.handshakes += c.handshakes;
      t.conns += c.conns;
    }
    return t;
  }
}
