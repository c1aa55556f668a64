import { get } from '../api.js';
import { h, replace } from '../dom.js';
import { badge, table, when } from '../format.js';
import type { Page } from '../page.js';

interface Version {
  version: number;
  hash: string;
  files: string[];
  publishedAt: number;
  by: string;
  source: string;
  from?: number;
  bytes: number;
}
interface Versions {
  current: number;
  versions: Version[];
  spokes: Record<string, { version: number | null; lag: number | null }>;
}

export function configPage(): Page {
  const body = h('div', { class: 'panel' });
  const spokes = h('div', { class: 'panel' });
  return {
    title: 'Config versions',
    mount(root) {
      root.append(
        h('h1', null, 'Config versions'),
        h(
          'p',
          { class: 'muted' },
          'Publish with `axle config publish`, roll back with `axle config rollback VERSION`.',
        ),
        body,
        h('section', null, h('h2', null, 'Spokes'), spokes),
      );
    },
    async refresh() {
      let v: Versions;
      try {
        v = await get<Versions>('/api/v1/config/versions');
      } catch (e) {
        replace(body, h('p', { class: 'warning' }, `Config versions are not available: ${(e as Error).message}`));
        return;
      }
      const sorted = [...v.versions].sort((a, b) => b.version - a.version);
      replace(
        body,
        table(
          ['Version', '', 'Published', 'By', 'Source', 'Files', 'Size', 'Hash'],
          sorted.map((x) => [
            `v${x.version}`,
            x.version === v.current ? badge('current') : null,
            when(x.publishedAt),
            x.by,
            x.source === 'rollback' && x.from !== undefined ? `rollback of v${x.from}` : x.source,
            String(x.files.length),
            `${(x.bytes / 1024).toFixed(1)} KiB`,
            h('code', null, x.hash.slice(0, 16)),
          ]),
          { testid: 'versions-table', empty: 'Nothing published yet.' },
        ),
      );
      replace(
        spokes,
        table(
          ['Spoke', 'Version', 'Behind by'],
          Object.entries(v.spokes ?? {}).map(([id, s]) => [
            h('a', { href: `/spanner/spokes/${encodeURIComponent(id)}` }, id),
            s.version === null ? 'unknown' : `v${s.version}`,
            s.lag === null ? '—' : s.lag === 0 ? badge('ok') : h('span', { class: 'badge bad' }, String(s.lag)),
          ]),
          { testid: 'config-spokes-table' },
        ),
      );
    },
  };
}
