import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { connectPeer, type Message, type MessageOf } from '@axle/shared';
import { HOSTILE, startFleet, type Fleet } from '../../packages/hub/test/cli-fleet.js';
import {
  apiTokens,
  Bag,
  directory,
  enroll,
  envoy,
  joinToken,
  joinTokens,
  ROOT,
  spokeViews,
  tempDir,
  writeConfig,
} from '@axle/testkit';

const ARTIFACTS = join(ROOT, 'test', 'artifacts');
const bag = new Bag();
let f: Fleet;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const dialogs: string[] = [];
const pageErrors: string[] = [];
const consoleLines: string[] = [];

const tid = (id: string) => page.locator(`[data-testid="${id}"]`);
const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `ui-${name}.png`), fullPage: true });
const text = async (id: string) => ((await tid(id).textContent()) ?? '').trim();
/** Waits until the element's text is `want` (the page polls the hub every few seconds). */
/** The page's globals, typed here because the test's tsconfig has no DOM library (and the page's CSP forbids string evaluation). */
interface PageGlobals {
  document: { cookie: string; querySelector(sel: string): { textContent: string | null } | null };
  __pwned?: number;
}
const until = (id: string, want: string | RegExp, timeout = 15_000) =>
  page.waitForFunction(
    ([sel, w, isRe]) => {
      const t = (globalThis as unknown as PageGlobals).document.querySelector(sel)?.textContent?.trim() ?? '';
      return isRe ? new RegExp(w).test(t) : t === w;
    },
    [`[data-testid="${id}"]`, typeof want === 'string' ? want : want.source, typeof want !== 'string'] as [
      string,
      string,
      boolean,
    ],
    { timeout },
  );
const tableRows = (id: string) => page.locator(`[data-testid="${id}"] tbody tr`);
const work = tempDir('axle-ui-');
bag.add(work.cleanup);
const hubConfigFile = join(work.dir, 'hub.yaml');

