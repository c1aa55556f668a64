import { get, qs } from '../api.js';
import { h, replace } from '../dom.js';
import { table, when } from '../format.js';
import type { Page } from '../page.js';
import type { EventPage, HubEvent } from '../types.js';

const KEEP = 300;

/** The hub's event log, newest first; later polls fetch only what is new. */
export function eventsPage(): Page {
  const body = h('div', { class: 'panel' });
  let events: HubEvent[] = [];
  let after = 0;
  return {
    title: 'Events',
    mount(root) {
      root.append(h('h1', null, 'Events'), body);
    },
    async refresh() {
      for (let i = 0; i < 50; i++) {
        const r = await get<EventPage>(`/api/v1/events${qs({ after, limit: 1000 })}`);
        events = [...events, ...r.events].slice(-KEEP);
        if (r.next !== null) after = r.next;
        if (r.events.length < 1000) break;
      }
      replace(
        body,
        table(
          ['#', 'When', 'Type', 'Details'],
          [...events].reverse().map((e) => [
            String(e.seq),
            when(e.at),
            h('code', null, e.type),
            h(
              'span',
              { class: 'msg' },
              Object.entries(e.data ?? {})
                .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
                .join('  '),
            ),
          ]),
          { testid: 'events-table', empty: 'No events yet.' },
        ),
      );
    },
  };
}
