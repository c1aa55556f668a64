import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub, hubConfigFrom } from '@axle/hub';
import { fetchTls, silentLogger } from '@axle/shared';
import { AgentExecutable, renderBootstrap } from '../../packages/hub/src/bootstrap.js';
import {
  HubApi,
  Proc,
  ROOT,
  adminToken,
  planFleet,
  startHub,
  startSpoke,
  type FleetPlan,
} from '../../scripts/demo/fleet.js';
import { ensureAgent } from '../../scripts/package/build.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

/**
 * The served bootstrap script, run with `sh` as an operator would, by the very command
 * `axle tokens create` prints (curl pinned to the hub's TLS key, piped to sh with the CA's
 * fingerprint), against a real hub and real spokes speaking TLS with their own CA, into a
 * temporary root, with a PATH that has no systemctl and no node: the agent it installs is the
 * single executable (npm run package), which the hub finds in dist/agent/ of this checkout.
 */
const t = tempDir('axle-bootstrap-');
const procs: Proc[] = [];
let plan: FleetPlan;
let api: HubApi;
let hubAddr: string;
let token: string;
/** The install command the hub gave with the token (what `axle tokens create` prints). */
let install: string;
let binDir: string;

/** The tools the script uses, and nothing else: in particular no systemctl and no node. */
const TOOLS = [
  'sh',
  'curl',
  'sha256sum',
  'cut',
  'mktemp',
  'rm',
  'mkdir',
  'tar',
  'gzip',
  'mv',
  'chmod',
  'cat',
  'cmp',
  'cp',
  'sed',
  'wc',
  'uname',
  'tr',
  'base64',
];

function which(tool: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (!p.startsWith('/')) throw new Error(`${tool} is not installed; the bootstrap test needs it`);
  return p;
}

beforeAll(async () => {
  await ensureAgent();
  binDir = join(t.dir, 'bin');
  mkdirSync(binDir);
  for (const tool of TOOLS) symlinkSync(which(tool), join(binDir, tool));
  plan = await planFleet(join(t.dir, 'fleet'), {
    hubs: ['hub-a'],
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'] },
      { id: 'dc2', patterns: ['*.dc2.*'] },
    ],
    statusInterval: '200ms',
    probeInterval: '300ms',
  });
  procs.push(...(await Promise.all(plan.spokes.map((s) => startSpoke(s)))));
  procs.push(await startHub(plan.hubs[0]!));
  hubAddr = plan.hubs[0]!.addr;
  api = new HubApi(hubAddr, adminToken(plan.hubs[0]!), plan.ca.pem);
  const created = await api.post<{ secret: string; install: { command: string } }>('/tokens', {
    ttl: '1h',
    note: 'bootstrap test',
  });
  token = created.secret;
  install = created.install.command;
}, 300_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  t.cleanup();
});

const get = (path: string, init: { method?: string } = {}) =>
  fetchTls(`https://${hubAddr}${path}`, { ...init, ca: plan.ca.pem });

/** The printed install command, run as is (sh instead of sudo sh: the test runs as root), for one host and root. */
function runInstall(command: string, host: string, root: string) {
  return sh(['-c', `${command.replace('| sudo sh -s --', '| sh -s --')} --hostname "$0" --root "$1"`, host, root]);
}

