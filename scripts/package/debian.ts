/**
 * The three Debian packages, laid out as an operator of Salt or Zabbix packages expects:
 *
 *   axle-envoy  /usr/bin/axle-envoy (the single executable), runs as root
 *   axle-hub    /usr/bin/axle-hub, /usr/bin/axle, /usr/lib/axle/hub/{node,app,agent}, runs as axle
 *   axle-spoke  /usr/bin/axle-spoke, /usr/lib/axle/spoke/{node,app}, runs as axle
 *
 * each with its unit from deploy/systemd in /lib/systemd/system, /etc/axle/<daemon>.yaml as a
 * conffile holding commented examples, a man page, and the maintainer scripts of
 * deploy/debian. Hub and spoke each carry their own runtime so either installs alone and both
 * install side by side.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { AgentOutputs } from './agent.js';
import { copyrightFile, type PackageInfo } from './copyright.js';
import type { DebFile, DebSpec } from './deb.js';
import { ROOT } from './esbuild.js';
import { walk } from './runtime.js';

/** The project has no mailing address yet: example.org (RFC 2606) until it has one. */
const MAINTAINER = 'Axle developers <axle@example.org>';
const DEBIAN = join(ROOT, 'deploy/debian');

export interface PackageInputs {
  version: string;
  arch: string;
  /** Depends computed by dpkg-shlibdeps for the node binary and the native addons. */
  shlibs: string[];
  /** seconds since the epoch: the changelog's date (and dpkg-deb's clamp on file times). */
  date: number;
  agent: AgentOutputs;
  node: string;
  apps: Record<'hub' | 'spoke', { dir: string; packages: PackageInfo[] }>;
}

type Daemon = 'hub' | 'spoke' | 'envoy';

/**
 * deploy/systemd/axle-<daemon>.service for the package: the executable under /usr/bin and the
 * man page as documentation. Refuses a unit that no longer reads as expected.
 */
function packagedUnit(daemon: Daemon): string {
  const unit = readFileSync(join(ROOT, 'deploy/systemd', `axle-${daemon}.service`), 'utf8');
  const swaps: [string, string][] = [
    [`ExecStart=/opt/axle/bin/axle-${daemon} `, `ExecStart=/usr/bin/axle-${daemon} `],
    ['Documentation=file:///opt/axle/README.md', `Documentation=man:axle-${daemon}(8)`],
  ];
  let out = unit;
  for (const [from, to] of swaps) {
    if (out.split(from).length !== 2) throw new Error(`axle-${daemon}.service: expected "${from}" exactly once`);
    out = out.replace(from, to);
  }
  return out;
}

/** The maintainer script `name` of deploy/debian with this package's values. */
function script(name: 'postinst' | 'prerm' | 'postrm', daemon: Daemon): string {
  const values = [
    `UNIT=axle-${daemon}.service`,
    `STATE_DIR=/var/lib/axle/${daemon}`,
    `CONFFILE=/etc/axle/${daemon}.yaml`,
    // The envoy manages the host, so it runs as root; hub and spoke run as their own user.
    `SERVICE_USER=${daemon === 'envoy' ? 'root' : 'axle'}`,
  ].join('\n');
  let text = readFileSync(join(DEBIAN, name), 'utf8');
  if (text.split('#AXLE_PACKAGE_VALUES#\n').length !== 2)
    throw new Error(`deploy/debian/${name}: no #AXLE_PACKAGE_VALUES# line`);
  text = text.replace('#AXLE_PACKAGE_VALUES#\n', `${values}\n`);
  // The service user's part is kept for hub and spoke, dropped whole for the envoy.
  const userPart = /^[ \t]*#AXLE_SERVICE_USER_BEGIN#[^\n]*\n([\s\S]*?)^[ \t]*#AXLE_SERVICE_USER_END#\n/m;
  return text.replace(userPart, daemon === 'envoy' ? '' : '$1');
}

const gz = (text: string) => gzipSync(text, { level: 9 });

/** What every package has: copyright, changelog, lintian overrides, man pages, unit, conffile, scripts. */
function common(
  name: string,
  daemon: Daemon,
  i: PackageInputs,
  o: { runtime: string[]; packages: PackageInfo[]; man: string[]; confMode: number },
): DebFile[] {
  const doc = `/usr/share/doc/${name}`;
  const files: DebFile[] = [
    {
      path: `${doc}/copyright`,
      text: copyrightFile({ pkg: name, version: i.version, runtime: o.runtime, packages: o.packages }),
      mode: 0o644,
    },
    { path: `/lib/systemd/system/axle-${daemon}.service`, text: packagedUnit(daemon), mode: 0o644 },
    { path: `/etc/axle/${daemon}.yaml`, from: join(DEBIAN, `${daemon}.yaml`), mode: o.confMode },
    { path: `/usr/share/lintian/overrides/${name}`, from: join(DEBIAN, `${name}.lintian-overrides`), mode: 0o644 },
  ];
  const date = new Date(i.date * 1000).toUTCString().replace('GMT', '+0000');
  files.push({
    path: `${doc}/changelog.gz`,
    text: gz(`axle (${i.version}) unstable; urgency=medium\n\n  * Axle ${i.version}.\n\n -- ${MAINTAINER}  ${date}\n`),
    mode: 0o644,
  });
  for (const m of o.man) {
    const section = m.slice(m.lastIndexOf('.') + 1);
    files.push({
      path: `/usr/share/man/man${section}/${m}.gz`,
      text: gz(readFileSync(join(DEBIAN, 'man', m), 'utf8')),
      mode: 0o644,
    });
  }
  return files;
}

