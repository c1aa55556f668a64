import { EventEmitter } from 'node:events';
import type { Logger } from '@axle/shared';
import type { EventType } from '../daemon/config.js';
import type { Change, HubEvent } from './model.js';
import type { HubStore } from './state.js';

/**
 * The hub's event log: each event is a durable change (so replication carries it and the
 * API can page through it). The store announces each one once its write commits; here it is
 * logged and passed on to listeners such as the webhook sender.
 */
export class Events extends EventEmitter<{ event: [HubEvent] }> {
  constructor(
    private readonly state: HubStore,
    private readonly log: Logger,
  ) {
    super();
    state.onEvent((ev) => {
      this.log.info({ event: ev.type, seq: ev.seq, ...ev.data }, `event ${ev.type}`);
      this.emit('event', ev);
    });
  }

  /** A change that records an event, to apply together with the change it describes. */
  change(type: EventType, data: Record<string, unknown>): Change & { kind: 'event.add' } {
    return { kind: 'event.add', event: { seq: 0, at: Date.now(), type, data } };
  }

  /** Applies `changes` and the event in one transaction; the store announces the event. */
  async record(type: EventType, data: Record<string, unknown>, changes: Change[] = []): Promise<HubEvent> {
    const ev = this.change(type, data);
    await this.state.applyAll([...changes, ev]);
    return ev.event;
  }
}
