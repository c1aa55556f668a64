import { get, post, session } from './api.js';
import { confirmDialog, toast } from './dialog.js';
import { h } from './dom.js';
import type { Move, MoveStarted, SpokeView } from './types.js';

function spokeSelect(spokes: SpokeView[], exclude: string | undefined, allowPatterns: boolean): HTMLElement {
  return h(
    'label',
    { class: 'field' },
    'Move envoys to ',
    h(
      'select',
      { name: 'to', testid: 'dialog-to' },
      allowPatterns ? h('option', { value: '' }, 'the spokes whose patterns match each host') : null,
      spokes
        .filter((s) => s.id !== exclude)
        .map((s) => h('option', { value: s.id }, `${s.id} (${s.state}, ${s.envoys} envoys)`)),
    ),
  );
}

/** Polls a move until it finishes, showing progress in a toast. */
async function follow(move: Move, what: string): Promise<void> {
  const t = toast(`${what}: started`, 'info', 'move-progress');
  for (let i = 0; i < 600; i++) {
    const m = await get<Move>(`/api/v1/moves/${encodeURIComponent(move.id)}`).catch(() => undefined);
    if (m) {
      const left = m.skipped + m.failed;
      t.textContent = `${what}: ${m.moved + m.already} of ${m.total} moved${left ? `, ${left} could not be placed` : ''} (${m.state})`;
      if (m.state !== 'running') {
        t.className = `toast ${m.state === 'done' && !m.failed ? 'ok' : 'bad'}`;
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export function needAdmin(): boolean {
  if (session()?.role === 'admin') return true;
  toast('This needs an admin token; you are logged in as a viewer.', 'bad');
  return false;
}

export async function drainSpoke(id: string, spokes: SpokeView[], after: () => void): Promise<void> {
  if (!needAdmin()) return;
  const s = spokes.find((x) => x.id === id);
  const fd = await confirmDialog({
    title: `Drain spoke ${id}?`,
    body: h(
      'p',
      null,
      `Every envoy on ${id} (${s?.envoys ?? '?'} in the directory) is moved away, and ${id} takes no new envoys until it is resumed.`,
    ),
    fields: [spokeSelect(spokes, id, true)],
    confirm: `Drain ${id}`,
    danger: true,
  });
  if (!fd) return;
  const to = String(fd.get('to') ?? '');
  try {
    const r = await post<MoveStarted>('/api/v1/drain', { spoke: id, ...(to ? { to } : {}) });
    after();
    await follow(r.move, `Drain of ${id}${r.existing ? ' (already running)' : ''}`);
    after();
  } catch (e) {
    toast(`Drain refused: ${(e as Error).message}`, 'bad');
  }
}

export async function reassign(glob: string, spokes: SpokeView[], after: () => void): Promise<void> {
  if (!needAdmin()) return;
  const fd = await confirmDialog({
    title: 'Reassign envoys?',
    body: h(
      'p',
      null,
      'Every envoy whose host name matches ',
      h('code', { testid: 'dialog-glob' }, glob),
      ' is moved to the spoke you choose; envoys already there are left alone.',
    ),
    fields: [spokeSelect(spokes, undefined, false)],
    confirm: 'Reassign',
  });
  if (!fd) return;
  const to = String(fd.get('to') ?? '');
  try {
    const r = await post<MoveStarted>('/api/v1/reassign', { hostname: glob, to });
    after();
    await follow(r.move, `Reassign ${glob} to ${to}`);
    after();
  } catch (e) {
    toast(`Reassign refused: ${(e as Error).message}`, 'bad');
  }
}