/** A config tree to publish from the UI (its one policy differs by name). */
function bundle(name: string): string {
  const dir = join(work.dir, name);
  mkdirSync(join(dir, 'policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'base.yaml'), `description: ${name}\nresources:\n  - exec: [/bin/true]\n`);
  return dir;
}

/**
 * Envoys that stay connected to their spoke and answer orders as told: a rollout's config
 * order fails (unless it is the hub's revert order), converge succeeds after `delayMs`.
 */
async function connectedEnvoys(hosts: string[], delayMs: number): Promise<void> {
  const token = await joinToken(f.hub, { max_uses: hosts.length });
  for (const hostname of hosts) {
    const e = envoy(hostname);
    const a = await enroll(f.hub.addr, e, token);
    const c = await connectPeer(a.target!.addr, {
      id: hostname,
      role: 'envoy',
      keyPair: e.key,
      expectServerKey: a.target!.pubkey,
      keepaliveMs: 0,
    });
    bag.add(() => c.close());
    const onRequest = async (m: Message): Promise<MessageOf<'job_result'>> => {
      if (m.type !== 'job_run') throw new Error(`unexpected ${m.type}`);
      await new Promise((r) => setTimeout(r, delayMs));
      const bad = m.action.kind === 'config' && !m.action.revert;
      return {
        type: 'job_result',
        status: bad ? 'failed' : 'succeeded',
        message: bad ? 'run failed: exec /bin/false' : 'ok',
        output: '',
      };
    };
    c.attach({ onRequest });
    await c.request(
      { type: 'checkin', hostname, epoch: a.epoch, term: a.term, configVersion: 0 },
      10_000,
      'checkin_ok',
    );
  }
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  f = await startFleet(bag, { hostile: true, configFile: hubConfigFile });
  base = `http://${f.hub.addr}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  bag.add(() => browser.close());
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
}, 60_000);
afterAll(() => bag.run());

describe('the web UI in Chromium', () => {
  it('logs in with an API token into an HttpOnly SameSite=Strict session cookie', async () => {
    await page.goto(`${base}/`);
    await tid('login-form').waitFor();
    await shot('login');
    await tid('login-token').fill('axa_not-a-token');
    await tid('login-submit').click();
    await until('login-error', /not valid/);
    await tid('login-token').fill(f.token);
    await tid('login-submit').click();
    await until('spokes-online', '2 / 2');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'axle_session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(f.token);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie)).toBe('');
  });

  it('shows the fleet overview with the right counts and a compliance chart', async () => {
    expect(await text('spokes-online')).toBe('2 / 2');
    expect(await text('spokes-offline')).toBe('0');
    expect(await text('envoy-count')).toBe('6');
    await until('noncompliant-count', '2');
    expect(await text('spoke-envoys-dc1')).toBe('4');
    expect(await text('spoke-envoys-dc2')).toBe('2');
    expect(await text('spoke-state-dc1')).toBe('online');
    const chart = tid('compliance-chart');
    await chart.waitFor();
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
    const hist = (await (
      await fetch(`${base}/api/v1/compliance/history`, { headers: { authorization: `Bearer ${f.token}` } })
    ).json()) as { samples: { ratio: number | null; spokesOnline: number }[] };
    expect(hist.samples.at(-1)).toMatchObject({ ratio: 4 / 6, spokesOnline: 2 });
    expect((await fetch(`${base}/api/v1/compliance/history`)).status).toBe(401);
    expect(await page.locator('[data-testid="spokes-table"] thead').textContent()).toMatch(/Probe latency.*Config/);
    // The chart reads the hub's stored history over the range chosen.
    await tid('range-24h').click();
    await page.locator('[data-testid="compliance-chart"][data-range="24h"]').waitFor();
    await shot('overview');
  });

  it("opens a spoke's detail page at /spanner/spokes/{id}", async () => {
    await tid('spoke-link-dc1').click();
    await page.waitForURL(`${base}/spanner/spokes/dc1`);
    await until('spoke-id', 'dc1');
    expect(await text('spoke-envoy-count')).toBe('4');
    expect(await text('compliance-breakdown')).toMatch(/2 compliant.*2 noncompliant.*0 unknown/);
    expect(await tableRows('runs-table').count()).toBe(4);
    expect(await tableRows('spoke-envoys-table').count()).toBe(4);
    expect(await page.locator('[data-testid="spoke-envoys-table"]').textContent()).toContain('db1.dc1.example.com');
    await shot('spoke-detail');
    // A direct load of the URL works too (the hub serves the app for it).
    await page.goto(`${base}/spanner/spokes/dc2`);
    await until('spoke-id', 'dc2');
    expect(await text('spoke-envoy-count')).toBe('2');
  });

  it('searches envoys by glob, compliance and trait', async () => {
    await tid('nav-envoys').click();
    await page.waitForURL(`${base}/envoys`);
    await until('result-count', '6 envoys on this page');
    await tid('search-match').fill('web*');
    await tid('search-submit').click();
    await until('result-count', '4 envoys on this page');
    expect(page.url()).toContain('match=web*');
    await tid('search-match').fill('');
    await tid('search-compliance').selectOption('noncompliant');
    await tid('search-submit').click();
    await until('result-count', '2 envoys on this page');
    await tid('search-compliance').selectOption('');
    await tid('search-trait').fill('os.family=rhel');
    await tid('search-submit').click();
    await until('result-count', '1 envoy on this page');
    expect(await page.locator('[data-testid="envoys-table"] tbody').textContent()).toContain('db1.dc1.example.com');
    await shot('envoys');
  });

  it("shows an envoy's policies (applied, skipped and why) and the diffs of its last run", async () => {
    await page.goto(`${base}/envoys/web1.dc1.example.com`);
    await until('envoy-hostname', 'web1.dc1.example.com');
    const rowsText = await tableRows('policies-table').allTextContents();
    expect(rowsText).toEqual(['webapplied', 'rhel-onlyskippedwhen: os_id is "debian", not "rhel"']);
    const diff = page.locator('[data-testid="diffs"] pre');
    expect(await diff.textContent()).toBe(
      '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1 +1 @@\n-workers=2\n+workers=4\n',
    );
    expect(await diff.locator('span.add').allTextContents()).toEqual(['+workers=4\n']);
    expect(await diff.locator('span.del').allTextContents()).toEqual(['-workers=2\n']);
    await shot('envoy-policies');
  });

  it('renders hostile envoy data as text and runs none of it', async () => {
    await page.goto(`${base}/envoys/evil.dc1.example.com`);
    await until('envoy-hostname', 'evil.dc1.example.com');
    const traits = page.locator('[data-testid="traits-table"]');
    await traits.waitFor();
    const cells = await traits.locator('td').allTextContents();
    expect(cells).toContain(HOSTILE.script);
    expect(cells).toContain(HOSTILE.img);
    expect(cells).toContain('nested.note');
    const results = await page.locator('[data-testid="results-table"]').textContent();
    expect(results).toContain(HOSTILE.script);
    expect(results).toContain(HOSTILE.img);
    // Policy names, skip reasons and diffs come from the envoy too: text, never markup.
    expect(await page.locator('[data-testid="policies-table"]').textContent()).toContain(HOSTILE.img);
    expect(await page.locator('[data-testid="policies-table"]').textContent()).toContain(HOSTILE.script);
    expect(await page.locator('[data-testid="diffs"]').textContent()).toContain(`+workers=${HOSTILE.script}`);
    // Nothing became markup: no script or img element anywhere in the app, no handler ran.
    expect(await page.locator('#app script, #app img, #app [onerror]').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
    await shot('envoy-hostile');
    // The search table shows the host too; its traits through the trait filter.
    await page.goto(`${base}/envoys?trait=${encodeURIComponent(`role=${HOSTILE.script}`)}`);
    await until('result-count', '1 envoy on this page');
    expect(dialogs).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
  });

  it('drains and resumes a spoke from the UI, only after confirmation', async () => {
    await page.goto(`${base}/spokes`);
    await until('spoke-state-dc2', 'online');
    await tid('drain-dc2').click();
    await tid('confirm-dialog').waitFor();
    await shot('drain-dialog');
    await tid('dialog-cancel').click();
    expect(await tid('confirm-dialog').count()).toBe(0);
    expect((await spokeViews(f.hub)).get('dc2')!.admin?.state ?? 'active').toBe('active');

    await tid('drain-dc2').click();
    await tid('dialog-to').selectOption('dc1');
    await tid('dialog-confirm').click();
    await until('move-progress', /2 of 2 moved \(done\)/);
    await until('spoke-state-dc2', 'drained');
    expect((await spokeViews(f.hub)).get('dc1')!.envoys).toBe(6);
    await page.getByRole('button', { name: 'Resume' }).click();
    await until('spoke-state-dc2', 'online');
  });

  it('reassigns matching envoys from the search page after confirmation', async () => {
    await page.goto(`${base}/envoys?match=web*.dc2.*`);
    await until('result-count', '2 envoys on this page');
    await tid('reassign-button').click();
    expect(await text('dialog-glob')).toBe('web*.dc2.*');
    await tid('dialog-to').selectOption('dc2');
    await tid('dialog-confirm').click();
    await until('move-progress', /2 of 2 moved \(done\)/);
    expect((await spokeViews(f.hub)).get('dc2')!.envoys).toBe(2);
  });

  it('refuses cookie writes without the CSRF token or from another origin', async () => {
    const [cookie] = await context.cookies();
    const jar = `axle_session=${cookie!.value}`;
    const me = (await (await fetch(`${base}/ui/session`, { headers: { cookie: jar } })).json()) as { csrf: string };
    const post = (h: Record<string, string>) =>
      fetch(`${base}/api/v1/tokens`, {
        method: 'POST',
        headers: { cookie: jar, 'content-type': 'application/json', ...h },
        body: '{}',
      });
    const before = (await joinTokens(f.hub)).length;
    expect((await post({})).status).toBe(403);
    expect((await post({ 'x-axle-csrf': 'wrong' })).status).toBe(403);
    expect((await post({ 'x-axle-csrf': me.csrf, origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ 'x-axle-csrf': me.csrf, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await joinTokens(f.hub)).length).toBe(before);
    expect((await post({ 'x-axle-csrf': me.csrf, origin: base })).status).toBe(200);
    // From the page itself, without the header, the hub refuses too.
    const status = await page.evaluate(
      async () =>
        (
          await fetch('/api/v1/drain', {
            method: 'POST',
            body: '{"spoke":"dc1"}',
            headers: { 'content-type': 'application/json' },
          })
        ).status,
    );
    expect(status).toBe(403);
  });

  it('publishes from the Config page, rolls a version out, and rolls a halted rollout back from its page', async () => {
    await connectedEnvoys(['ui1.dc1.example.com', 'ui2.dc1.example.com'], 50);
    await page.goto(`${base}/config`);
    await tid('versions-table-empty').waitFor();
    await tid('publish-button').click();
    await tid('publish-dir').fill(bundle('v1'));
    await tid('publish-mode').selectOption('now');
    await shot('publish-dialog');
    await tid('dialog-confirm').click();
    await until('publish-result', 'Published version 1');
    await until('versions-table', /v1live/);
    // Version 2 as a rollout whose canary (the two connected hosts) fails: it halts on a 0 % budget.
    await tid('publish-button').click();
    await tid('publish-dir').fill(bundle('v2'));
    await tid('publish-canary').fill('ui*');
    await tid('publish-budget').fill('0');
    await tid('dialog-confirm').click();
    await page.waitForURL(/\/rollouts\/r-/);
    await until('rollout-state', 'halted', 30_000);
    expect(await text('rollout-reason')).toMatch(/hosts that ran failed .* over the failure budget of 0%/);
    expect(await text('rollout-failures')).toMatch(/ui\d\.dc1\.example\.com.*run failed: exec \/bin\/false/);
    expect(await text('rollout-version')).toBe('v1 → v2');
    await shot('rollout-halted');
    await tid('rollout-abort').click();
    await tid('abort-rollback').check();
    await tid('dialog-confirm').click();
    await until('rollout-state', 'rolled_back', 30_000);
    expect(await text('rollback-line')).toMatch(/^Rollback to v1: [12] hosts back, 0 not/);
    await shot('rollout-rolled-back');
    await page.goto(`${base}/config`);
    await until('versions-table', /v2withdrawn/);
    expect(await text('config-rollouts')).toMatch(/r-.*v1 → v2rolled_back/);
    await shot('config');
  });

  it('follows the jobs stream instead of polling', async () => {
    const asked: string[] = [];
    const watch = (r: { url(): string }) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/api/v1/jobs')) asked.push(u.pathname + u.search);
    };
    page.on('request', watch);
    await page.goto(`${base}/jobs`);
    await tid('jobs-table').waitFor();
    const r = await fetch(`${base}/api/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ target: { match: 'ui*' }, action: { kind: 'converge' }, max_parallel: 1 }),
    });
    const { job } = (await r.json()) as { job: { id: string } };
    await until(`job-state-${job.id}`, 'succeeded');
    expect(await text(`job-ok-${job.id}`)).toBe('2');
    // Past the page poll interval (3 s): still the one list request and the one stream.
    await new Promise((res) => setTimeout(res, 3500));
    page.off('request', watch);
    expect(asked.filter((a) => a.startsWith('/api/v1/jobs?'))).toHaveLength(1);
    expect(asked.filter((a) => a === '/api/v1/jobs/events')).toHaveLength(1);
    expect(await text('refresh-status')).toBe('live');
    await shot('jobs-live');
  });

  it('creates and revokes join and API tokens, each after confirmation', async () => {
    await page.goto(`${base}/tokens`);
    await tid('join-tokens-table').waitFor();
    await tid('new-join-token').click();
    await tid('token-pattern').fill('*.dc1.*');
    await tid('token-uses').fill('2');
    await tid('dialog-confirm').click();
    await until('new-secret', /^axj_/);
    const joinId = (await joinTokens(f.hub)).find((t) => t.pattern === '*.dc1.*' && t.maxUses === 2)!.id;
    await until(`join-state-${joinId}`, 'active');
    await tid(`revoke-${joinId}`).click();
    await tid('dialog-cancel').click();
    expect((await joinTokens(f.hub)).find((t) => t.id === joinId)?.state).toBe('active');
    await tid(`revoke-${joinId}`).click();
    await tid('dialog-confirm').click();
    await until(`join-state-${joinId}`, 'revoked');
    await tid('new-api-token').click();
    await tid('api-token-name').fill('ui-viewer');
    await tid('dialog-confirm').click();
    await until('new-secret', /^axa_/);
    const secret = await text('new-secret');
    const viewer = () => fetch(`${base}/api/v1/spokes`, { headers: { authorization: `Bearer ${secret}` } });
    expect((await viewer()).status).toBe(200);
    const apiId = (await apiTokens(f.hub)).find((t) => t.name === 'ui-viewer')!.id;
    await shot('tokens');
    await tid(`revoke-${apiId}`).click();
    await tid('dialog-confirm').click();
    await until(`api-state-${apiId}`, 'revoked');
    expect((await viewer()).status).toBe(401);
  });

  it('approves and rejects pending enrollments, each after confirmation', async () => {
    const cfg = parse(readFileSync(hubConfigFile, 'utf8')) as Record<string, Record<string, unknown>>;
    writeConfig(hubConfigFile, { ...cfg, enrollment: { ...cfg.enrollment, approval: 'manual' } });
    await f.hub.reload();
    const token = await joinToken(f.hub, { max_uses: 2 });
    const [a, b] = [envoy('new1.dc1.example.com'), envoy('new2.dc1.example.com')];
    expect((await enroll(f.hub.addr, a, token)).status).toBe('pending');
    expect((await enroll(f.hub.addr, b, token)).status).toBe('pending');
    await page.goto(`${base}/enrollments`);
    await tid('pending-table').waitFor();
    expect(await tableRows('pending-table').count()).toBe(2);
    await shot('enrollments');
    await tid('approve-new1.dc1.example.com').click();
    await tid('dialog-confirm').click();
    await until('enrollment-result', 'new1.dc1.example.com: approved');
    await tid('reject-new2.dc1.example.com').click();
    await tid('dialog-confirm').click();
    // The approval's toast may still be up: wait for this one by its text.
    await page.getByText('new2.dc1.example.com: rejected').waitFor();
    await tid('pending-table-empty').waitFor();
    const dir = await directory(f.hub);
    expect(dir.get('new1.dc1.example.com')?.spokeId).toBe('dc1');
    expect(dir.has('new2.dc1.example.com')).toBe(false);
    writeConfig(hubConfigFile, cfg);
    await f.hub.reload();
  });

  it('shows events', async () => {
    await page.goto(`${base}/events`);
    await tid('events-table').waitFor();
    expect(await page.locator('[data-testid="events-table"]').textContent()).toMatch(/envoy\.enrolled.*/);
    expect(await page.locator('[data-testid="events-table"]').textContent()).toContain('move.finished');
    await shot('events');
  });

  it('sees a killed spoke go offline by itself', async () => {
    await page.goto(`${base}/`);
    await until('spokes-online', '2 / 2');
    await f.dc2.daemon.kill('SIGKILL');
    await until('spoke-state-dc2', 'offline', 20_000);
    await until('spokes-online', '1 / 2');
    expect(await text('spokes-offline')).toBe('1');
    await shot('overview-spoke-down');
    await page.goto(`${base}/spanner/spokes/dc2`);
    await until('spoke-state', 'offline');
    await tid('partial-warning').waitFor();
    expect(await text('runs-table-empty')).toMatch(/^Unavailable: spoke dc2 did not answer/);
    // Its live figures are not passed off as live: unknown, with the last known value and its age.
    await until('spoke-connected', /^unknown \(last \d+, \d+s ago\)$/);
    expect(await text('spoke-config')).toMatch(/^unknown/);
    await shot('spoke-down-detail');
  });

  it('shows envoys a drain could not place as stranded, on the overview and the spoke page', async () => {
    const r = await fetch(`${base}/api/v1/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ spoke: 'dc2', wait: true }),
    });
    expect(((await r.json()) as { move: { state: string } }).move.state).toBe('partial');
    await page.goto(`${base}/`);
    await until('spoke-state-dc2', 'partial');
    expect(await text('stranded-count')).toBe('2');
    expect(await text('spoke-stranded-dc2')).toBe('2');
    expect(await text('spoke-stranded-dc1')).toBe('0');
    expect(await text('stranded-warning')).toMatch(
      /2 envoys are stranded.*Spoke dc2: 2 stranded2: no spoke other than dc2 matches their names/,
    );
    await shot('overview-stranded');
    await tid('spoke-link-dc2').click();
    await until('spoke-stranded', '2');
    expect(await text('stranded-reasons')).toBe(
      '2: no spoke other than dc2 matches their names and dc2 has no failover_to and there is no default_spoke (e.g. web1.dc2.example.com, web2.dc2.example.com)',
    );
    expect(await tid('drain-button').count()).toBe(0);
    await shot('spoke-stranded');
  });

  it('logs out: the cookie is cleared and the old session is dead', async () => {
    const [cookie] = await context.cookies();
    await tid('logout').click();
    await tid('login-form').waitFor();
    expect(await context.cookies()).toEqual([]);
    const r = await fetch(`${base}/api/v1/spokes`, { headers: { cookie: `axle_session=${cookie!.value}` } });
    expect(r.status).toBe(401);
    expect(pageErrors).toEqual([]);
    expect(dialogs).toEqual([]);
    expect(consoleLines.filter((l) => /Content Security Policy|Refused to/.test(l))).toEqual([]);
  });
});
