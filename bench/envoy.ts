import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { generateKeyPair, saveKeyPair, silentLogger, toBase64 } from '@axle/shared';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { Hub, hubConfigFrom } from '@axle/hub';
import { enroll, envoyConfigFrom, runPolicies } from '@axle/envoy-agent';
import { ensureAgent } from '../scripts/package/build.js';
import { freePort, tempDir } from '@axle/testkit';
import { printFigures, type Figure } from './lib.js';

/**
 * The envoy agent's footprint: RSS and CPU of real `axle-envoy` daemons (child processes)
 * connected to a real spoke and hub and otherwise idle, today's (node running the built bin)
 * and the single executable of npm run package side by side, beside a bare `node` process
 * measured over the same window; both agents' start times (--version, and start until
 * connected to the spoke); and the time of a 200-resource run with nothing to change,
 * beside the raw fs calls the same checks make. BENCH_ENVOY_IDLE_S shortens the idle window.
 * The run is timed in a child process with V8 in lite mode, as the axle-envoy bin runs it.
 */
const IDLE_S = Number(process.env.BENCH_ENVOY_IDLE_S ?? 60);
/** Extra node flags for the envoy daemon, to try tunings (e.g. "--max-semi-space-size=1"). */
const NODE_FLAGS = (process.env.BENCH_ENVOY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const ENVOY_BIN = fileURLToPath(new URL('../packages/envoy-agent/dist/bin/axle-envoy.js', import.meta.url));
const CLK_TCK = 100;

/**
 * Resident memory, and its anonymous part: the rest are clean pages of the executable and
 * libraries, shared and dropped under pressure, whose count follows the page cache (a file
 * just written is all cached, and the kernel maps cached pages around each fault).
 */
function memBytes(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

function cpuTicks(pid: number): number {
  // Fields after the ")" of the command name; utime and stime are the 12th and 13th there.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples RSS each second for `seconds` and the CPU used over the window, for each pid. */
async function sample(
  pids: number[],
  seconds: number,
): Promise<{ meanRss: number; maxRss: number; meanAnon: number; cpuPct: number }[]> {
  const t0 = pids.map(cpuTicks);
  const start = process.hrtime.bigint();
  const mem: { rss: number; anon: number }[][] = pids.map(() => []);
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    pids.forEach((p, j) => {
      mem[j]!.push(memBytes(p));
    });
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return pids.map((p, j) => ({
    meanRss: mean(mem[j]!.map((m) => m.rss)),
    maxRss: Math.max(...mem[j]!.map((m) => m.rss)),
    meanAnon: mean(mem[j]!.map((m) => m.anon)),
    cpuPct: ((cpuTicks(p) - t0[j]!) / CLK_TCK / secs) * 100,
  }));
}

/** Today's agent (node and the built bin) and the single executable, as commands for a config file. */
interface Agent {
  name: string;
  command: (cfg: string) => [string, string[]];
}

function agents(exe: string): Agent[] {
  return [
    { name: 'node + bundle', command: (cfg) => [process.execPath, [...NODE_FLAGS, ENVOY_BIN, '--config', cfg]] },
    { name: 'single executable', command: (cfg) => [exe, ['--config', cfg]] },
  ];
}

/** Spawns an agent and resolves with the ms until it logs `msg`. */
async function timeTo(agent: Agent, cfg: string, msg: string): Promise<number> {
  const [cmd, args] = agent.command(cfg);
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    return await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stderr!.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes(`"msg":"${msg}"`)) resolve(performance.now() - t0);
      });
      child.once('exit', (code) => reject(new Error(`${agent.name} exited (${code}) before "${msg}": ${buf}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `--version` and start-to-connected, each agent in turn so both see the same machine. */
async function startFigures(list: Agent[], cfgs: string[]): Promise<Figure[]> {
  const version: number[][] = list.map(() => []);
  const connected: number[][] = list.map(() => []);
  for (let i = 0; i < 15; i++) {
    list.forEach((a, j) => {
      const [cmd, args] = a.command(cfgs[j]!);
      const t0 = performance.now();
      const r = spawnSync(cmd, [...args.slice(0, -2), '--version']);
      if (r.status !== 0) throw new Error(`${a.name} --version failed: ${r.stderr}`);
      version[j]!.push(performance.now() - t0);
    });
  }
  for (let i = 0; i < 5; i++) {
    for (const [j, a] of list.entries()) connected[j]!.push(await timeTo(a, cfgs[j]!, 'connected to spoke'));
  }
  const [nodeV, exeV] = version.map(median) as [number, number];
  const [nodeC, exeC] = connected.map(median) as [number, number];
  // The executable must start no slower than node running the bundle (10% for noise).
  const vsNode = (name: string, exe: number, node: number): Figure => ({
    bench: 'envoy',
    name,
    value: exe,
    unit: 'ms',
    target: '<= node + bundle',
    pass: exe <= node * 1.1,
    reference: `node + bundle: ${node.toFixed(0)} ms`,
  });
  return [
    vsNode('start: --version, single executable (median of 15)', exeV, nodeV),
    vsNode('start: to connected, single executable (median of 5)', exeC, nodeC),
  ];
}

async function idleFigures(): Promise<Figure[]> {
  const exe = (await ensureAgent()).exe;
  const list = agents(exe);
  const t = tempDir('axle-bench-envoy-');
  const hubDir = join(t.dir, 'hub');
  mkdirSync(hubDir);
  const hubKey = generateKeyPair();
  saveKeyPair(join(hubDir, 'hub.key'), hubKey);
  const hubAddr = `127.0.0.1:${await freePort()}`;
  const spoke = new Spoke(
    spokeConfigFrom({
      server_id: 'dc1',
      insecure_transport: true,
      listen: '127.0.0.1:0',
      data_dir: join(t.dir, 'spoke'),
      spanner: { role: 'spoke', spoke_id: 'dc1', hub_addr: hubAddr, hub_pubkeys: [toBase64(hubKey.publicKey)] },
    }),
    { logger: silentLogger() },
  );
  await spoke.start();
  const hub = new Hub(
    hubConfigFrom({
      server_id: 'hub-a',
      insecure_transport: true,
      listen: hubAddr,
      data_dir: hubDir,
      spanner: {
        role: 'hub',
        spokes: [{ id: 'dc1', addr: spoke.addr, pubkey: toBase64(spoke.publicKey), patterns: ['*'] }],
      },
    }),
    { logger: silentLogger() },
  );
  await hub.start();
  const tok = await fetch(`http://${hub.addr}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: '{}',
  }).then((r) => r.json() as Promise<{ secret: string }>);

  // Defaults as a fleet host would run them (60 s check-ins, schedule every 30 min); one
  // host name and state directory for each agent.
  const cfgs: string[] = [];
  const hubPub = toBase64(hubKey.publicKey);
  for (let i = 0; i < list.length; i++) {
    const host = `bench${i + 1}.dc1.example.com`;
    const stateDir = join(t.dir, `envoy${i + 1}`);
    const cfgFile = join(t.dir, `envoy${i + 1}.yaml`);
    writeFileSync(
      cfgFile,
      `hub_addrs: ["${hub.addr}"]\nhub_pubkeys: ["${hubPub}"]\ninsecure_transport: true\nstate_dir: ${stateDir}\nhostname: ${host}\nlog_level: info\n`,
    );
    await enroll(
      envoyConfigFrom({
        hub_addrs: [hub.addr],
        hub_pubkeys: [hubPub],
        insecure_transport: true,
        state_dir: stateDir,
        hostname: host,
      }),
      tok.secret,
    );
    cfgs.push(cfgFile);
  }
  const starts = await startFigures(list, cfgs);
  const daemons = list.map((a, i) => {
    const [cmd, args] = a.command(cfgs[i]!);
    return spawn(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  });
  const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    const deadline = Date.now() + 20_000;
    while (spoke.stats().connected < list.length) {
      if (Date.now() > deadline) throw new Error('the envoys did not connect to the spoke within 20 s');
      await sleep(50);
    }
    await sleep(3000); // the start-up runs and their reports settle first
    const [e, x, b] = await sample([...daemons.map((d) => d.pid!), bare.pid!], IDLE_S);
    const mib = (n: number) => n / 2 ** 20;
    return [
      {
        bench: 'envoy',
        name: `idle RSS, daemon connected (mean of ${IDLE_S} s)`,
        value: mib(e!.meanRss),
        unit: 'MiB',
        target: '< 60 MiB (mean)',
        pass: mib(e!.meanRss) < 60,
        reference: `bare node: ${mib(b!.meanRss).toFixed(1)} MiB; envoy max ${mib(e!.maxRss).toFixed(1)} MiB`,
      },
      {
        bench: 'envoy',
        name: `idle RSS, single executable (mean of ${IDLE_S} s)`,
        value: mib(x!.meanRss),
        unit: 'MiB',
        target: '',
        reference: `node + bundle: ${mib(e!.meanRss).toFixed(1)} MiB; the difference is clean pages of the executable, which follow the page cache`,
      },
      {
        bench: 'envoy',
        name: `idle anonymous memory, single executable (mean of ${IDLE_S} s)`,
        value: mib(x!.meanAnon),
        unit: 'MiB',
        target: '<= node + bundle',
        pass: x!.meanAnon <= e!.meanAnon * 1.05,
        reference: `node + bundle: ${mib(e!.meanAnon).toFixed(1)} MiB, same run`,
      },
      {
        bench: 'envoy',
        name: `idle CPU over ${IDLE_S} s`,
        value: e!.cpuPct,
        unit: '% of a core',
        target: '',
        reference: `single executable: ${x!.cpuPct.toFixed(2)} %; bare node: ${b!.cpuPct.toFixed(2)} %`,
      },
      ...starts,
    ];
  } finally {
    for (const d of daemons) d.kill('SIGTERM');
    bare.kill('SIGKILL');
    await Promise.all(daemons.map((d) => new Promise((r) => (d.exitCode === null ? d.once('exit', r) : r(undefined)))));
    await hub.stop();
    await spoke.stop();
    t.cleanup();
  }
}

/** Times the run in a child with V8 flags as the bin sets them. */
async function runFigures(): Promise<Figure[]> {
  const child = fork(fileURLToPath(import.meta.url), ['run200'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const figs = await new Promise<Figure[]>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Figure[]));
    child.once('exit', (code) => reject(new Error(`run benchmark child exited with ${code}`)));
  });
  child.kill();
  return figs;
}

