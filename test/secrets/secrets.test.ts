/**
 * Secrets end to end on a fleet of child processes (a hub, two spokes, three real envoy agents):
 * set, apply, rotate, remove, a host outside the globs, a spoke restart; then every log line,
 * every file of hub, spokes and envoys (their LMDB stores, spools and state), every HTTP answer
 * the test received and every stored report is searched for each value, in clear, base64 and
 * hex: found only in the target hosts' rendered files.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, type HubApi, tempDir, waitFor } from '@axle/testkit';

const t = tempDir('axle-secrets-');
const out = join(t.dir, 'out');
const WEB = ['web-1.dc1.sec.test', 'web-2.dc2.sec.test'];
const DB = 'db-1.dc1.sec.test';
const HOSTS = [...WEB, DB];
let f: Fleet;
let api: HubApi;
/** Every JSON answer the hub gave this test, for the leak scan. */
const answers: string[] = [];

const secret = () => `S3cr3t-${randomBytes(18).toString('base64url')}`;
const values = { db1: secret(), db2: secret(), api1: secret() };

async function call<T>(method: 'get' | 'post' | 'delete', path: string, body?: unknown): Promise<T> {
  const r =
    method === 'get'
      ? await api.get<T>(path)
      : method === 'post'
        ? await api.post<T>(path, body)
        : await api.call<T>('DELETE', path);
  answers.push(JSON.stringify(r));
  return r;
}

function setSecret(name: string, value: string, hosts: string[]) {
  return call('post', '/secrets', { name, value: Buffer.from(value).toString('base64'), hosts });
}

const read = (host: string, file: string) => {
  const p = join(out, host, file);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
};

interface Detail {
  detail?: { runs: { configVersion: number; results: { resource: string; status: string; message: string }[] }[] };
}

beforeAll(async () => {
  f = await Fleet.start({
    dir: join(t.dir, 'fleet'),
    hubs: ['hub-a'],
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'] },
      { id: 'dc2', patterns: ['*.dc2.*'] },
    ],
  });
  api = await f.api();
  const cfg = join(t.dir, 'config');
  mkdirSync(join(cfg, 'policies'), { recursive: true });
  mkdirSync(join(cfg, 'templates'));
  writeFileSync(join(cfg, 'templates', 'db.conf.liquid'), 'host = db.internal\npassword = {{ secret.db_password }}\n');
  for (const h of HOSTS) {
    writeFileSync(
      join(cfg, 'policies', `${h}.yaml`),
      stringify({
        name: h,
        hosts: [h],
        resources: [
          { directory: join(out, h), mode: '0700' },
          { file: join(out, h, 'db.conf'), template: 'templates/db.conf.liquid', mode: '0600' },
          { file: join(out, h, 'api.key'), content: { secret: 'api_key' }, mode: '0600' },
        ],
      }),
    );
  }
  await call('post', '/config/publish', { dir: cfg });
  await setSecret('db_password', values.db1, ['web-*']);
  await setSecret('api_key', values.api1, ['web-*']);
  await f.startEnvoys(HOSTS, { perPool: 3 });
}, 180_000);

afterAll(async () => {
  await f?.stop();
  t.cleanup();
});

