import { h, type Child } from './dom.js';

/** A modal confirmation; resolves with the form's values on confirm, undefined on cancel. */
export function confirmDialog(o: {
  title: string;
  body: Child;
  confirm: string;
  danger?: boolean;
  fields?: HTMLElement[];
}): Promise<FormData | undefined> {
  return new Promise((resolve) => {
    const form = h(
      'form',
      { class: 'dialog-form' },
      h('h2', null, o.title),
      h('div', { class: 'dialog-body' }, o.body),
      o.fields ?? null,
      h(
        'div',
        { class: 'dialog-actions' },
        h(
          'button',
          { type: 'button', class: 'secondary', testid: 'dialog-cancel', onclick: () => done(undefined) },
          'Cancel',
        ),
        h('button', { type: 'submit', class: o.danger ? 'danger' : 'primary', testid: 'dialog-confirm' }, o.confirm),
      ),
    );
    const dlg = h('dialog', { testid: 'confirm-dialog' }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      done(new FormData(form));
    });
    dlg.addEventListener('cancel', () => done(undefined));
    let settled = false;
    function done(v: FormData | undefined): void {
      if (settled) return;
      settled = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    }
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/** A short message in the corner. */
export function toast(text: string, kind: 'ok' | 'bad' | 'info' = 'info', testid = 'toast'): HTMLElement {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts' });
    document.body.appendChild(box);
  }
  const t = h('div', { class: `toast ${kind}`, testid }, text);
  box.appendChild(t);
  setTimeout(() => t.remove(), 8000);
  return t;
}