async function run200(): Promise<Figure[]> {
  const t = tempDir('axle-bench-run-');
  const host = join(t.dir, 'host');
  const bundle = join(t.dir, 'live');
  mkdirSync(join(bundle, 'policies'), { recursive: true });
  mkdirSync(join(bundle, 'files'));
  // 200 resources in 4 policies: 40 directories, 140 files (40 from 20 templates, 50 from the
  // bundle, 50 inline), 10 absent, 10 guarded execs.
  const paths: string[] = [];
  const policies: string[][] = [[], [], [], []];
  mkdirSync(join(bundle, 'templates'));
  for (let i = 0; i < 20; i++)
    writeFileSync(
      join(bundle, 'templates', `t${i}.liquid`),
      `# {{ hostname }} ({{ traits.os_id }}, {{ traits.cpus }} cpus)\nworkers={{ vars.workers | times: ${i + 1} }}\n{% for u in vars.upstreams %}server {{ u }};\n{% endfor %}`,
    );
  for (let d = 0; d < 40; d++) {
    policies[d % 4]!.push(`  - directory: ${host}/d${d}\n    mode: "0755"`);
    paths.push(`${host}/d${d}`);
  }
  for (let f = 0; f < 140; f++) {
    const path = `${host}/d${f % 40}/f${f}.conf`;
    paths.push(path);
    if (f % 7 < 2) {
      policies[f % 4]!.push(`  - file: ${path}\n    template: templates/t${f % 20}.liquid\n    mode: "0644"`);
    } else if (f % 2) {
      writeFileSync(join(bundle, 'files', `f${f}.conf`), `key${f}=${'v'.repeat(200)}\n`);
      policies[f % 4]!.push(`  - file: ${path}\n    source: files/f${f}.conf\n    mode: "0644"`);
    } else {
      policies[f % 4]!.push(`  - file: ${path}\n    content: "key${f}=${'v'.repeat(200)}\\n"\n    mode: "0640"`);
    }
  }
  for (let a = 0; a < 10; a++) policies[a % 4]!.push(`  - absent: ${host}/gone${a}`);
  for (let x = 0; x < 10; x++)
    policies[x % 4]!.push(`  - exec: [/usr/bin/touch, ${host}/d${x}/marker]\n    creates: ${host}/d${x}/marker`);
  policies.forEach((p, i) =>
    writeFileSync(
      join(bundle, 'policies', `p${i}.yaml`),
      `vars: { workers: 4, upstreams: [10.0.0.1, 10.0.0.2] }\nresources:\n${p.join('\n')}\n`,
    ),
  );
  mkdirSync(host);
  const opts = {
    configDir: bundle,
    hostname: 'bench1.dc1.example.com',
    traits: { os_id: 'debian', cpus: 2 },
    mode: 'enforce' as const,
    configVersion: 1,
    trigger: 'demand' as const,
  };
  const first = await runPolicies(opts);
  if (first.results.length !== 200 || first.counts.failed > 0)
    throw new Error(`setup run: ${JSON.stringify(first.counts)} ${first.error ?? ''}`);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const r = await runPolicies(opts);
    if (r.counts.ok !== 200) throw new Error(`expected 200 ok, got ${JSON.stringify(r.counts)}`);
    times.push(r.finishedAt - r.startedAt);
  }
  times.sort((a, b) => a - b);
  const median = times[3]!;
  // The same checks as bare fs calls: lstat every path and read every managed file.
  const t0 = performance.now();
  for (let i = 0; i < 7; i++) {
    for (const p of paths) {
      const st = await lstat(p);
      if (st.isFile()) await readFile(p);
    }
  }
  const raw = (performance.now() - t0) / 7;
  t.cleanup();
  return [
    {
      bench: 'envoy',
      name: '200-resource run with 40 templated files, nothing to change (median of 7, lite mode)',
      value: median,
      unit: 'ms',
      target: '< 1000 ms',
      pass: median < 1000,
      reference: `bare lstat+readFile of the same paths: ${raw.toFixed(1)} ms`,
    },
  ];
}

export async function run(): Promise<Figure[]> {
  return [...(await runFigures()), ...(await idleFigures())];
}

if (process.argv[2] === 'run200') {
  setFlagsFromString('--lite-mode');
  process.send?.(await run200());
} else if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
