import { needAdmin } from '../actions.js';
import { get, post, session } from '../api.js';
import { confirmDialog, toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { ago, table } from '../format.js';
import type { Page } from '../page.js';
import type { PendingEnrollments, PendingEnrollmentView as Pending } from '../types.js';

/** Enrollments waiting for approval (enrollment.approval: manual): approve or reject each, after confirmation. */
export function enrollmentsPage(): Page {
  const body = h('div', { class: 'panel' });
  const decide = async (p: Pending, approve: boolean) => {
    if (!needAdmin()) return;
    const ok = await confirmDialog({
      title: `${approve ? 'Approve' : 'Reject'} ${p.hostname}?`,
      body: h(
        'p',
        null,
        approve
          ? `The hub places ${p.hostname} on the spoke its name routes to; the host connects there at its next locate.`
          : `The request is dropped; ${p.hostname} must enroll again with a token.`,
        h('br'),
        `Key ${p.pubkey.slice(0, 16)}…, from ${p.source}, with token ${p.tokenId}.`,
      ),
      confirm: approve ? 'Approve' : 'Reject',
      danger: !approve,
    });
    if (!ok) return;
    try {
      await post(`/api/v1/enrollments/${encodeURIComponent(p.hostname)}/${approve ? 'approve' : 'reject'}`);
      toast(`${p.hostname}: ${approve ? 'approved' : 'rejected'}`, 'ok', 'enrollment-result');
      await refresh();
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad', 'enrollment-result');
    }
  };
  const refresh = async () => {
    const r = await get<PendingEnrollments>('/api/v1/enrollments/pending');
    const admin = session()?.role === 'admin';
    replace(
      body,
      table(
        ['Host', 'Key', 'From', 'Token', 'Waiting', ''],
        r.pending.map((p) => [
          h('span', { class: 'host' }, p.hostname),
          h('code', null, `${p.pubkey.slice(0, 16)}…`),
          p.source,
          h('code', null, p.tokenId),
          ago(p.requestedAt),
          admin
            ? h(
                'div',
                { class: 'row-actions' },
                h(
                  'button',
                  { class: 'primary small', testid: `approve-${p.hostname}`, onclick: () => void decide(p, true) },
                  'Approve',
                ),
                h(
                  'button',
                  { class: 'secondary small', testid: `reject-${p.hostname}`, onclick: () => void decide(p, false) },
                  'Reject',
                ),
              )
            : null,
        ]),
        {
          testid: 'pending-table',
          empty: 'No enrollment is waiting. With enrollment.approval: manual, new hosts wait here for approval.',
        },
      ),
    );
  };
  return {
    title: 'Pending enrollments',
    mount(root) {
      root.append(h('h1', null, 'Pending enrollments'), body);
    },
    refresh,
  };
}