describe('secrets that only their hosts can read', () => {
  it('reach the hosts in their globs, sealed through the spokes, and nobody else', async () => {
    await waitFor(
      () => WEB.every((h) => read(h, 'db.conf').includes(values.db1) && read(h, 'api.key') === values.api1),
      {
        timeoutMs: 60_000,
        what: 'both web hosts rendering both secrets',
      },
    );
    // The db host is outside the globs: those resources fail with the reason; the rest of its run goes on.
    const db = await waitFor(
      async () => {
        const d = await call<Detail>('get', `/envoys/${DB}?runs=5`);
        // A run made while the spoke's hub link was down (a loaded machine) fails with "try again
        // later" instead; the refusal itself comes with a run while the link is up.
        return d.detail?.runs.find(
          (r) =>
            r.configVersion >= 1 &&
            r.results.some((x) => x.status === 'failed' && !x.message.includes('no hub connection now')),
        );
      },
      { timeoutMs: 60_000, what: 'the db host reporting its refusal' },
    );
    const failedRes = db.results.filter((x) => x.status === 'failed');
    expect(failedRes.map((x) => x.message).join('\n')).toMatch(
      /secret "db_password" is not allowed for db-1\.dc1\.sec\.test/,
    );
    expect(db.results.find((x) => x.resource.includes('directory'))?.status).not.toBe('failed');
    expect(read(DB, 'db.conf')).toBe('');
    const list = await call<{ secrets: { name: string; version: number; targets: number; lagging: string[] }[] }>(
      'get',
      '/secrets',
    );
    expect(list.secrets.map((s) => [s.name, s.version, s.targets])).toEqual([
      ['api_key', 1, 2],
      ['db_password', 1, 2],
    ]);
  });

  it('rotate: every holder converges on the next run, and the list shows who lags meanwhile', async () => {
    await setSecret('db_password', values.db2, ['web-*']);
    const lag = await call<{ secrets: { name: string; version: number; lagging: string[] }[] }>('get', '/secrets');
    expect(lag.secrets.find((s) => s.name === 'db_password')).toMatchObject({ version: 2, lagging: WEB });
    // A spoke restarts meanwhile; its envoys come back and carry on.
    await f.killSpoke('dc1', 'SIGKILL');
    await f.startSpoke('dc1');
    await waitFor(() => WEB.every((h) => read(h, 'db.conf').includes(values.db2)), {
      timeoutMs: 90_000,
      what: 'both web hosts on the rotated value',
    });
    await waitFor(
      async () => {
        const l = await call<{ secrets: { name: string; lagging: string[] }[] }>('get', '/secrets');
        return l.secrets.find((s) => s.name === 'db_password')?.lagging.length === 0;
      },
      { timeoutMs: 30_000, what: 'no host lagging on db_password' },
    );
  });

  it('remove: the resources that use it fail from the next run on', async () => {
    await call('delete', '/secrets/api_key');
    await waitFor(
      async () => {
        const d = await call<Detail>('get', `/envoys/${WEB[0]}?runs=1`);
        return d.detail?.runs[0]?.results.some((x) => x.status === 'failed' && /no secret "api_key"/.test(x.message));
      },
      { timeoutMs: 60_000, what: 'a run failing the api.key resource' },
    );
  });

  it('no value appears anywhere but in the rendered files: logs, stores, spools, answers, reports', async () => {
    for (const h of HOSTS) answers.push(JSON.stringify(await api.get(`/envoys/${h}?runs=1000`)));
    answers.push(JSON.stringify(await api.get('/events?limit=1000')));
    const needles = Object.values(values).flatMap((v) => [
      v,
      Buffer.from(v).toString('base64'),
      Buffer.from(v).toString('hex'),
    ]);
    const hits: string[] = [];
    const scan = (where: string, data: Buffer) => {
      for (const n of needles) if (data.includes(n)) hits.push(`${where} holds ${n.slice(0, 10)}...`);
    };
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.isFile()) scan(p, readFileSync(p));
      }
    };
    walk(join(t.dir, 'fleet'));
    for (const { name, lines } of f.daemonLogs()) scan(`${name} log`, Buffer.from(lines.join('\n')));
    answers.forEach((a, i) => scan(`HTTP answer ${i}`, Buffer.from(a)));
    expect(hits).toEqual([]);
    // The positive control: the same scan finds the values where they belong.
    walk(out);
    expect(hits.filter((h) => h.includes(values.db2.slice(0, 10)))).not.toHaveLength(0);
    expect(hits.filter((h) => h.includes(values.api1.slice(0, 10)))).not.toHaveLength(0);
  });

  it("a spoke's data directory handed to an attacker holds no secret, not even sealed", async () => {
    // The spokes relay sealed bytes in memory and store nothing of them; their stores, logs and
    // config copies hold references (names) only.
    for (const sp of f.spokes) {
      const files: string[] = [];
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const p = join(dir, name);
          if (statSync(p).isDirectory()) walk(p);
          else files.push(p);
        }
      };
      walk(sp.dir);
      const all = Buffer.concat(files.map((p) => readFileSync(p)));
      for (const v of Object.values(values)) {
        expect(all.includes(v)).toBe(false);
        expect(all.includes(Buffer.from(v).toString('base64'))).toBe(false);
      }
      // What the spoke does know: the name, from the policy bundle it serves.
      expect(all.includes('db_password')).toBe(true);
    }
  });
});
