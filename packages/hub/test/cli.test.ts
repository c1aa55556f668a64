import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bag, bin, spokeViews, tempDir, waitFor, runAxle } from '@axle/testkit';
import { startFleet, type Fleet } from './cli-fleet.js';

const AXLE = bin('hub', 'axle');
const bag = new Bag();
let f: Fleet;
let hubFlag: string[];

const axle = (args: string[], env: Record<string, string> = {}) => runAxle(args, { env });
const cli = (...args: string[]) => axle([...hubFlag, ...args]);
const json = async (...args: string[]) => {
  const r = await cli('--json', ...args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};
const rows = (table: string) =>
  table
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s{2,}/));

beforeAll(async () => {
  f = await startFleet(bag);
  hubFlag = ['--hub', f.hub.addr, '--token', f.token];
}, 60_000);
afterAll(() => bag.run());

describe('axle CLI against a real hub and spokes', () => {
  it('envoys list: a table merged across spokes, --json, and every filter', async () => {
    const r = await cli('envoys', 'list');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toMatch(/^HOST\s+SPOKE\s+COMPLIANCE\s+CONNECTED\s+LAST SEEN\s+LAST RUN\s+CONFIG$/);
    expect(rows(r.stdout).map((x) => x[0])).toEqual([...f.hosts].sort());
    expect(rows(r.stdout).find((x) => x[0] === 'db1.dc1.example.com')).toEqual(
      expect.arrayContaining(['dc1', 'noncompliant']),
    );

    const all = await json('envoys', 'list');
    expect(all.items).toHaveLength(5);
    expect(all.spokes.map((s: { outcome: string }) => s.outcome)).toEqual(['ok', 'ok']);
    expect((await json('envoys', 'list', '--match', 'web*')).items).toHaveLength(4);
    expect((await json('envoys', 'list', '--noncompliant')).items.map((e: { hostname: string }) => e.hostname)).toEqual(
      ['db1.dc1.example.com'],
    );
    expect((await json('envoys', 'list', '--trait', 'os.family=debian')).items).toHaveLength(4);
    expect(
      (await json('envoys', 'list', '--trait', 'os.family=debian', '--trait', 'os.release=11')).items.map(
        (e: { hostname: string }) => e.hostname,
      ),
    ).toEqual(['web2.dc2.example.com']);
    expect((await json('envoys', 'list', '--spoke', 'dc2')).items.map((e: { spokeId: string }) => e.spokeId)).toEqual([
      'dc2',
      'dc2',
    ]);
  });

  it('envoys list pages with --limit and the printed --cursor', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await cli('envoys', 'list', '--limit', '2', ...(cursor ? ['--cursor', cursor] : []));
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      const next = /next page: axle envoys list --cursor (\S+)/.exec(r.stdout);
      // Every page says how many match in all (exact here: no filter is answered from the indexes).
      expect(r.stdout).toMatch(new RegExp(`^${f.hosts.length} envoys match$`, 'm'));
      seen.push(
        ...rows(lines.filter((l) => !l.startsWith('next page') && !l.endsWith(' envoys match')).join('\n')).map(
          (x) => x[0]!,
        ),
      );
      if (!next) break;
      cursor = next[1];
    }
    expect(seen).toEqual([...f.hosts].sort());
  });

  it('envoys show: directory record, traits, runs and resource results; unknown host exits 1 saying what to do', async () => {
    const r = await cli('envoys', 'show', 'db1.dc1.example.com');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^host:\s+db1\.dc1\.example\.com$/m);
    expect(r.stdout).toMatch(/^spoke:\s+dc1 \(online\)$/m);
    expect(r.stdout).toMatch(/^compliance:\s+noncompliant$/m);
    expect(r.stdout).toMatch(/^os\.family\s+rhel$/m);
    expect(r.stdout).toMatch(/file\[\/etc\/motd\]\s+web\s+failed\s+permission denied/);
    // Which policies applied and why the others did not, then the diffs.
    expect(r.stdout).toMatch(
      /^POLICIES IN \S+\nPOLICY\s+STATUS\s+WHY\nweb\s+applied\s+-\nrhel-only\s+skipped\s+when: os_id is "debian", not "rhel"$/m,
    );
    expect(r.stdout).toContain(
      'DIFFS\nfile[/etc/app.conf] (changed)\n  --- /etc/app.conf\n  +++ /etc/app.conf\n  @@ -1 +1 @@\n  -workers=2\n  +workers=4\n',
    );
    const j = await json('envoys', 'show', 'web1.dc2.example.com');
    expect(j.directory.spokeId).toBe('dc2');
    expect(j.detail.traits.role).toBe('web');
    expect(j.detail.runs).toHaveLength(1);
    const missing = await cli('envoys', 'show', 'nope.example.com');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: no envoy "nope\.example\.com" in the directory; list envoys with/);
  });

  it('spanner spokes and spanner spoke ID: tables and --json', async () => {
    const r = await cli('spanner', 'spokes');
    expect(r.code).toBe(0);
    const t = rows(r.stdout);
    expect(t.map((x) => [x[0], x[1], x[3], x[4], x[5], x[7]])).toEqual([
      ['dc1', 'online', '3', '0', '0', '2/1/0'],
      ['dc2', 'online', '2', '0', '0', '2/0/0'],
    ]);
    const j = await json('spanner', 'spokes');
    expect(j.spokes.map((s: { id: string; envoys: number }) => [s.id, s.envoys])).toEqual([
      ['dc1', 3],
      ['dc2', 2],
    ]);

    const d = await cli('spanner', 'spoke', 'dc1');
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^compliance:\s+66\.7% \(2 compliant, 1 noncompliant, 0 unknown\)$/m);
    expect(d.stdout).toMatch(/RECENT RUNS\nFINISHED/);
    expect(d.stdout).toContain('db1.dc1.example.com');
    const dj = await json('spanner', 'spoke', 'dc2');
    expect(dj.envoys.items).toHaveLength(2);
    expect(dj.recentRuns).toHaveLength(2);
    const bad = await cli('spanner', 'spoke', 'dc9');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no spoke "dc9" in the hub config/);
  });

  it('tokens create|list|revoke, for join tokens and --api tokens', async () => {
    const c = await json(
      'tokens',
      'create',
      '--pattern',
      '*.dc1.*',
      '--spoke',
      'dc1',
      '--max-uses',
      '3',
      '--note',
      'rack 4',
    );
    expect(c.token.spokes).toEqual(['dc1']);
    expect(c.secret).toBeTruthy();
    const human = await cli('tokens', 'create', '--ttl', '1h');
    expect(human.stdout).toMatch(/^secret: \S+$/m);
    const l = await cli('tokens', 'list');
    expect(l.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+PATTERN\s+SPOKES\s+USES/);
    expect(l.stdout).toMatch(new RegExp(`${c.token.id}\\s+active\\s+\\*\\.dc1\\.\\*\\s+dc1\\s+0/3`));
    const rv = await cli('tokens', 'revoke', c.token.id);
    expect(rv.stdout).toBe(`revoked ${c.token.id}\n`);
    expect((await json('tokens', 'list')).tokens.find((t: { id: string }) => t.id === c.token.id).state).toBe(
      'revoked',
    );

    const api = await json('tokens', 'create', '--api', '--role', 'viewer', '--name', 'dash');
    const viewer = await axle(['--hub', f.hub.addr, '--token', api.secret, 'spanner', 'spokes']);
    expect(viewer.code).toBe(0);
    const refused = await axle(['--hub', f.hub.addr, '--token', api.secret, 'tokens', 'create']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/needs an admin token/);
    expect((await cli('tokens', 'list', '--api')).stdout).toMatch(/dash\s+viewer/);
    await cli('tokens', 'revoke', '--api', api.token.id);
    const gone = await axle(['--hub', f.hub.addr, '--token', api.secret, 'spanner', 'spokes']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/not valid .*pass a valid token with --token or AXLE_TOKEN/);
  });

  it('enrollments pending|approve|reject, events and hub status', async () => {
    expect((await cli('enrollments', 'pending')).stdout).toBe('no enrollments are waiting\n');
    expect((await json('enrollments', 'pending')).pending).toEqual([]);
    const nope = await cli('enrollments', 'approve', 'ghost.dc1.example.com');
    expect(nope.code).toBe(1);
    expect(nope.stderr).toMatch(/^error: .+/);
    const ev = await cli('events', '--type', 'envoy.enrolled');
    expect(ev.code).toBe(0);
    expect(ev.stdout.split('\n')[0]).toMatch(/^SEQ\s+TIME\s+TYPE\s+DETAILS$/);
    expect(rows(ev.stdout).filter((x) => x[2] === 'envoy.enrolled')).toHaveLength(5);
    expect((await json('events', '--limit', '2')).events).toHaveLength(2);
    const st = await cli('hub', 'status');
    expect(st.stdout).toMatch(/^id:\s+hub-a$/m);
    expect(st.stdout).toMatch(/^term:\s+\d+$/m);
    expect((await json('hub', 'status')).id).toBe('hub-a');
  });

  it('config publish|versions|rollback', async () => {
    const t = tempDir('axle-cli-conf-');
    bag.add(t.cleanup);
    mkdirSync(join(t.dir, 'files'));
    writeFileSync(join(t.dir, 'files', 'motd'), 'hello\n');
    expect((await cli('config', 'versions')).stdout).toMatch(/nothing published yet/);
    const p = await cli('config', 'publish', '--dir', t.dir);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/^published version 1 \(1 files/);
    expect(rows(p.stdout.split('\n').slice(1).join('\n'))).toEqual([
      ['dc1', 'ok'],
      ['dc2', 'ok'],
    ]);
    writeFileSync(join(t.dir, 'files', 'motd'), 'hello again\n');
    expect((await json('config', 'publish', '--dir', t.dir)).version).toBe(2);
    const rb = await json('config', 'rollback', '1');
    expect(rb).toMatchObject({ version: 3, bundle: { source: 'rollback', from: 1 } });
    const v = await cli('config', 'versions');
    expect(v.stdout).toMatch(/^3\s+\*\s+\S+\s+admin\s+rollback of 1/m);
    expect((await cli('config', 'rollback', '99')).stderr).toMatch(/version 99 is not kept/);
  });

  it('spanner reassign and drain follow the move with plain progress lines off a terminal', async () => {
    const r = await cli('spanner', 'reassign', '--hostname', 'web2.dc2.*', '--to', 'dc1');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^reassign web2\.dc2\.\* -> dc1: \d\/1 .*$/m);
    expect(r.stderr).not.toContain('\r');
    expect(r.stdout).toMatch(/^state:\s+done$/m);
    expect(
      (await json('envoys', 'list', '--spoke', 'dc1')).items.map((e: { hostname: string }) => e.hostname),
    ).toContain('web2.dc2.example.com');

    const d = await cli('--json', 'spanner', 'drain', '--spoke', 'dc2', '--to', 'dc1');
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ kind: 'drain', state: 'done', total: 1, failed: 0 });
    expect((await json('spanner', 'spokes')).spokes.find((s: { id: string }) => s.id === 'dc2').state).toBe('drained');
    expect((await cli('spanner', 'resume', 'dc2')).stdout).toMatch(/^spoke dc2 is online and takes new envoys/);
    const same = await cli('spanner', 'drain', '--spoke', 'dc1', '--to', 'dc1');
    expect(same.code).toBe(2);
  });

  it('usage errors exit 2, failures exit 1, and each says what to do', async () => {
    const none = await axle(['envoys', 'list']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no hub address: pass --hub host:port, set AXLE_HUB, or put "hub: host:port" in/);
    const noTok = await axle(['--hub', f.hub.addr, 'envoys', 'list']);
    expect(noTok.code).toBe(2);
    expect(noTok.stderr).toMatch(/no API token: pass --token, set AXLE_TOKEN/);
    expect((await cli('envoys', 'list', '--limit', '0')).code).toBe(2);
    expect((await cli('envoys', 'list', '--trait', 'novalue')).stderr).toMatch(/must be key=value/);
    expect((await cli('spanner', 'reassign', '--to', 'dc1')).code).toBe(2);
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('hub', 'promote')).stderr).toMatch(/add --yes to confirm/);
    const down = await axle(['--hub', '127.0.0.1:9', '--token', 'x', 'spanner', 'spokes']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the hub at http:\/\/127\.0\.0\.1:9 .*check --hub or AXLE_HUB/);
    expect((await axle(['--help'])).code).toBe(0);
  });

  it('takes the hub and token from AXLE_HUB/AXLE_TOKEN or the config file', async () => {
    const env = await axle(['spanner', 'spokes'], { AXLE_HUB: `http://${f.hub.addr}/`, AXLE_TOKEN: f.token });
    expect(env.code).toBe(0);
    const t = tempDir('axle-cli-home-');
    bag.add(t.cleanup);
    const file = join(t.dir, 'cli.yaml');
    writeFileSync(file, `hub: "${f.hub.addr}"\ntoken: "${f.token}"\n`);
    expect((await axle(['spanner', 'spokes'], { AXLE_CLI_CONFIG: file })).code).toBe(0);
    mkdirSync(join(t.dir, '.config', 'axle'), { recursive: true });
    writeFileSync(join(t.dir, '.config', 'axle', 'cli.yaml'), `hub: "${f.hub.addr}"\ntoken: "${f.token}"\n`);
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('AXLE_') && k !== 'XDG_CONFIG_HOME'),
    );
    const home = await new Promise<number>((resolve) =>
      execFile(process.execPath, [AXLE, 'spanner', 'spokes'], { env: { ...clean, HOME: t.dir } }, (e) =>
        resolve(e ? 1 : 0),
      ),
    );
    expect(home).toBe(0);
    writeFileSync(file, 'hub: [1, 2]\ntokn: x\n');
    const bad = await axle(['spanner', 'spokes'], { AXLE_CLI_CONFIG: file });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cli\.yaml:1: hub/);
    expect(bad.stderr).toMatch(/cli\.yaml:2: tokn: unknown key/);
  });

  it('sends a write refused by a standby to the primary it names, once', async () => {
    let hits = 0;
    const standby: Server = createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(req.method === 'GET' ? 200 : 421, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          req.method === 'GET'
            ? { id: 'hub-b' }
            : { error: { code: 'E_NOT_PRIMARY', message: 'this hub is a standby', primary: f.hub.addr } },
        ),
      );
    });
    await new Promise<void>((r) => standby.listen(0, '127.0.0.1', r));
    bag.add(() => new Promise((r) => standby.close(r)));
    const port = (standby.address() as { port: number }).port;
    const r = await axle([
      '--hub',
      `127.0.0.1:${port}`,
      '--token',
      f.token,
      '--json',
      'tokens',
      'create',
      '--note',
      'via standby',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/is not the primary hub; sending the request to the primary at http:\/\/127\.0\.0\.1:\d+/);
    expect(JSON.parse(r.stdout).token.note).toBe('via standby');
    // undici itself may retry a 421 once on a fresh connection; the primary still gets one request.
    expect(hits).toBeGreaterThanOrEqual(1);
    expect(
      (await json('tokens', 'list')).tokens.filter((t: { note?: string }) => t.note === 'via standby'),
    ).toHaveLength(1);
    // A standby that names itself is not retried forever.
    const self = createServer((req, res) => {
      req.resume();
      res.writeHead(421, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            code: 'E_NOT_PRIMARY',
            message: 'standby',
            primary: `127.0.0.1:${(self.address() as { port: number }).port}`,
          },
        }),
      );
    });
    await new Promise<void>((r) => self.listen(0, '127.0.0.1', r));
    bag.add(() => new Promise((r) => self.close(r)));
    const loop = await axle([
      '--hub',
      `127.0.0.1:${(self.address() as { port: number }).port}`,
      '--token',
      'x',
      'tokens',
      'create',
    ]);
    expect(loop.code).toBe(1);
    expect(loop.stderr).toMatch(/error: standby/);
  });

  it('a fan-out that misses a spoke warns naming it and exits 1, still printing the rest', async () => {
    // Earlier tests moved dc2's envoys away: bring them home, so the drain below has some to strand.
    expect((await cli('spanner', 'reassign', '--hostname', '*.dc2.*', '--to', 'dc2')).code).toBe(0);
    await f.dc2.daemon.kill('SIGKILL');
    const r = await cli('envoys', 'list');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^warning: spoke dc2 did not answer \((unreachable|timeout)[^)]*\); these results leave out its envoys\. Check it with: axle spanner spoke dc2$/m,
    );
    expect(rows(r.stdout).map((x) => x[0])).toContain('db1.dc1.example.com');
    const j = await cli('--json', 'envoys', 'list');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout).partial).toBe(true);
    await waitFor(async () => !(await spokeViews(f.hub)).get('dc2')!.health.online, {
      intervalMs: 100,
      what: 'dc2 offline',
    });
    const s = await cli('spanner', 'spokes');
    expect(s.stderr).toMatch(/warning: spoke dc2 is offline/);
    expect(rows(s.stdout).find((x) => x[0] === 'dc2')?.[1]).toBe('offline');
    // A dead spoke's live figures are shown as unknown, with the last known value and its age
    // (the count is whatever was connected when it last answered).
    expect(rows(s.stdout).find((x) => x[0] === 'dc2')?.[5]).toMatch(/^unknown \(last \d+, \d+s ago\)$/);
    const d = await cli('spanner', 'spoke', 'dc2');
    expect(d.stdout).toMatch(/^connected:\s+unknown \(last \d+, \d+s ago\)$/m);
    expect(JSON.parse((await cli('--json', 'spanner', 'spoke', 'dc2')).stdout).stats).toBeNull();

    // Nothing else matches *.dc2.*: the drain ends partial, exits 1 and says why.
    const drain = await cli('spanner', 'drain', '--spoke', 'dc2');
    expect(drain.code, drain.stdout + drain.stderr).toBe(1);
    expect(drain.stdout).toMatch(/^state:\s+partial$/m);
    expect(drain.stdout).toMatch(/^not placed:\s+2$/m);
    expect(drain.stdout).toMatch(
      /^ {2}2: no spoke other than dc2 matches their names and dc2 has no failover_to and there is no default_spoke \(e\.g\. web1\.dc2\.example\.com, web2\.dc2\.example\.com\)$/m,
    );
    expect(drain.stderr).toMatch(/could not place 2 envoy\(s\)/);
    const after = await cli('spanner', 'spokes');
    expect(
      rows(after.stdout)
        .find((x) => x[0] === 'dc2')
        ?.slice(0, 5),
    ).toEqual(['dc2', 'partial', expect.any(String), '2', '2']);
    expect(after.stderr).toMatch(
      /warning: spoke dc2: 2 envoy\(s\) stranded, a drain could not place them:\n {2}2: no spoke other than dc2/,
    );
    expect((await cli('spanner', 'spoke', 'dc2')).stdout).toMatch(/^stranded:\s+2$/m);
  });
});
