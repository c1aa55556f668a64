import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { envoyConfigFrom } from '@axle/envoy-agent';
import { fleetCa, hubConfigFrom } from '@axle/hub';
import { spokeConfigFrom } from '@axle/spoke';
import { ensurePackages, type Outputs } from '../../scripts/package/build.js';
import { ROOT } from '../../scripts/package/esbuild.js';
import { POLICY_LOG, RootSandbox } from '../support/sandbox.js';
import { systemdVerify } from '../support/systemd.js';
import { tempDir } from '../support/tmp.js';

/**
 * The Debian packages of `npm run package`: their contents, metadata and maintainer scripts
 * read from the .deb files, lintian, and a whole life cycle (install, run, upgrade, remove,
 * purge) inside a throwaway overlay of this machine's root (test/support/sandbox.ts).
 */
const t = tempDir('axle-debian-');
let out: Outputs;
const NAMES = ['axle-envoy', 'axle-hub', 'axle-spoke'] as const;
type Name = (typeof NAMES)[number];
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

beforeAll(async () => {
  out = await ensurePackages();
}, 900_000);
afterAll(() => t.cleanup());

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

interface Entry {
  perms: string;
  owner: string;
  size: number;
}

/** `dpkg-deb --contents`: path (without the leading ".") -> permissions, owner, size. */
function contents(name: Name): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const line of sh('dpkg-deb', ['--contents', out.debs[name]!]).trim().split('\n')) {
    const [perms, owner, size, , , path] = line.split(/\s+/) as [string, string, string, string, string, string];
    m.set(path.slice(1).replace(/\/$/, '') || '/', { perms, owner, size: Number(size) });
  }
  return m;
}

