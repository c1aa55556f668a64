import { needAdmin } from '../actions.js';
import { del, get, post, session } from '../api.js';
import { confirmDialog, toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { badge, table, when } from '../format.js';
import type { Page } from '../page.js';
import type { ApiTokenCreated, ApiTokenView, JoinTokenCreated, JoinTokenView } from '../types.js';

const field = (label: string, input: HTMLElement) => h('label', { class: 'field' }, label, input);

/**
 * Join tokens (what new hosts enroll with) and API tokens (what the CLI, scripts and this UI
 * log in with): list, create (the secret is shown once, here) and revoke, each write behind a
 * confirmation.
 */
export function tokensPage(): Page {
  const secret = h('div');
  const joins = h('div', { class: 'panel' });
  const apis = h('div', { class: 'panel' });

  const showSecret = (what: string, value: string) =>
    replace(
      secret,
      h(
        'div',
        { class: 'warning' },
        h('p', null, `${what}. Copy the secret now: the hub keeps only its hash and will not show it again.`),
        h('code', { class: 'secret', testid: 'new-secret' }, value),
      ),
    );

  const createJoin = async () => {
    if (!needAdmin()) return;
    const fd = await confirmDialog({
      title: 'New join token',
      body: h('p', null, 'Hosts enroll with it (axle-envoy enroll --token, or the bootstrap script).'),
      fields: [
        field('Host name pattern', h('input', { name: 'pattern', placeholder: '*.dc1.*', testid: 'token-pattern' })),
        field('Valid for', h('input', { name: 'ttl', value: '24h', testid: 'token-ttl' })),
        field('Uses', h('input', { name: 'max_uses', type: 'number', placeholder: 'unlimited', testid: 'token-uses' })),
        field('Only into spokes', h('input', { name: 'spokes', placeholder: 'dc1, dc2', testid: 'token-spokes' })),
        field('Note', h('input', { name: 'note', testid: 'token-note' })),
      ],
      confirm: 'Create',
    });
    if (!fd) return;
    const text = (k: string) => String(fd.get(k) ?? '').trim();
    const spokes = text('spokes')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    try {
      const r = await post<JoinTokenCreated>('/api/v1/tokens', {
        ...(text('pattern') ? { pattern: text('pattern') } : {}),
        ...(text('ttl') ? { ttl: text('ttl') } : {}),
        ...(text('max_uses') ? { max_uses: Number(text('max_uses')) } : {}),
        ...(spokes.length > 0 ? { spokes } : {}),
        ...(text('note') ? { note: text('note') } : {}),
      });
      showSecret(`Join token ${r.token.id} created`, r.secret);
      await refresh();
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad');
    }
  };

  const createApi = async () => {
    if (!needAdmin()) return;
    const fd = await confirmDialog({
      title: 'New API token',
      body: h('p', null, 'For the axle CLI, scripts and this web UI. A viewer reads; an admin changes things.'),
      fields: [
        field('Name', h('input', { name: 'name', required: true, testid: 'api-token-name' })),
        field(
          'Role',
          h(
            'select',
            { name: 'role', testid: 'api-token-role' },
            h('option', { value: 'viewer' }, 'viewer'),
            h('option', { value: 'admin' }, 'admin'),
          ),
        ),
      ],
      confirm: 'Create',
    });
    if (!fd) return;
    try {
      const r = await post<ApiTokenCreated>('/api/v1/api-tokens', {
        name: String(fd.get('name') ?? '').trim(),
        role: String(fd.get('role') ?? 'viewer'),
      });
      showSecret(`API token ${r.token.name} (${r.token.role}) created`, r.secret);
      await refresh();
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad');
    }
  };

  const revoke = async (kind: 'join' | 'api', id: string, label: string) => {
    if (!needAdmin()) return;
    const ok = await confirmDialog({
      title: `Revoke ${label}?`,
      body: h(
        'p',
        null,
        kind === 'join'
          ? 'No host can enroll with it any more.'
          : 'Whoever uses it (CLI, scripts, web sessions) is refused from now on.',
      ),
      confirm: 'Revoke',
      danger: true,
    });
    if (!ok) return;
    try {
      await del(
        kind === 'join' ? `/api/v1/tokens/${encodeURIComponent(id)}` : `/api/v1/api-tokens/${encodeURIComponent(id)}`,
      );
      toast(`Revoked ${label}`, 'ok');
      await refresh();
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad');
    }
  };

  const revokeButton = (kind: 'join' | 'api', id: string, label: string) =>
    h(
      'button',
      { class: 'secondary small', testid: `revoke-${id}`, onclick: () => void revoke(kind, id, label) },
      'Revoke',
    );

  const refresh = async () => {
    if (session()?.role !== 'admin') {
      replace(joins, h('p', { class: 'warning' }, 'Tokens need an admin token; you are logged in as a viewer.'));
      replace(apis);
      return;
    }
    const [j, a] = await Promise.all([
      get<{ tokens: JoinTokenView[] }>('/api/v1/tokens'),
      get<{ tokens: ApiTokenView[] }>('/api/v1/api-tokens'),
    ]);
    replace(
      joins,
      h(
        'div',
        { class: 'toolbar' },
        h('h2', null, 'Join tokens'),
        h('span'),
        h(
          'button',
          { class: 'primary small', testid: 'new-join-token', onclick: () => void createJoin() },
          'New join token…',
        ),
      ),
      table(
        ['Id', 'State', 'Pattern', 'Spokes', 'Uses', 'Expires', 'Note', 'Created', ''],
        [...j.tokens]
          .sort((x, y) => y.createdAt - x.createdAt)
          .map((t) => [
            h('code', null, t.id),
            badge(t.state, `join-state-${t.id}`),
            t.pattern ?? 'any',
            t.spokes?.join(', ') ?? 'any',
            `${t.uses}${t.maxUses ? ` / ${t.maxUses}` : ''}`,
            when(t.expiresAt),
            t.note ?? '',
            `${when(t.createdAt)}${t.createdBy ? ` by ${t.createdBy}` : ''}`,
            t.state === 'active' ? revokeButton('join', t.id, `join token ${t.id}`) : null,
          ]),
        { testid: 'join-tokens-table', empty: 'No join tokens.' },
      ),
    );
    replace(
      apis,
      h(
        'div',
        { class: 'toolbar' },
        h('h2', null, 'API tokens'),
        h('span'),
        h(
          'button',
          { class: 'primary small', testid: 'new-api-token', onclick: () => void createApi() },
          'New API token…',
        ),
      ),
      table(
        ['Id', 'Name', 'Role', 'Created', 'State', ''],
        [...a.tokens]
          .sort((x, y) => y.createdAt - x.createdAt)
          .map((t) => [
            h('code', null, t.id),
            t.name,
            t.role,
            when(t.createdAt),
            badge(t.revokedAt ? 'revoked' : 'active', `api-state-${t.id}`),
            !t.revokedAt && t.id !== 'admin' ? revokeButton('api', t.id, `API token ${t.name}`) : null,
          ]),
        { testid: 'api-tokens-table', empty: 'No API tokens.' },
      ),
    );
  };

  return {
    title: 'Tokens',
    mount(root) {
      root.append(h('h1', null, 'Tokens'), secret, joins, apis);
    },
    refresh,
  };
}