function sh(args: string[], o: { input?: string; path?: string } = {}) {
  const r = spawnSync(join(binDir, 'sh'), args, {
    encoding: 'utf8',
    env: { PATH: o.path ?? binDir, HOME: t.dir, TMPDIR: t.dir },
    timeout: 60_000,
    ...(o.input !== undefined ? { input: o.input } : {}),
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Every file and directory under `root` with its type, mode, size, mtime and content hash. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      const s = lstatSync(p);
      const rel = p.slice(root.length);
      if (s.isDirectory()) {
        out[rel] = `dir ${s.mode.toString(8)} ${s.mtimeMs}`;
        walk(p);
      } else {
        out[rel] =
          `file ${s.mode.toString(8)} ${s.size} ${s.mtimeMs} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
      }
    }
  };
  walk(root);
  return out;
}

describe('GET /bootstrap.sh and /agent/axle-envoy', () => {
  it('serve the script filled in with this hub and the sha256 of the executable it serves', async () => {
    const script = await (await get('/bootstrap.sh')).text();
    const res = await get('/agent/axle-envoy');
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const exe = Buffer.from(await res.arrayBuffer());
    const sha = createHash('sha256').update(exe).digest('hex');
    expect(res.headers.get('x-axle-sha256')).toBe(sha);
    expect(Number(res.headers.get('content-length'))).toBe(exe.length);
    expect(exe.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(script).toContain(`HUB_URL='https://${hubAddr}'`);
    expect(script).toContain(`HUB_ADDRS='${hubAddr}'`);
    expect(script).toContain(`HUB_PUBKEYS='${plan.hubs[0]!.pub}'`);
    expect(script).toMatch(/HUB_PIN='sha256\/\/[A-Za-z0-9+/]{43}='/);
    expect(await (await get('/ca.pem')).text()).toBe(plan.ca.pem.toString());
    expect(install).toMatch(
      new RegExp(
        `^curl -fsSL --pinnedpubkey 'sha256//[A-Za-z0-9+/]{43}=' -k https://${hubAddr.replace(/\./g, '\\.')}/bootstrap\\.sh \\| sudo sh -s -- --token ${token} --ca-pin ${plan.ca.pin}$`,
      ),
    );
    expect(script).toContain(`AGENT_SHA256='${sha}'`);
    expect(script).not.toMatch(/@[A-Z_0-9]+@/);
    // The unit travels inside the script, exactly as deploy/systemd has it.
    const unit = readFileSync(join(ROOT, 'deploy/systemd/axle-envoy.service'), 'utf8');
    expect(script).toContain(`<<'AXLE_UNIT_END'\n${unit}AXLE_UNIT_END\n`);
    const head = await get('/agent/axle-envoy', { method: 'HEAD' });
    expect(head.headers.get('x-axle-sha256')).toBe(sha);
  });

  it('installs, enrolls and reports a missing systemctl with exit 3; a second run changes nothing', async () => {
    const root = join(t.dir, 'root1');
    mkdirSync(root);
    const host = 'web1.dc1.example.com';
    // The command the hub printed with the token, run as is.
    const first = runInstall(install, host, root);
    expect(first.err).toMatch(/systemctl not found/);
    expect(first.code, `${first.out}\n${first.err}`).toBe(3);
    expect(first.out).toMatch(/fleet CA sha256:[0-9a-f]{64} checked/);
    expect(first.out).toMatch(/agent \d+\.\d+\.\d+ installed at/);
    expect(first.out).toMatch(/enrolled web1\.dc1\.example\.com: spoke dc1/);

    expect(statSync(join(root, 'opt/axle/envoy/axle-envoy')).mode & 0o777).toBe(0o755);
    const cfg = readFileSync(join(root, 'etc/axle/envoy.yaml'), 'utf8');
    expect(cfg).toContain(`- "${hubAddr}"`);
    expect(cfg).toContain(`hostname: "${host}"`);
    // The envoy trusts the CA it checked and the hub keys the pinned channel gave it, nothing else.
    expect(cfg).toContain(`ca_file: "${root}/etc/axle/ca.pem"`);
    expect(cfg).toContain(`hub_pubkeys:\n  - "${plan.hubs[0]!.pub}"`);
    expect(cfg).not.toContain('insecure_transport');
    expect(readFileSync(join(root, 'etc/axle/ca.pem'), 'utf8')).toBe(plan.ca.pem.toString());
    const unit = readFileSync(join(root, 'etc/systemd/system/axle-envoy.service'), 'utf8');
    expect(unit.split('\n').filter((l) => l.startsWith('ExecStart='))).toEqual([
      `ExecStart=${root}/opt/axle/envoy/axle-envoy --config ${root}/etc/axle/envoy.yaml`,
    ]);
    expect(unit).toContain('Restart=on-failure');
    const assignment = JSON.parse(readFileSync(join(root, 'var/lib/axle/envoy/assignment.json'), 'utf8')) as {
      status: string;
      target: { spokeId: string };
    };
    expect(assignment).toMatchObject({ status: 'assigned', target: { spokeId: 'dc1' } });

    // The hub's directory has it, on the spoke its pattern routes to.
    const rec = await api.get<{ directory: { hostname: string; spokeId: string; epoch: number } }>(`/envoys/${host}`);
    expect(rec.directory).toMatchObject({ hostname: host, spokeId: 'dc1' });

    const before = snapshot(root);
    const second = runInstall(install, host, root);
    expect(second.code, `${second.out}\n${second.err}`).toBe(3);
    expect(second.out).toMatch(/agent already installed/);
    expect(second.out).toMatch(/config .* unchanged/);
    expect(second.out).toMatch(/already enrolled/);
    expect(second.out).toMatch(/unit .* unchanged/);
    expect(snapshot(root)).toEqual(before);
    const again = await api.get<{ directory: { epoch: number } }>(`/envoys/${host}`);
    expect(again.directory.epoch).toBe(rec.directory.epoch);
  });

  it('the installed agent runs from the written config, with no node on its PATH, and reports to its spoke', async () => {
    const root = join(t.dir, 'root1');
    const agent = await Proc.start('installed envoy', ['--config', join(root, 'etc/axle/envoy.yaml')], {
      exec: join(root, 'opt/axle/envoy/axle-envoy'),
      env: { PATH: binDir },
      ready: (l) => l.msg === 'envoy started',
    });
    try {
      await waitFor(
        async () => {
          const r = await api.get<{ items: { hostname: string; lastRunAt: number; connected: boolean }[] }>(
            '/envoys?match=web1.dc1.example.com',
          );
          return r.items[0] && r.items[0].lastRunAt > 0 && r.items[0].connected;
        },
        { timeoutMs: 20_000, what: 'the installed envoy to report a run' },
      );
    } finally {
      expect(await agent.stop()).toBe(0);
    }
  });

  it('refuses a token holding $(...), backquotes, quotes or a newline, and runs nothing', async () => {
    const script = await (await get('/bootstrap.sh')).text();
    const file = join(t.dir, 'bootstrap.sh');
    writeFileSync(file, script);
    const marker = join(t.dir, 'pwned');
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `axj_ok';touch ${marker};'`,
      'axj_"quoted"',
      `axj_ok\ntouch ${marker}`,
      `axj_ok $(touch ${marker})`,
    ];
    for (const bad of hostile) {
      const root = join(t.dir, `hostile-${hostile.indexOf(bad)}`);
      mkdirSync(root);
      const r = sh([file, '--token', bad, '--hostname', 'evil.dc1.example.com', '--root', root]);
      expect(r.code, JSON.stringify(bad)).toBe(1);
      expect(r.err).toMatch(/the token may only hold letters, digits/);
      expect(readdirSync(root), 'nothing installed').toEqual([]);
      expect(existsSync(marker), `ran a command from ${JSON.stringify(bad)}`).toBe(false);
    }
    const dir = await api.get<{ items: { hostname: string }[] }>('/directory');
    expect(dir.items.map((e) => e.hostname)).not.toContain('evil.dc1.example.com');
  });

  it('refuses an agent download whose sha256 is not the one the script names, installing nothing', async () => {
    const script = (await (await get('/bootstrap.sh')).text()).replace(
      /AGENT_SHA256='[0-9a-f]{64}'/,
      `AGENT_SHA256='${'0'.repeat(64)}'`,
    );
    const file = join(t.dir, 'tampered.sh');
    writeFileSync(file, script);
    const root = join(t.dir, 'tampered');
    mkdirSync(root);
    const r = sh([
      file,
      '--token',
      token,
      '--hostname',
      'web7.dc1.example.com',
      '--root',
      root,
      '--ca-pin',
      plan.ca.pin,
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/agent download is corrupt or was tampered with/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('refuses a host of another machine type before downloading anything', async () => {
    const file = join(t.dir, 'other-machine.sh');
    writeFileSync(file, await (await get('/bootstrap.sh')).text());
    const armBin = join(t.dir, 'bin-aarch64');
    mkdirSync(armBin);
    for (const tool of TOOLS.filter((x) => x !== 'uname')) symlinkSync(which(tool), join(armBin, tool));
    writeFileSync(join(armBin, 'uname'), '#!/bin/sh\n[ "$1" = -m ] && echo aarch64 || echo Linux\n', { mode: 0o755 });
    const root = join(t.dir, 'aarch64');
    mkdirSync(root);
    const r = sh(
      [file, '--token', token, '--hostname', 'arm1.dc1.example.com', '--root', root, '--ca-pin', plan.ca.pin],
      { path: armBin },
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/serves the agent for Linux x86_64; this host is Linux aarch64/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('a wrong --ca-pin installs nothing and says why; so does a missing one', async () => {
    const root = join(t.dir, 'wrongpin');
    mkdirSync(root);
    const wrong = `sha256:${'ab'.repeat(32)}`;
    const r = runInstall(install.replace(plan.ca.pin, wrong), 'web5.dc1.example.com', root);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `the CA served by https://${hubAddr} is ${plan.ca.pin}, not the ${wrong} you gave with --ca-pin: nothing installed`,
    );
    expect(readdirSync(root)).toEqual([]);
    const none = runInstall(install.replace(` --ca-pin ${plan.ca.pin}`, ''), 'web5.dc1.example.com', root);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/pass --ca-pin sha256:HEX/);
    expect(readdirSync(root)).toEqual([]);
    const dir = await api.get<{ items: { hostname: string }[] }>('/directory');
    expect(dir.items.map((e) => e.hostname)).not.toContain('web5.dc1.example.com');
  });

  it('a hub whose TLS key is not the pinned one gets nothing past curl', () => {
    const root = join(t.dir, 'wrongkey');
    mkdirSync(root);
    const r = runInstall(
      install.replace(/sha256\/\/[A-Za-z0-9+/]{43}=/, `sha256//${Buffer.alloc(32, 7).toString('base64')}`),
      'web6.dc1.example.com',
      root,
    );
    expect(r.err).toMatch(/public key does not match pinned public key/);
    expect(readdirSync(root)).toEqual([]);
  });

  it("refuses a wrong join token with the hub's message, leaving the host unenrolled", () => {
    const root = join(t.dir, 'badtoken');
    mkdirSync(root);
    const r = runInstall(install.replace(token, 'axj_not-a-real-token'), 'web9.dc1.example.com', root);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/enrollment failed/);
    expect(r.err).toMatch(/E_BAD_TOKEN|token/i);
    expect(existsSync(join(root, 'var/lib/axle/envoy/assignment.json'))).toBe(false);
  });
});

describe('bootstrap without an agent bundle', () => {
  const d = tempDir('axle-bootstrap-nobundle-');
  let hub: Hub;
  beforeAll(async () => {
    hub = new Hub(
      hubConfigFrom({
        server_id: 'hub-x',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: d.dir,
        agent_dir: join(d.dir, 'missing'),
        spanner: { role: 'hub' },
      }),
      { logger: silentLogger() },
    );
    await hub.start();
  });
  afterAll(async () => {
    await hub.stop();
    d.cleanup();
  });

  it('answers 404 with a clear message, and the script body is itself harmless under sh', async () => {
    const res = await fetch(`http://${hub.addr}/bootstrap.sh`);
    expect(res.status).toBe(404);
    const body = await res.text();
    expect(body).toMatch(/agent executable is missing/);
    const r = spawnSync('sh', [], { input: body, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/axle-bootstrap: the agent executable is missing .* set agent_dir/);
    const exe = await fetch(`http://${hub.addr}/agent/axle-envoy`);
    expect(exe.status).toBe(404);
    expect(((await exe.json()) as { error: { code: string } }).error.code).toBe('E_NOT_FOUND');
  });

  it('never puts a value that could break out of its quotes into the script', () => {
    const tpl = "A='@HUB_URL@' B='@HUB_ADDRS@' C='@AGENT_SHA256@' D='@HUB_PUBKEYS@' E='@HUB_PIN@'";
    const v = {
      hubUrl: 'https://h:1',
      hubAddrs: ['h:1', 'g:2'],
      sha256: 'ab',
      hubKeys: ['K+/='],
      hubPin: 'sha256//P+/=',
    };
    expect(renderBootstrap(tpl, v)).toBe("A='https://h:1' B='h:1 g:2' C='ab' D='K+/=' E='sha256//P+/='");
    expect(() => renderBootstrap(tpl, { ...v, hubUrl: "http://h:1'$(id)'" })).toThrow(/refusing/);
    expect(() => renderBootstrap(tpl, { ...v, hubAddrs: ['h:1 ;id'] })).toThrow(/refusing/);
    expect(() => renderBootstrap(tpl, { ...v, hubKeys: ["k';id;'"] })).toThrow(/refusing/);
  });
});

describe('AgentExecutable', () => {
  const d = tempDir('axle-agent-exe-cache-');
  afterAll(() => d.cleanup());
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('hashes the executable once, and again only when a new build replaces it', async () => {
    writeFileSync(join(d.dir, 'bootstrap.sh'), "A='@HUB_URL@' B='@HUB_ADDRS@' C='@AGENT_SHA256@'\n");
    const v1 = Buffer.alloc(3 * 2 ** 20, 1);
    writeFileSync(join(d.dir, 'axle-envoy'), v1);
    const agent = new AgentExecutable(() => d.dir);
    const [a, b] = await Promise.all([agent.load(), agent.load()]);
    expect(a).toBe(b); // one read for both
    expect(a).toMatchObject({ size: v1.length, sha256: sha(v1) });
    expect(await agent.load()).toBe(a);
    // A new build lands by rename, as npm run package and dpkg do.
    const v2 = Buffer.alloc(2 ** 20, 2);
    writeFileSync(join(d.dir, 'axle-envoy.new'), v2);
    renameSync(join(d.dir, 'axle-envoy.new'), join(d.dir, 'axle-envoy'));
    expect(await agent.load()).toMatchObject({ size: v2.length, sha256: sha(v2) });
  });

  it('refuses an empty executable and a template without its placeholders, with what to do', async () => {
    writeFileSync(join(d.dir, 'axle-envoy'), '');
    await expect(new AgentExecutable(() => d.dir).load()).rejects.toThrow(/is empty; rebuild the agent/);
    writeFileSync(join(d.dir, 'axle-envoy'), 'x');
    writeFileSync(join(d.dir, 'bootstrap.sh'), '#!/bin/sh\n');
    await expect(new AgentExecutable(() => d.dir).load()).rejects.toThrow(/is not a bootstrap template/);
  });
});