const control = (name: Name) => {
  const dir = join(t.dir, 'control', name);
  mkdirSync(dir, { recursive: true });
  sh('dpkg-deb', ['--control', out.debs[name]!, dir]);
  return dir;
};

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('the Debian packages (read from the .deb files)', () => {
  it('hold what an operator expects where Debian puts it, all owned by root', () => {
    const expected: Record<Name, Record<string, string>> = {
      'axle-envoy': {
        '/usr/bin/axle-envoy': '-rwxr-xr-x',
        '/lib/systemd/system/axle-envoy.service': '-rw-r--r--',
        '/etc/axle/envoy.yaml': '-rw-r--r--',
        '/usr/share/man/man8/axle-envoy.8.gz': '-rw-r--r--',
        '/usr/share/doc/axle-envoy/copyright': '-rw-r--r--',
        '/usr/share/doc/axle-envoy/changelog.gz': '-rw-r--r--',
        '/usr/share/lintian/overrides/axle-envoy': '-rw-r--r--',
      },
      'axle-hub': {
        '/usr/bin/axle-hub': '-rwxr-xr-x',
        '/usr/bin/axle': '-rwxr-xr-x',
        '/usr/lib/axle/hub/node': '-rwxr-xr-x',
        '/usr/lib/axle/hub/app/axle-hub.mjs': '-rw-r--r--',
        '/usr/lib/axle/hub/app/axle.mjs': '-rw-r--r--',
        '/usr/lib/axle/hub/app/ui/index.html': '-rw-r--r--',
        '/usr/lib/axle/hub/app/node_modules/lmdb/package.json': '-rw-r--r--',
        '/usr/lib/axle/hub/agent/axle-envoy': '-rwxr-xr-x',
        '/usr/lib/axle/hub/agent/bootstrap.sh': '-rw-r--r--',
        '/lib/systemd/system/axle-hub.service': '-rw-r--r--',
        '/etc/axle/hub.yaml': '-rw-r--r--',
        '/usr/share/man/man8/axle-hub.8.gz': '-rw-r--r--',
        '/usr/share/man/man1/axle.1.gz': '-rw-r--r--',
        '/usr/share/doc/axle-hub/copyright': '-rw-r--r--',
      },
      'axle-spoke': {
        '/usr/bin/axle-spoke': '-rwxr-xr-x',
        '/usr/lib/axle/spoke/node': '-rwxr-xr-x',
        '/usr/lib/axle/spoke/app/axle-spoke.mjs': '-rw-r--r--',
        '/lib/systemd/system/axle-spoke.service': '-rw-r--r--',
        '/etc/axle/spoke.yaml': '-rw-r--r--',
        '/usr/share/man/man8/axle-spoke.8.gz': '-rw-r--r--',
        '/usr/share/doc/axle-spoke/copyright': '-rw-r--r--',
      },
    };
    for (const name of NAMES) {
      const c = contents(name);
      for (const [path, perms] of Object.entries(expected[name]))
        expect(c.get(path)?.perms, `${name}: ${path}`).toBe(perms);
      // Data directories are made by postinst with their owner; nothing lands in /opt or /usr/local.
      const places = [
        '/etc/axle',
        '/lib/systemd/system',
        '/usr/bin',
        '/usr/lib/axle',
        '/usr/share/doc',
        '/usr/share/man',
        '/usr/share/lintian',
      ];
      for (const [path, e] of c) {
        expect(e.owner, `${name}: ${path}`).toBe('root/root');
        expect(['drwxr-xr-x', '-rw-r--r--', '-rwxr-xr-x'], `${name}: ${path} is ${e.perms}`).toContain(e.perms);
        const parent = e.perms.startsWith('d') && places.some((p) => p.startsWith(path === '/' ? '/' : `${path}/`));
        expect(parent || places.some((p) => path === p || path.startsWith(`${p}/`)), `${name}: ${path}`).toBe(true);
      }
      const bins = [...c.keys()].filter((p) => p.startsWith('/usr/bin/'));
      expect(bins.sort(), name).toEqual(
        Object.keys(expected[name])
          .filter((p) => p.startsWith('/usr/bin/'))
          .sort(),
      );
      // The daemons' bundles carry no source maps, types or docs; one prebuilt lmdb addon.
      const app = [...c.keys()].filter((p) => p.includes('/app/'));
      expect(
        app.filter((p) => /\.(map|ts|md)$/.test(p)),
        name,
      ).toEqual([]);
      if (name !== 'axle-envoy')
        expect(app.filter((p) => p.endsWith('.node')).map((p) => p.replace(/.*node_modules\//, ''))).toEqual([
          `@lmdb/lmdb-linux-x64/node.abi${process.versions.modules}.glibc.node`,
          `@msgpackr-extract/msgpackr-extract-linux-x64/node.abi${process.versions.modules}.glibc.node`,
        ]);
    }
    const hub = contents('axle-hub');
    expect(hub.get('/usr/lib/axle/hub/agent/axle-envoy')?.size).toBe(statSync(out.agent.exe).size);
  });

  it('name their version, source, dependencies and conffiles; their maintainer scripts parse', () => {
    for (const name of NAMES) {
      const f = (field: string) => sh('dpkg-deb', ['--field', out.debs[name]!, field]).trim();
      expect(f('Package')).toBe(name);
      expect(f('Version')).toBe(version);
      expect(f('Source')).toBe('axle');
      expect(f('Architecture')).toBe(sh('dpkg', ['--print-architecture']).trim());
      const depends = f('Depends');
      expect(depends).toMatch(/\blibc6 \(>= [\d.]+\)/);
      expect(depends).toMatch(/\blibstdc\+\+6\b/);
      // Only the packages whose service has its own user create one.
      if (name === 'axle-envoy') expect(depends).not.toMatch(/adduser/);
      else expect(depends).toMatch(/(^|, )adduser(,|$)/);
      const dir = control(name);
      const daemon = name.slice('axle-'.length);
      expect(readFileSync(join(dir, 'conffiles'), 'utf8')).toBe(`/etc/axle/${daemon}.yaml\n`);
      for (const s of ['postinst', 'prerm', 'postrm']) {
        expect(statSync(join(dir, s)).mode & 0o777, `${name} ${s}`).toBe(0o755);
        const syntax = spawnSync('sh', ['-n', join(dir, s)], { encoding: 'utf8' });
        expect(syntax.status, `${name} ${s}: ${syntax.stderr}`).toBe(0);
        const text = readFileSync(join(dir, s), 'utf8');
        expect(text).toContain(`UNIT=axle-${daemon}.service`);
        expect(text).not.toMatch(/#AXLE_|@[A-Z_]+@/);
      }
      const postinst = readFileSync(join(dir, 'postinst'), 'utf8');
      expect(postinst.includes('adduser'), name).toBe(name !== 'axle-envoy');
      expect(postinst).toContain(`SERVICE_USER=${name === 'axle-envoy' ? 'root' : 'axle'}`);
    }
  });

  it('install the units of deploy/systemd pointed at /usr/bin, and systemd-analyze finds nothing to say', {
    timeout: 120_000,
  }, () => {
    const root = join(t.dir, 'unpacked');
    for (const name of NAMES) sh('dpkg-deb', ['--extract', out.debs[name]!, root]);
    expect(sha256(join(root, 'usr/lib/axle/hub/agent/axle-envoy'))).toBe(out.agent.sha256);
    expect(sha256(join(root, 'usr/bin/axle-envoy'))).toBe(out.agent.sha256);
    for (const daemon of ['hub', 'spoke', 'envoy']) {
      const packaged = readFileSync(join(root, `lib/systemd/system/axle-${daemon}.service`), 'utf8');
      const source = readFileSync(join(ROOT, `deploy/systemd/axle-${daemon}.service`), 'utf8');
      expect(packaged).toBe(
        source
          .replace(`ExecStart=/opt/axle/bin/axle-${daemon} `, `ExecStart=/usr/bin/axle-${daemon} `)
          .replace('Documentation=file:///opt/axle/README.md', `Documentation=man:axle-${daemon}(8)`),
      );
    }
    expect(readFileSync(join(root, 'usr/bin/axle-hub'), 'utf8')).toMatch(
      /^exec \/usr\/lib\/axle\/hub\/node \/usr\/lib\/axle\/hub\/app\/axle-hub\.mjs "\$@"$/m,
    );
    // MANPATH: systemd-analyze checks each Documentation=man:... page with man(1).
    const r = systemdVerify(root, ['axle-hub.service', 'axle-spoke.service', 'axle-envoy.service'], {
      MANPATH: join(root, 'usr/share/man'),
    });
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('ship /etc/axle/*.yaml as commented examples that are valid configs once uncommented', async () => {
    const key = toBase64(generateKeyPair().publicKey);
    // The envoy reads its CA file as it loads its config: a real one where the example names /etc/axle/ca.pem.
    const ca = await (await fleetCa()).initCa(join(t.dir, 'example-ca'));
    const from = {
      hub: hubConfigFrom,
      spoke: spokeConfigFrom,
      envoy: envoyConfigFrom,
    } as const;
    const root = join(t.dir, 'unpacked');
    for (const daemon of ['hub', 'spoke', 'envoy'] as const) {
      const text = readFileSync(join(root, `etc/axle/${daemon}.yaml`), 'utf8');
      // As installed, nothing is set: the daemon refuses to start until the operator writes its config.
      expect(parse(text)).toBeNull();
      // A commented setting is "#" then YAML (a key and a colon, or a list item); prose is "# Text".
      const uncommented = text
        .split('\n')
        .map((l) => (/^#\s*([a-z_]+:|- )/.test(l) ? l.slice(1) : l))
        .join('\n')
        .replaceAll('"BASE64"', `"${key}"`)
        .replaceAll('/etc/axle/ca.pem', ca.certFile);
      expect(() => from[daemon](parse(uncommented) as never), daemon).not.toThrow();
    }
  });

  it('are lintian clean, and every override is justified and used', { timeout: 600_000 }, () => {
    // --display-info for lintian's own unused-override and mismatched-override notes.
    // -X binaries/spelling: that check only emits spelling-error-in-binary, an info tag, and
    // spends half of lintian's time reading the strings of the four Node.js binaries.
    const lint = ['--no-cfg', '-j1', '--display-info', '-X', 'binaries/spelling'];
    const r = spawnSync('lintian', [...lint, ...NAMES.map((n) => out.debs[n]!)], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (r.error) throw new Error(`lintian is missing (${r.error.message}); run scripts/install-test-deps.sh`);
    const tags = r.stdout.split('\n').filter((l) => /^[EWI]: /.test(l));
    expect(tags.filter((l) => /^[EW]: |unused-override|mismatched-override/.test(l))).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    for (const name of NAMES) {
      const lines = readFileSync(join(ROOT, 'deploy/debian', `${name}.lintian-overrides`), 'utf8').split('\n');
      lines.forEach((l, i) => {
        if (!l.startsWith(`${name}: `)) return;
        // Each override follows a comment that says why (possibly shared with the override above it).
        let j = i - 1;
        while (j >= 0 && lines[j]!.startsWith(`${name}: `)) j--;
        expect(lines[j] ?? '', `${name}: ${l} has no justification`).toMatch(/^# \S/);
      });
    }
  });
});

describe('installed, run, upgraded, removed and purged in a throwaway root (mount namespace)', () => {
  let sb: RootSandbox;
  let debs: string;
  const binds = () => ({ [debs]: '/debs' });
  const names = (dir: string, suffix = '') => NAMES.map((n) => `${dir}/${n}_${version}${suffix}_amd64.deb`).join(' ');
  /** dpkg-query's field of each package, inside the sandbox. */
  const dpkgField = (field: string, ...pkgs: string[]) =>
    sb
      .ok(`dpkg-query -W -f '\${${field}}\\n' ${pkgs.join(' ')}`)
      .trim()
      .split('\n');
  const policyLog = () => sb.ok(`cat ${POLICY_LOG} 2>/dev/null || true`).trim().split('\n').filter(Boolean);

  /** What the life cycle would change on this machine if it escaped the sandbox. */
  const hostState = () => ({
    user: spawnSync('getent', ['passwd', 'axle'], { encoding: 'utf8' }).stdout,
    paths: ['/etc/axle', '/var/lib/axle', '/usr/lib/axle', '/usr/bin/axle-hub', '/usr/bin/axle-envoy'].filter((p) =>
      existsSync(p),
    ),
    units: readdirSync('/etc/systemd/system', { recursive: true }).filter((f) => String(f).includes('axle')),
    dpkg: spawnSync('dpkg-query', ['-W', 'axle-hub', 'axle-spoke', 'axle-envoy'], { encoding: 'utf8' }).stdout,
  });
  let hostBefore: ReturnType<typeof hostState>;

  beforeAll(() => {
    hostBefore = hostState();
    sb = new RootSandbox(join(t.dir, 'sandbox'));
    debs = join(t.dir, 'debs');
    mkdirSync(debs);
    for (const n of NAMES) sh('cp', [out.debs[n]!, debs]);
    // The next version: the same packages with a higher version, to upgrade to.
    mkdirSync(join(t.dir, 'raw'));
    for (const n of NAMES) {
      const raw = join(t.dir, 'raw', n);
      sh('dpkg-deb', ['--raw-extract', out.debs[n]!, raw]);
      const ctl = join(raw, 'DEBIAN/control');
      sh('sed', ['-i', `s/^Version: .*/Version: ${version}+next/`, ctl]);
      sh('dpkg-deb', ['--root-owner-group', '-Znone', '--build', raw, join(debs, `${n}_${version}+next_amd64.deb`)]);
    }
  }, 300_000);

  it('first install: the axle user, data directories, conffile modes; units enabled, nothing started', {
    timeout: 300_000,
  }, () => {
    sb.ok(`dpkg -i ${names('/debs')}`, { binds: binds(), timeoutMs: 300_000 });
    const s = sb.stat([
      '/var/lib/axle/hub',
      '/var/lib/axle/spoke',
      '/var/lib/axle/envoy',
      '/etc/axle/hub.yaml',
      '/etc/axle/spoke.yaml',
      '/etc/axle/envoy.yaml',
      '/etc/systemd/system/multi-user.target.wants/axle-hub.service',
      '/etc/systemd/system/multi-user.target.wants/axle-spoke.service',
      '/etc/systemd/system/multi-user.target.wants/axle-envoy.service',
    ]);
    expect(s['/var/lib/axle/hub']).toEqual({ type: 'directory', owner: 'axle:axle', mode: '700' });
    expect(s['/var/lib/axle/spoke']).toEqual({ type: 'directory', owner: 'axle:axle', mode: '700' });
    expect(s['/var/lib/axle/envoy']).toEqual({ type: 'directory', owner: 'root:root', mode: '700' });
    expect(s['/etc/axle/hub.yaml']).toMatchObject({ owner: 'root:axle', mode: '640' });
    expect(s['/etc/axle/spoke.yaml']).toMatchObject({ owner: 'root:axle', mode: '640' });
    expect(s['/etc/axle/envoy.yaml']).toMatchObject({ owner: 'root:root', mode: '644' });
    for (const d of ['hub', 'spoke', 'envoy'])
      expect(s[`/etc/systemd/system/multi-user.target.wants/axle-${d}.service`]?.type, d).toBe('symbolic link');
    const user = sb.ok('getent passwd axle').trim().split(':');
    expect(Number(user[2])).toBeLessThan(1000); // a system user
    expect(user[5]).toBe('/var/lib/axle');
    expect(user[6]).toBe('/usr/sbin/nologin');
    expect(dpkgField('Status', 'axle-hub', 'axle-spoke', 'axle-envoy')).toEqual([
      'install ok installed',
      'install ok installed',
      'install ok installed',
    ]);
    expect(policyLog(), 'nothing is started on a first install').toEqual([]);
    // Not configured yet: each refuses to start and says what to do.
    const r = sb.run('axle-envoy --config /etc/axle/envoy.yaml');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/envoy\.yaml: is empty; write the settings/);
  });

  it('as configured by an operator, hub and spoke run as axle with their own node, and the agent enrolls and reports', {
    timeout: 150_000,
  }, () => {
    const script = `
wait_for() { # wait_for WHAT COMMAND...: up to 30 s
  what=$1; shift; i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "timed out waiting for $what" >&2; tail -n 20 /tmp/*.log >&2; exit 1; }
    sleep 0.1
  done
}
as_axle() { runuser -u axle -- "$@"; }
write_hub() { # write_hub SPOKES-YAML
  cat > /etc/axle/hub.yaml <<EOF
server_id: hub-a
listen: "127.0.0.1:1530"
data_dir: /var/lib/axle/hub
tls: { cert_file: /etc/axle/tls/hub-a.pem, key_file: /etc/axle/tls/hub-a.key, ca_file: /etc/axle/ca.pem }
spanner:
  role: hub
  spokes: [$1]
EOF
}
write_hub ''
HUB_KEY=$(as_axle axle-hub keygen --config /etc/axle/hub.yaml)
# The fleet CA and a certificate for each listener, as the README's TLS step says.
install -d -o axle -g axle -m 0750 /etc/axle/tls
as_axle axle-hub ca init --config /etc/axle/hub.yaml
cp /var/lib/axle/hub/ca/ca.pem /etc/axle/ca.pem
as_axle axle-hub ca issue --config /etc/axle/hub.yaml --name hub-a --host 127.0.0.1 --out /etc/axle/tls
as_axle axle-hub ca issue --config /etc/axle/hub.yaml --name dc1 --host 127.0.0.1 --out /etc/axle/tls
cat > /etc/axle/spoke.yaml <<EOF
server_id: dc1
listen: "127.0.0.1:1531"
data_dir: /var/lib/axle/spoke
status_interval: 1s
tls: { cert_file: /etc/axle/tls/dc1.pem, key_file: /etc/axle/tls/dc1.key, ca_file: /etc/axle/ca.pem }
spanner: { role: spoke, spoke_id: dc1, hub_addr: "127.0.0.1:1530", hub_pubkeys: ["$HUB_KEY"] }
EOF
SPOKE_KEY=$(as_axle axle-spoke keygen --config /etc/axle/spoke.yaml)
write_hub "{ id: dc1, addr: '127.0.0.1:1531', patterns: ['*'], pubkey: '$SPOKE_KEY' }"
as_axle axle-spoke --config /etc/axle/spoke.yaml > /tmp/spoke.log 2>&1 &
as_axle axle-hub --config /etc/axle/hub.yaml > /tmp/hub.log 2>&1 &
wait_for 'the spoke' curl -fsS --cacert /etc/axle/ca.pem https://127.0.0.1:1531/healthz
wait_for 'the hub' curl -fsS --cacert /etc/axle/ca.pem https://127.0.0.1:1530/healthz
echo "hub-key-file $(stat -c '%U:%G %a' /var/lib/axle/hub/hub.key)"
ps -o user=,args= -C node | sed 's/^/node-process /'
curl -fsS --cacert /etc/axle/ca.pem https://127.0.0.1:1530/bootstrap.sh | sed -n "s/^AGENT_SHA256='\\(.*\\)'$/bootstrap-sha \\1/p"
curl -fsS --cacert /etc/axle/ca.pem https://127.0.0.1:1530/agent/axle-envoy | sha256sum | sed 's/ .*//; s/^/served-sha /'
export AXLE_HUB=https://127.0.0.1:1530 AXLE_CA_FILE=/etc/axle/ca.pem AXLE_TOKEN="$(cat /var/lib/axle/hub/admin.token)"
wait_for 'the spoke online at the hub' sh -c 'axle spanner spokes | grep -q online'
TOKEN=$(axle tokens create --ttl 1h | sed -n 's/^secret: //p')
cat > /etc/axle/envoy.yaml <<EOF
hub_addrs: ["127.0.0.1:1530"]
hub_pubkeys: ["$HUB_KEY"]
ca_file: /etc/axle/ca.pem
state_dir: /var/lib/axle/envoy
hostname: web1.dc1.example.com
EOF
axle-envoy enroll --config /etc/axle/envoy.yaml --token "$TOKEN"
axle-envoy --config /etc/axle/envoy.yaml > /tmp/envoy.log 2>&1 &
wait_for 'a run stored by the spoke' sh -c 'axle --json envoys show web1.dc1.example.com | grep -q "\\"lastRunAt\\": *[1-9]"'
axle envoys list
`;
    const o = sb.ok(script, { timeoutMs: 120_000 });
    expect(o).toMatch(/^hub-key-file axle:axle 600$/m);
    // Each daemon runs on the node its package carries, as the axle user.
    const nodes = o.split('\n').filter((l) => l.startsWith('node-process '));
    expect(nodes).toHaveLength(2);
    for (const d of ['hub', 'spoke'])
      expect(
        nodes.some((l) =>
          new RegExp(`^node-process axle +/usr/lib/axle/${d}/node /usr/lib/axle/${d}/app/axle-${d}\\.mjs `).test(l),
        ),
        d,
      ).toBe(true);
    expect(o).toContain(`bootstrap-sha ${out.agent.sha256}`);
    expect(o).toContain(`served-sha ${out.agent.sha256}`);
    expect(o).toMatch(/enrolled web1\.dc1\.example\.com: spoke dc1/);
    expect(o).toMatch(/web1\.dc1\.example\.com\s+dc1/);
  });

  it('an upgrade restarts the services that run, keeps the changed conffiles and the data', {
    timeout: 300_000,
  }, () => {
    const before = sb.ok('sha256sum /var/lib/axle/hub/hub.key /var/lib/axle/envoy/key /etc/axle/hub.yaml');
    sb.ok(`dpkg -i ${names('/debs', '+next')}`, { binds: binds(), timeoutMs: 300_000 });
    expect(sb.ok('sha256sum /var/lib/axle/hub/hub.key /var/lib/axle/envoy/key /etc/axle/hub.yaml')).toBe(before);
    expect(dpkgField('Version', 'axle-hub')[0]).toBe(`${version}+next`);
    expect(sb.stat(['/etc/axle/hub.yaml'])['/etc/axle/hub.yaml']).toMatchObject({ owner: 'root:axle', mode: '640' });
    expect(sb.ok('ls /etc/axle')).not.toMatch(/dpkg-(dist|old|new)/);
    expect(policyLog().sort()).toEqual([
      'try-restart axle-envoy.service',
      'try-restart axle-hub.service',
      'try-restart axle-spoke.service',
    ]);
  });

  it('remove stops the services and keeps config and data; purge deletes them and the enablement', {
    timeout: 120_000,
  }, () => {
    sb.ok(`: > ${POLICY_LOG}; dpkg -r axle-hub axle-spoke axle-envoy`);
    expect(policyLog().sort()).toEqual(['stop axle-envoy.service', 'stop axle-hub.service', 'stop axle-spoke.service']);
    let s = sb.stat(['/usr/bin/axle-hub', '/usr/lib/axle', '/etc/axle/hub.yaml', '/var/lib/axle/hub/hub.key']);
    expect(s['/usr/bin/axle-hub']).toBeUndefined();
    expect(s['/usr/lib/axle']).toBeUndefined();
    expect(s['/etc/axle/hub.yaml']).toBeDefined();
    expect(s['/var/lib/axle/hub/hub.key']).toMatchObject({ owner: 'axle:axle', mode: '600' });
    expect(dpkgField('db:Status-Abbrev', 'axle-hub')[0]).toBe('rc');

    sb.ok('dpkg -P axle-hub axle-spoke axle-envoy');
    // What the operator made (the CA copy and the certificates) is theirs, not the packages'.
    expect(sb.ok('ls /etc/axle').trim().split('\n')).toEqual(['ca.pem', 'tls']);
    sb.ok('rm -r /etc/axle/ca.pem /etc/axle/tls && rmdir /etc/axle');
    s = sb.stat(['/etc/axle', '/var/lib/axle']);
    expect(s['/etc/axle']).toBeUndefined();
    expect(s['/var/lib/axle']).toBeUndefined();
    expect(sb.ok('dpkg-statoverride --list | grep axle || true').trim()).toBe('');
    expect(sb.ok('find /etc/systemd /var/lib/systemd -name "axle-*" 2>/dev/null || true').trim()).toBe('');
    expect(sb.run('dpkg-query -W axle-hub').code).not.toBe(0);
    // The user stays, as Debian leaves system users: files elsewhere may still belong to it.
    expect(sb.ok('getent passwd axle')).toMatch(/^axle:/);
  });

  it('left the test machine as it was', () => {
    expect(hostState()).toEqual(hostBefore);
  });
});
