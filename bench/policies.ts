import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@axle/testkit';
import { printFigures, type Figure } from './lib.js';

/**
 * Policy runs as an operator runs them, through `axle-envoy apply` (the daemon's engine, V8
 * in lite mode as the bin sets it): a 1,000-resource bundle with 100 templates, and 200
 * directories and files side by side with `puppet apply` when Debian's puppet-agent is
 * installed (`AXLE_BENCH_PUPPET=1 scripts/install-test-deps.sh`). Each figure is a no-op run
 * (everything already right), the median of several, after one run that created it all.
 */
const ENVOY_BIN = fileURLToPath(new URL('../packages/envoy-agent/dist/bin/axle-envoy.js', import.meta.url));
const PUPPET = ['/usr/bin/puppet', '/opt/puppetlabs/bin/puppet'].find((p) => existsSync(p));

interface Proc {
  ms: number;
  peakKiB: number;
  stdout: string;
  code: number | null;
}

/** Runs a command to completion: wall time, and its peak RSS (VmHWM) sampled until it exits. */
function timed(cmd: string, args: string[]): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let peakKiB = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.resume();
    const sample = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        peakKiB = Math.max(peakKiB, Number(m?.[1] ?? 0));
      } catch {
        /* exited between samples */
      }
    }, 5);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      resolve({ ms: performance.now() - t0, peakKiB, stdout, code });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function axleApply(
  bundle: string,
  runs: number,
): Promise<{ first: number; wall: number; run: number; peakMiB: number }> {
  const once = async () => {
    const p = await timed(process.execPath, [ENVOY_BIN, 'apply', bundle, '--json']);
    if (p.code !== 0 && p.code !== 2) throw new Error(`axle-envoy apply exited ${p.code}: ${p.stdout.slice(0, 500)}`);
    const r = JSON.parse(p.stdout) as { startedAt: number; finishedAt: number; counts: { failed: number } };
    if (r.counts.failed > 0) throw new Error(`axle-envoy apply: ${r.counts.failed} failed`);
    return { ...p, run: r.finishedAt - r.startedAt, changed: p.code === 2 };
  };
  const first = await once();
  const rest = [];
  for (let i = 0; i < runs; i++) {
    const r = await once();
    if (r.changed) throw new Error('a no-op run changed something');
    rest.push(r);
  }
  return {
    first: first.run,
    wall: median(rest.map((r) => r.ms)),
    run: median(rest.map((r) => r.run)),
    peakMiB: Math.max(...rest.map((r) => r.peakKiB)) / 1024,
  };
}

/** 1,000 resources in 10 policies: 100 directories, 800 inline files, 100 files from 100 templates. */
function bundle1000(dir: string, host: string): void {
  mkdirSync(join(dir, 'policies'), { recursive: true });
  mkdirSync(join(dir, 'templates'));
  const policies: string[][] = Array.from({ length: 10 }, () => []);
  for (let t = 0; t < 100; t++)
    writeFileSync(
      join(dir, 'templates', `t${t}.liquid`),
      `# {{ hostname }} ({{ traits.os_id }})\nid=${t}\nworkers={{ vars.workers | times: ${t + 1} }}\n{% for u in vars.upstreams %}server {{ u }};\n{% endfor %}{% if traits.cpus > 1 %}multi{% endif %}\n`,
    );
  for (let d = 0; d < 100; d++) policies[d % 10]?.push(`  - directory: ${host}/d${d}\n    mode: "0755"`);
  for (let f = 0; f < 900; f++) {
    const path = `${host}/d${f % 100}/f${f}.conf`;
    policies[f % 10]?.push(
      f < 100
        ? `  - file: ${path}\n    template: templates/t${f}.liquid\n    mode: "0644"`
        : `  - file: ${path}\n    content: "key${f}=${'v'.repeat(100)}\\n"\n    mode: "0644"`,
    );
  }
  policies.forEach((p, i) =>
    writeFileSync(
      join(dir, 'policies', `p${i}.yaml`),
      `vars: { workers: 4, upstreams: [10.0.0.1, 10.0.0.2, 10.0.0.3] }\nresources:\n${p.join('\n')}\n`,
    ),
  );
}

