import { AxleError, ErrorCode, errorText } from './errors.js';
import type { Message } from './messages.js';

interface Waiter {
  resolve: (m: Message) => void;
  reject: (e: AxleError) => void;
  timer: NodeJS.Timeout;
}

/** A connection's requests waiting for their answer, each by its id and with its own timeout. */
export class PendingRequests {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();

  /**
   * Sends a request with `write` under a new id and waits for its answer: `timedOut` after
   * `timeoutMs`, or the error `unexpected` finds in the reply. A write that throws rejects at once.
   */
  open(o: {
    timeoutMs: number;
    timedOut: () => AxleError;
    unexpected: (reply: Message) => AxleError | undefined;
    write: (id: number) => void;
  }): Promise<Message> {
    const id = this.nextId++;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(o.timedOut());
      }, o.timeoutMs);
      this.waiting.set(id, {
        resolve: (m) => {
          const wrong = o.unexpected(m);
          if (wrong) reject(wrong);
          else resolve(m);
        },
        reject,
        timer,
      });
      try {
        o.write(id);
      } catch (e) {
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(e instanceof AxleError ? e : new AxleError(ErrorCode.CLOSED, errorText(e)));
      }
    });
  }

  /** The request an answer is for, no longer waiting; undefined for one that timed out already. */
  take(id: number): Pick<Waiter, 'resolve' | 'reject'> | undefined {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    return w;
  }

  /** Rejects every request still waiting (the connection closed). */
  rejectAll(error: () => AxleError): void {
    for (const [, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(error());
    }
    this.waiting.clear();
  }
}
