import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageOf } from '@axle/shared';
import { tempDir } from '@axle/testkit';
import type { Figure } from './lib.js';
import { cpuSeconds, startSimFleet } from './sim-fleet.js';

/**
 * Config rollouts over 10,000 simulated envoys on 4 spokes, in waves of 500 (max_parallel
 * 500): hub CPU per host for a good version, beside a plain converge job over the same envoys
 * in the same run; then a version that fails on 30 % of the hosts with a 10 % failure budget:
 * the time from the result that spent the budget to the hub starting no more hosts and to the
 * rollout recorded as halted, how many hosts started after that result, and the rollback of
 * every host that took the version. The hub and spokes are child processes (the built bins);
 * each simulated envoy answers its order after WORK_MS (±50 %).
 */
const ENVOYS = Number(process.env.BENCH_ROLLOUT_ENVOYS ?? 10_000);
const WAVE = 500;
const PARALLEL = 500;
const WORK_MS = Number(process.env.BENCH_ROLLOUT_WORK_MS ?? 100);
const BUDGET = 0.1;
const SPOKES = ['dc1', 'dc2', 'dc3', 'dc4'];

interface Status {
  rollout: {
    id: string;
    state: string;
    jobId: string;
    reason?: string;
    waves: number;
    wavesDone: number;
  };
  job: { counts: Record<string, number>; maxRunning: number; paused?: { at: number } } | null;
  rollbackJob: { state: string; counts: Record<string, number> } | null;
}

