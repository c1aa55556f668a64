import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, Signer, toBase64, verifyDetached, type TlsFiles } from '@axle/shared';
import type { FromLoadgen, ToLoadgen } from './spoke-loadgen.js';

/**
 * The processes of bench/spoke-checkin (a spoke from the built bin, a load generator) and what
 * is read from /proc about them: RSS, CPU per process and per thread, the open-file limit.
 */
const BIN = fileURLToPath(new URL('../packages/spoke/dist/bin/axle-spoke.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./spoke-loadgen.ts', import.meta.url));
/** Files a process needs beside its connections: LMDB, the listener, stdio, node's own. */
const FILE_HEADROOM = 300;

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** utime + stime from a /proc stat file, in seconds (clock ticks are 1/100 s on Linux). */
function statSeconds(file: string): number {
  const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const cpuSeconds = (pid: number) => statSeconds(`/proc/${pid}/stat`);

/** CPU seconds of each thread of `pid`, by thread id (threads that ended are gone from the sum). */
export function threadSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), statSeconds(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // Ended between the listing and the read.
    }
  }
  return out;
}

/** The load average, to print beside figures taken on a shared machine. */
export function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

export const cpuCount = () => readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length;

/**
 * The open-file limit caps connections (one descriptor each). A soft limit below what a child
 * needs is raised for that child alone, through `prlimit --nofile=SOFT:HARD` (util-linux), as
 * far as the hard limit allows and no further. `connections` is what fits; `note` says what
 * was done, for the figures.
 */
export function fileLimit(connections: number): { connections: number; wrap: string[]; note: string } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  const num = (x: string | undefined) => (x === 'unlimited' ? Number.POSITIVE_INFINITY : Number(x ?? 1024));
  const soft = num(m?.[1]);
  const hard = num(m?.[2]);
  const needed = connections + FILE_HEADROOM;
  const hardText = Number.isFinite(hard) ? String(hard) : 'unlimited';
  if (soft >= needed) return { connections, wrap: [], note: `open-file limit ${soft}:${hardText}, enough` };
  if (hard >= needed)
    return {
      connections,
      wrap: ['prlimit', `--nofile=${needed}:${hardText}`, '--'],
      note: `soft open-file limit raised from ${soft} to ${needed} (hard ${hardText})`,
    };
  const fits = Math.max(0, hard - FILE_HEADROOM);
  return {
    connections: fits,
    wrap: ['prlimit', `--nofile=${hard}:${hard}`, '--'],
    note: `the hard open-file limit ${hard} allows only ${fits} of the ${connections} connections asked (raise it: ulimit -Hn as root)`,
  };
}

/** `taskset -c cpus` in front of a command, when a CPU list is given. */
const pinned = (cpus: string | undefined, argv: string[]) => (cpus ? ['taskset', '-c', cpus, ...argv] : argv);

function start(argv: string[], o: Parameters<typeof spawn>[2]): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), o);
}

export interface BenchSpoke {
  proc: ChildProcess;
  addr: string;
  pub: string;
  hubSecret: string;
  /** Signature worker threads it started (its `listening` line says). */
  cryptoThreads: number;
}

/**
 * The built spoke bin on port 0 with a fresh hub key it obeys; `limits` adds YAML lines under
 * limits:, `top` top-level lines; `cpus` pins it with taskset; `wrap` goes in front (prlimit);
 * with `tls` it serves those files, without it runs with insecure_transport.
 */
