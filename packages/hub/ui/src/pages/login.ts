import { login } from '../api.js';
import { h, replace } from '../dom.js';

export function loginView(root: HTMLElement, done: () => void): void {
  const err = h('p', { class: 'error', testid: 'login-error' });
  const input = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    placeholder: 'axa_…',
    required: true,
    testid: 'login-token',
  });
  const form = h(
    'form',
    { class: 'login', testid: 'login-form' },
    h('h1', null, 'Axle'),
    h(
      'p',
      { class: 'muted' },
      "Log in with an API token. The admin token is in admin.token in the hub's data directory; `axle tokens` can make more.",
    ),
    h('label', { class: 'field' }, 'API token', input),
    h('button', { type: 'submit', class: 'primary', testid: 'login-submit' }, 'Log in'),
    err,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    err.textContent = '';
    login(input.value).then(done, (x: Error) => {
      err.textContent = x.message;
    });
  });
  replace(root, form);
  input.focus();
}