/** The same 40 directories and 160 files as an Axle bundle and as a Puppet manifest. */
function same200(dir: string, axleHost: string, puppetHost: string): string {
  mkdirSync(join(dir, 'policies'), { recursive: true });
  const axle: string[] = [];
  const pp: string[] = [];
  for (let d = 0; d < 40; d++) {
    axle.push(`  - directory: ${axleHost}/d${d}\n    mode: "0755"`);
    pp.push(`file { '${puppetHost}/d${d}': ensure => directory, mode => '0755' }`);
  }
  for (let f = 0; f < 160; f++) {
    const content = `key${f}=${'v'.repeat(200)}`;
    axle.push(`  - file: ${axleHost}/d${f % 40}/f${f}.conf\n    content: "${content}\\n"\n    mode: "0644"`);
    pp.push(
      `file { '${puppetHost}/d${f % 40}/f${f}.conf': ensure => file, content => "${content}\\n", mode => '0644' }`,
    );
  }
  writeFileSync(join(dir, 'policies', 'p.yaml'), `resources:\n${axle.join('\n')}\n`);
  const manifest = join(dir, 'same.pp');
  writeFileSync(manifest, `${pp.join('\n')}\n`);
  return manifest;
}

async function puppetApply(manifest: string, state: string, runs: number) {
  // Puppet's own state (vardir, confdir...) in a temp dir: the machine's /etc/puppet and /var/lib/puppet stay as they are.
  const args = [
    'apply',
    '--detailed-exitcodes',
    '--color=false',
    ...['confdir', 'vardir', 'codedir', 'logdir', 'rundir', 'publicdir'].flatMap((k) => [`--${k}`, join(state, k)]),
    manifest,
  ];
  const once = async () => {
    const p = await timed(PUPPET as string, args);
    if (p.code !== 0 && p.code !== 2) throw new Error(`puppet apply exited ${p.code}: ${p.stdout.slice(-500)}`);
    const m = /Applied catalog in ([\d.]+) seconds/.exec(p.stdout);
    return { ...p, applying: m ? Number(m[1]) * 1000 : Number.NaN };
  };
  await once();
  const rest = [];
  for (let i = 0; i < runs; i++) rest.push(await once());
  return {
    wall: median(rest.map((r) => r.ms)),
    applying: median(rest.map((r) => r.applying)),
    peakMiB: Math.max(...rest.map((r) => r.peakKiB)) / 1024,
  };
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-policies-');
  try {
    const figs: Figure[] = [];
    const b1000 = join(t.dir, 'b1000');
    mkdirSync(join(t.dir, 'h1000'));
    bundle1000(b1000, join(t.dir, 'h1000'));
    const big = await axleApply(b1000, 7);
    figs.push({
      bench: 'policies',
      name: '1,000-resource run, 100 templates, nothing to change (median of 7)',
      value: big.run,
      unit: 'ms',
      target: '',
      reference: `first run creating it all: ${big.first} ms; whole axle-envoy apply process ${big.wall.toFixed(0)} ms, peak RSS ${big.peakMiB.toFixed(0)} MiB`,
    });

    const b200 = join(t.dir, 'b200');
    for (const d of ['h-axle', 'h-puppet']) mkdirSync(join(t.dir, d));
    const manifest = same200(b200, join(t.dir, 'h-axle'), join(t.dir, 'h-puppet'));
    const axle = await axleApply(b200, 7);
    let reference = 'puppet not installed (AXLE_BENCH_PUPPET=1 scripts/install-test-deps.sh installs puppet-agent)';
    if (PUPPET) {
      const version = spawnSync(PUPPET, ['--version'], { encoding: 'utf8' }).stdout.trim();
      const pup = await puppetApply(manifest, join(t.dir, 'puppet-state'), 3);
      reference = `puppet apply ${version} (median of 3): ${(pup.wall / 1000).toFixed(2)} s whole process, ${pup.applying.toFixed(0)} ms applying the catalog, peak RSS ${pup.peakMiB.toFixed(0)} MiB; ${(pup.wall / axle.wall).toFixed(1)}x axle's whole process`;
    }
    figs.push(
      {
        bench: 'policies',
        name: 'axle-envoy apply, 40 dirs + 160 files, no-op: whole process (median of 7)',
        value: axle.wall,
        unit: 'ms',
        target: '',
        reference,
      },
      {
        bench: 'policies',
        name: 'axle-envoy apply, 40 dirs + 160 files, no-op: the run',
        value: axle.run,
        unit: 'ms',
        target: '',
        reference: `peak RSS ${axle.peakMiB.toFixed(0)} MiB`,
      },
    );
    return figs;
  } finally {
    t.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
