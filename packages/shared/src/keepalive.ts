import { OPEN, type FrameSocket } from './frame-socket.js';

/**
 * A connection's liveness check. Any sign of life counts (a frame, a ping or a pong), so a
 * busy link, or a peer that pings us, costs no pings at all. Pings only a peer that has been
 * silent for an interval, and gives it up when a ping has gone unanswered for another: a link
 * cut without a FIN is noticed within about three intervals.
 */
export class Keepalive {
  private lastHeard = Date.now();
  private pingSentAt = 0;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: FrameSocket,
    private readonly intervalMs: number,
    private readonly onDead: () => void,
  ) {
    if (intervalMs > 0) {
      this.timer = setInterval(() => this.tick(), intervalMs);
      this.timer.unref();
    }
  }

  heard(): void {
    this.lastHeard = Date.now();
    this.pingSentAt = 0;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastHeard < this.intervalMs) return;
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt >= this.intervalMs) this.onDead();
      return;
    }
    this.pingSentAt = now;
    if (this.socket.readyState === OPEN) this.socket.ping();
  }
}
