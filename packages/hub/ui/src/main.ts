import { loadSession, logout, session, setUnauthenticatedHandler } from './api.js';
import { h, replace } from './dom.js';
import type { Page } from './page.js';
import { configPage } from './pages/config.js';
import { envoyPage } from './pages/envoy.js';
import { envoysPage } from './pages/envoys.js';
import { enrollmentsPage } from './pages/enrollments.js';
import { eventsPage } from './pages/events.js';
import { jobPage, jobsPage } from './pages/jobs.js';
import { loginView } from './pages/login.js';
import { overviewPage } from './pages/overview.js';
import { rolloutPage, rolloutsPage } from './pages/rollouts.js';
import { spokePage } from './pages/spoke.js';
import { spokesPage } from './pages/spokes.js';
import { tokensPage } from './pages/tokens.js';

const POLL_MS = 3000;
const app = document.getElementById('app')!;
let current: { page: Page; path: string } | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let refreshing = false;

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/spokes', 'Spokes'],
  ['/envoys', 'Envoys'],
  ['/jobs', 'Jobs'],
  ['/config', 'Config'],
  ['/rollouts', 'Rollouts'],
  ['/tokens', 'Tokens'],
  ['/enrollments', 'Enrollments'],
  ['/events', 'Events'],
];

function pageFor(path: string, search: URLSearchParams): Page | undefined {
  const seg = (s: string | undefined) => decodeURIComponent(s ?? '');
  let m: RegExpExecArray | null;
  if (path === '/') return overviewPage();
  if (path === '/spokes') return spokesPage();
  if ((m = /^\/spanner\/spokes\/([^/]+)$/.exec(path))) return spokePage(seg(m[1]));
  if (path === '/envoys') return envoysPage(search, navigate);
  if ((m = /^\/envoys\/([^/]+)$/.exec(path))) return envoyPage(seg(m[1]));
  if (path === '/config') return configPage(navigate);
  if (path === '/rollouts') return rolloutsPage();
  if ((m = /^\/rollouts\/([^/]+)$/.exec(path))) return rolloutPage(seg(m[1]));
  if (path === '/tokens') return tokensPage();
  if (path === '/enrollments') return enrollmentsPage();
  if (path === '/events') return eventsPage();
  if (path === '/jobs') return jobsPage();
  if ((m = /^\/jobs\/([^/]+)$/.exec(path))) return jobPage(seg(m[1]));
  return undefined;
}

function shell(path: string): { main: HTMLElement; status: HTMLElement } {
  const me = session();
  const status = h('span', { class: 'status', testid: 'refresh-status' });
  const main = h('main', { id: 'main' });
  const active = (p: string) =>
    p === '/' ? path === '/' : path.startsWith(p) || (p === '/spokes' && path.startsWith('/spanner/'));
  replace(
    app,
    h(
      'header',
      null,
      h('a', { href: '/', class: 'brand' }, 'Axle'),
      h(
        'nav',
        null,
        NAV.map(([p, label]) =>
          h('a', { href: p, class: active(p) ? 'active' : undefined, testid: `nav-${label.toLowerCase()}` }, label),
        ),
      ),
      h(
        'div',
        { class: 'who' },
        status,
        ' ',
        me ? `${me.hub} · ${me.name} (${me.role})` : '',
        ' ',
        h(
          'button',
          { class: 'secondary small', testid: 'logout', onclick: () => void logout().then(() => render()) },
          'Log out',
        ),
      ),
    ),
    main,
  );
  return { main, status };
}

async function refresh(status: HTMLElement): Promise<void> {
  if (!current || refreshing) return;
  refreshing = true;
  const page = current.page;
  try {
    await page.refresh();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = 'status';
  } catch (e) {
    status.textContent = `refresh failed: ${(e as Error).message}`;
    status.className = 'status bad';
  } finally {
    refreshing = false;
  }
}

function schedule(status: HTMLElement): void {
  if (timer) clearTimeout(timer);
  timer = setTimeout(() => {
    // While a dialog is open the page keeps still, so the confirmation refers to what was shown.
    const busy = document.querySelector('dialog[open]') !== null || document.hidden;
    void (busy ? Promise.resolve() : refresh(status)).then(() => schedule(status));
  }, POLL_MS);
}

async function render(): Promise<void> {
  if (timer) clearTimeout(timer);
  current?.page.unmount?.();
  current = undefined;
  if (!session() && !(await loadSession())) {
    loginView(app, () => {
      if (location.pathname === '/login') history.replaceState(null, '', '/');
      void render();
    });
    return;
  }
  const path = location.pathname === '/login' ? '/' : location.pathname;
  const { main, status } = shell(path);
  const page = pageFor(path, new URLSearchParams(location.search));
  if (!page) {
    replace(
      main,
      h('h1', null, 'Not found'),
      h('p', null, 'No such page. ', h('a', { href: '/' }, 'Back to the overview')),
    );
    return;
  }
  document.title = `${page.title} · Axle`;
  page.mount(main);
  current = { page, path };
  await refresh(status);
  if (page.live) {
    status.textContent = 'live';
    return;
  }
  schedule(status);
}

export function navigate(path: string, replaceOnly = false): void {
  if (replaceOnly) {
    history.replaceState(null, '', path);
    return;
  }
  history.pushState(null, '', path);
  void render();
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest('a');
  const href = a?.getAttribute('href');
  if (!href?.startsWith('/') || href.startsWith('//')) return;
  e.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', () => void render());
setUnauthenticatedHandler(() => void render());
void render();