export async function startSpoke(
  dir: string,
  limits = '',
  o: { top?: string; cpus?: string; wrap?: string[]; tls?: TlsFiles; keepalive?: string } = {},
): Promise<BenchSpoke> {
  const hub = generateKeyPair();
  const file = join(dir, 'spoke.yaml');
  const transport = o.tls
    ? `tls: { cert_file: "${o.tls.cert_file}", key_file: "${o.tls.key_file}", ca_file: "${o.tls.ca_file}" }`
    : 'insecure_transport: true';
  writeFileSync(
    file,
    `server_id: bench
listen: "127.0.0.1:0"
${transport}
data_dir: ${join(dir, 'data')}
${o.top ?? ''}limits:
  max_connections_per_ip: 20000
  max_handshakes_per_ip: 1000
  keepalive: "${o.keepalive ?? '3s'}"
${limits}spanner:
  role: spoke
  spoke_id: bench
  hub_pubkeys: ["${toBase64(hub.publicKey)}"]
`,
  );
  const kg = spawnSync(process.execPath, [BIN, 'keygen', '--config', file], { encoding: 'utf8' });
  if (kg.status !== 0) throw new Error(`keygen failed: ${kg.stderr}; run npm run build first`);
  const nodeArgs = (process.env.SPOKE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = start([...(o.wrap ?? []), ...pinned(o.cpus, [process.execPath, ...nodeArgs, BIN, '--config', file])], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, AXLE_LOG_LEVEL: 'info' },
  });
  const listening = await new Promise<{ port: number; cryptoThreads?: number }>((resolve, reject) => {
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; port?: number; level?: string; cryptoThreads?: number };
        if (l.msg === 'listening' && typeof l.port === 'number')
          resolve({ port: l.port, cryptoThreads: l.cryptoThreads });
        else if (l.level === 'error' || l.level === 'fatal') process.stderr.write(`spoke: ${line}\n`);
      } catch {
        process.stderr.write(`spoke: ${line}\n`);
      }
    });
    proc.once('exit', (code) => reject(new Error(`spoke exited (${code}) before listening`)));
  });
  return {
    proc,
    addr: `127.0.0.1:${listening.port}`,
    pub: kg.stdout.trim(),
    hubSecret: toBase64(hub.secretKey),
    cryptoThreads: listening.cryptoThreads ?? 0,
  };
}

export async function stopSpoke(s: BenchSpoke): Promise<void> {
  s.proc.kill('SIGTERM');
  await new Promise((r) => (s.proc.exitCode !== null ? r(undefined) : s.proc.once('exit', r)));
}

export type Loadgen = ReturnType<typeof startLoadgen>;

/** A load generator process (see spoke-loadgen.ts) and the messages it answers with. */
export function startLoadgen(o: { cpus?: string; wrap?: string[] } = {}) {
  const proc = start([...(o.wrap ?? []), ...pinned(o.cpus, [process.execPath, '--import', 'tsx', LOADGEN])], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`load generator exited (${code})`))),
  );
  exited.catch(() => undefined);
  return {
    proc,
    send: (m: ToLoadgen) => proc.send(m),
    async expect<P extends FromLoadgen['phase']>(phase: P): Promise<Extract<FromLoadgen, { phase: P }>> {
      const m = await Promise.race([
        new Promise<FromLoadgen>((resolve) => proc.once('message', (x) => resolve(x as FromLoadgen))),
        exited,
      ]);
      if (m.phase === 'error') throw new Error(`load generator failed: ${m.error}`);
      if (m.phase !== phase) throw new Error(`load generator said ${m.phase}, expected ${phase}`);
      return m as Extract<FromLoadgen, { phase: P }>;
    },
  };
}

/**
 * The Ed25519 work the spoke must do for frames of these sizes: a verify of each it receives
 * and a signature on each it sends, over what the protocol signs (session context, direction
 * byte and body: the frame's length less the signature, plus 65), with node:crypto as the
 * spoke does it. Median CPU microseconds (CPU, like the spoke's figure: on a shared machine
 * wall time would count other processes' turns).
 */
export function signatureWork(framesIn: number[], framesOut: number[]): number {
  const kp = generateKeyPair();
  const signer = new Signer(kp);
  const time = (fn: () => void) => {
    for (let i = 0; i < 50; i++) fn();
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 200; i++) fn();
      const c = process.cpuUsage(c0);
      runs.push((c.user + c.system) / 200);
    }
    return runs.sort((a, b) => a - b)[2]!;
  };
  let us = 0;
  for (const size of framesIn) {
    const data = new Uint8Array(Math.round(size) + 1).fill(7);
    const sig = signer.sign(data);
    us += time(() => verifyDetached(data, sig, kp.publicKey));
  }
  for (const size of framesOut) {
    const data = new Uint8Array(Math.round(size) + 1).fill(7);
    us += time(() => signer.sign(data));
  }
  return us;
}