const fails = (h: string) => createHash('sha1').update(h).digest()[0]! % 10 < 3;
const work = () => new Promise((r) => setTimeout(r, WORK_MS * (0.5 + Math.random())));

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-rollout-');
  const tree = (name: string) => {
    const dir = join(t.dir, name);
    mkdirSync(join(dir, 'policies'), { recursive: true });
    writeFileSync(join(dir, 'policies', 'base.yaml'), `description: ${name}\nresources:\n  - exec: [/bin/true]\n`);
    return dir;
  };
  const f = await startSimFleet({ envoys: ENVOYS, spokes: SPOKES });
  try {
    const pid = f.hub.proc.pid!;
    await f.api('POST', '/config/publish', { dir: tree('v1') });
    const until = async (id: string, done: (s: Status) => boolean): Promise<Status> => {
      for (let i = 0; i < 100_000; i++) {
        const s = await f.api<Status>('GET', `/config/rollouts/${id}`);
        if (done(s)) return s;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('unreachable');
    };

    // Reference: a converge job over the same envoys, same parallelism.
    f.onJobRun = async () => {
      await work();
      return { type: 'job_result', status: 'succeeded', message: 'converged', output: '' };
    };
    let cpu0 = cpuSeconds(pid);
    const { job } = await f.api<{ job: { id: string } }>('POST', '/jobs', {
      target: {},
      action: { kind: 'converge' },
      max_parallel: PARALLEL,
      wave_size: WAVE,
    });
    for (;;) {
      const s = await f.api<{ job: { state: string } }>('GET', `/jobs/${job.id}`);
      if (s.job.state !== 'running') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const jobCpu = cpuSeconds(pid) - cpu0;

    // A good version: every host, wave by wave, then live.
    let running = 0;
    let maxSeen = 0;
    f.onJobRun = async () => {
      running++;
      maxSeen = Math.max(maxSeen, running);
      await work();
      running--;
      return { type: 'job_result', status: 'succeeded', message: 'on the new version', output: '' };
    };
    cpu0 = cpuSeconds(pid);
    let t0 = performance.now();
    const good = await f.api<Status>('POST', '/config/rollouts', {
      dir: tree('v2'),
      canary: '1%',
      wave_size: WAVE,
      max_parallel: PARALLEL,
      max_failure_rate: BUDGET,
    });
    const g = await until(good.rollout.id, (s) => s.rollout.state !== 'running');
    const goodS = (performance.now() - t0) / 1000;
    const goodCpu = cpuSeconds(pid) - cpu0;
    console.log(
      `good rollout ${g.rollout.id}: ${g.rollout.state}, ${g.job?.counts.succeeded} hosts in ${g.rollout.waves} waves, ${goodS.toFixed(1)} s, max running ${g.job?.maxRunning} (envoys saw ${maxSeen})`,
    );

    // A version that fails on 30 % of hosts: halted by the budget, then rolled back.
    const answers: { at: number; failed: boolean }[] = [];
    f.onJobRun = async (h, m): Promise<MessageOf<'job_result'>> => {
      const revert = m.action.kind === 'config' && m.action.revert !== undefined;
      await work();
      const bad = !revert && fails(h);
      if (!revert) answers.push({ at: Date.now(), failed: bad });
      return {
        type: 'job_result',
        status: bad ? 'failed' : 'succeeded',
        message: bad ? 'run failed' : 'ok',
        output: '',
      };
    };
    const bad = await f.api<Status>('POST', '/config/rollouts', {
      dir: tree('v3'),
      wave_size: WAVE,
      max_parallel: PARALLEL,
      max_failure_rate: BUDGET,
    });
    const h = await until(bad.rollout.id, (s) => s.rollout.state === 'halted');
    // The condition: the first answer after which failures passed the budget, as the envoys sent
    // them (end to end) and as the hub took them (its own decision).
    const crossed = (xs: { at: number; failed: boolean }[]) => {
      let failed = 0;
      const i = xs.findIndex((a, k) => (failed += a.failed ? 1 : 0) / (k + 1) > BUDGET);
      return xs[i]?.at ?? 0;
    };
    const sent = crossed(answers);
    const targets = (
      await f.api<{ targets: { state: string; startedAt?: number; finishedAt?: number }[] }>(
        'GET',
        `/jobs/${h.rollout.jobId}/targets?limit=100000`,
      )
    ).targets;
    const took = crossed(
      targets
        .filter((x) => x.state === 'succeeded' || x.state === 'failed')
        .map((x) => ({ at: x.finishedAt ?? 0, failed: x.state === 'failed' }))
        .sort((a, b) => a.at - b.at),
    );
    const pausedAt = h.job?.paused?.at ?? 0;
    // The hub's own measure, from its pause to the halt being durable (one halt on this hub).
    const metrics = await (await fetch(`http://${f.hub.addr}/metrics`)).text();
    const durableMs = Number(/^axle_hub_rollout_halt_seconds_sum (\S+)$/m.exec(metrics)?.[1] ?? Number.NaN) * 1000;
    const startedAfter = targets.filter((x) => (x.startedAt ?? 0) > took).length;
    t0 = performance.now();
    await f.api('POST', `/config/rollouts/${bad.rollout.id}/abort`, { rollback: true });
    const rb = await until(bad.rollout.id, (s) => s.rollout.state === 'rolled_back');
    const backS = (performance.now() - t0) / 1000;
    const back = rb.rollbackJob?.counts.succeeded ?? 0;
    console.log(
      `bad rollout ${bad.rollout.id}: halted (${h.rollout.reason}); ${answers.length} answers; ${startedAfter} hosts started after the hub had the answer that spent the budget; ${back} rolled back in ${backS.toFixed(2)} s`,
    );
    const bench = 'rollout';
    const perHost = (goodCpu / ENVOYS) * 1000;
    const perJob = (jobCpu / ENVOYS) * 1000;
    return [
      {
        bench,
        name: `${ENVOYS} hosts, waves of ${WAVE}, max_parallel ${PARALLEL}`,
        value: goodS,
        unit: 's',
        target: '',
        pass:
          g.rollout.state === 'succeeded' && g.job?.counts.succeeded === ENVOYS && (g.job?.maxRunning ?? 0) <= PARALLEL,
        reference: `${g.rollout.waves} waves (canary 1%), ${WORK_MS} ms ±50% per host; max running ${g.job?.maxRunning}, envoys saw ${maxSeen}`,
      },
      {
        bench,
        name: 'hub CPU per host, good version',
        value: perHost,
        unit: 'cpu-ms',
        target: '<= 3x a converge job',
        pass: perHost <= 3 * perJob,
        reference: `converge job over the same ${ENVOYS} envoys in this run ${perJob.toFixed(2)} cpu-ms per target (${(perHost / perJob).toFixed(2)}x); rollout ${goodCpu.toFixed(1)} cpu-s in all`,
      },
      {
        bench,
        name: 'halt: hub has the answer that spends the budget -> no new starts',
        value: Math.max(0, pausedAt - took),
        unit: 'ms',
        target: '< 100 ms',
        pass: pausedAt > 0 && pausedAt - took < 100,
        reference: `30% of hosts fail, budget ${BUDGET * 100}%; end to end, from the envoy sending that answer: ${Math.max(0, pausedAt - sent)} ms (through its spoke, while the hub dispatches the wave)`,
      },
      {
        bench,
        name: 'halt: hub has that answer -> halt recorded (durable)',
        value: Math.max(0, pausedAt - took) + durableMs,
        unit: 'ms',
        target: '< 1000 ms',
        pass: Math.max(0, pausedAt - took) + durableMs < 1000,
        reference: `durable, with the halt event; ${answers.length} hosts had answered`,
      },
      {
        bench,
        name: 'hosts started after the hub had that answer',
        value: startedAfter,
        unit: 'hosts',
        target: '0',
        pass: startedAfter === 0,
        reference: `every host that took the version was started before; max_parallel ${PARALLEL} = a whole wave at once`,
      },
      {
        bench,
        name: 'rollback of every host that took the version',
        value: backS,
        unit: 's',
        target: '',
        pass: rb.rollbackJob?.state === 'succeeded',
        reference: `${back} hosts back on the live version`,
      },
    ];
  } finally {
    await f.stop();
    t.cleanup();
  }
}