const DESCRIPTION_TAIL = `Axle manages a fleet of hosts in a hub-and-spoke layout: an agent (the envoy)
on every host enrolls through a hub, is routed by hostname to the spoke that
owns it, reports its traits and configuration runs, and is moved when its
spoke dies. Everything speaks Ed25519-signed msgpack over WebSockets.`;

/** Wraps a node program for /usr/bin: the package's own runtime, never the system's node. */
const wrapper = (dir: string, entry: string) =>
  `#!/bin/sh\n# Runs ${entry} with the Node.js runtime this package carries (not the system's node).\nexec ${dir}/node ${dir}/app/${entry} "$@"\n`;

/** The files of the app directory a daemon bundle was built into, under `to`. */
function appFiles(from: string, to: string): DebFile[] {
  return [...walk(from)].map((f) => ({ path: `${to}${f.slice(from.length)}`, from: f, mode: 0o644 }));
}

export function debianPackages(i: PackageInputs): DebSpec[] {
  const base = { source: 'axle', version: i.version, arch: i.arch, maintainer: MAINTAINER, section: 'admin' };
  const scripts = (d: Daemon) => ({
    postinst: script('postinst', d),
    prerm: script('prerm', d),
    postrm: script('postrm', d),
  });
  const out: DebSpec[] = [];

  const envoy = common('axle-envoy', 'envoy', i, {
    runtime: ['usr/bin/axle-envoy'],
    packages: i.agent.packages,
    man: ['axle-envoy.8'],
    confMode: 0o644,
  });
  out.push({
    ...base,
    name: 'axle-envoy',
    depends: i.shlibs,
    description: `Axle fleet management: the agent (envoy)
The agent Axle runs on every managed host. It enrolls through a hub with a
join token, keeps a connection to its spoke, collects traits, applies the
policies of the published config bundle and reports every run, keeping each
report until a spoke has stored it. One executable that carries its own
Node.js runtime.

${DESCRIPTION_TAIL}`,
    files: [...envoy, { path: '/usr/bin/axle-envoy', from: i.agent.exe, mode: 0o755 }],
    conffiles: ['/etc/axle/envoy.yaml'],
    scripts: scripts('envoy'),
  });

  for (const daemon of ['hub', 'spoke'] as const) {
    const name = `axle-${daemon}`;
    const dir = `/usr/lib/axle/${daemon}`;
    const agentPackages = daemon === 'hub' ? i.agent.packages : [];
    const c = common(name, daemon, i, {
      runtime: [`${dir.slice(1)}/node`, ...(daemon === 'hub' ? [`${dir.slice(1)}/agent/axle-envoy`] : [])],
      packages: [...i.apps[daemon].packages, ...agentPackages],
      man: daemon === 'hub' ? ['axle-hub.8', 'axle.1'] : ['axle-spoke.8'],
      // 0640 root:axle once configured (postinst's statoverride); until then it holds only comments.
      confMode: 0o644,
    });
    const files: DebFile[] = [
      ...c,
      { path: `${dir}/node`, from: i.node, mode: 0o755 },
      ...appFiles(i.apps[daemon].dir, `${dir}/app`),
      { path: `/usr/bin/${name}`, text: wrapper(dir, `${name}.mjs`), mode: 0o755 },
    ];
    if (daemon === 'hub') {
      files.push(
        { path: '/usr/bin/axle', text: wrapper(dir, 'axle.mjs'), mode: 0o755 },
        // What GET /agent/axle-envoy and /bootstrap.sh serve (the hub finds agent/ beside app/).
        { path: `${dir}/agent/axle-envoy`, from: i.agent.exe, mode: 0o755 },
        { path: `${dir}/agent/bootstrap.sh`, from: i.agent.bootstrap, mode: 0o644 },
      );
    }
    out.push({
      ...base,
      name,
      depends: ['adduser', ...i.shlibs],
      description:
        daemon === 'hub'
          ? `Axle fleet management: the hub and the axle CLI
The single entry point of an Axle fleet: HTTP API, web UI, Prometheus metrics
and the one-line agent install (/bootstrap.sh, which serves the agent
executable this package carries). It routes enrolling agents to spokes, fans
queries out to every spoke, publishes config bundles, drains dead spokes and
replicates its state to peer hubs. Carries its own Node.js runtime.

${DESCRIPTION_TAIL}`
          : `Axle fleet management: a spoke
A partition of an Axle fleet: it serves the check-ins and run reports of the
agents the hub routes to it, keeps their traits, runs and results in LMDB and
answers the hub's queries, and keeps working while no hub is reachable.
Carries its own Node.js runtime.

${DESCRIPTION_TAIL}`,
      files,
      conffiles: [`/etc/axle/${daemon}.yaml`],
      scripts: scripts(daemon),
    });
  }
  return out;
}
