import type { Figure } from './lib.js';
import { cpuSeconds, startSimFleet } from './sim-fleet.js';

/**
 * A converge job over 10,000 envoys on 4 spokes with max_parallel 500 (the seed's "hub and
 * spoke" row), beside the sequential estimate (the sum of every target's own run time: the
 * seed's "sequential" row). The hub and the 4 spokes are child processes (the built bins);
 * the 10,000 envoys are real protocol connections in this process, each with its own key,
 * answering job_run after a simulated converge of WORK_MS (±50 %). Hub CPU is read from
 * /proc for the hub process alone, over the job.
 */
const ENVOYS = Number(process.env.BENCH_JOB_ENVOYS ?? 10_000);
const MAX_PARALLEL = Number(process.env.BENCH_JOB_PARALLEL ?? 500);
const WORK_MS = Number(process.env.BENCH_JOB_WORK_MS ?? 200);
const SPOKES = ['dc1', 'dc2', 'dc3', 'dc4'];

export async function run(): Promise<Figure[]> {
  const connectStart = Date.now();
  const f = await startSimFleet({ envoys: ENVOYS, spokes: SPOKES });
  try {
    let workSum = 0;
    let running = 0;
    let maxSeen = 0;
    f.onJobRun = async () => {
      const t0 = performance.now();
      running++;
      maxSeen = Math.max(maxSeen, running);
      await new Promise((r) => setTimeout(r, WORK_MS * (0.5 + Math.random())));
      running--;
      workSum += performance.now() - t0;
      return { type: 'job_result', status: 'succeeded', message: 'converged', output: '' };
    };
    console.log(`${ENVOYS} envoys imported and connected in ${((Date.now() - connectStart) / 1000).toFixed(1)} s`);

    const cpu0 = cpuSeconds(f.hub.proc.pid!);
    const t0 = performance.now();
    const { job } = await f.api<{ job: { id: string } }>('POST', '/jobs', {
      target: { match: '*' },
      action: { kind: 'converge' },
      max_parallel: MAX_PARALLEL,
      timeout: '60s',
    });
    let summary:
      | { total: number; succeeded: number; failed: number; job: { state: string; maxRunning: number } }
      | undefined;
    for (let i = 0; i < 100_000; i++) {
      summary = await f.api<NonNullable<typeof summary>>('GET', `/jobs/${job.id}`);
      if (summary.job.state !== 'running') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = cpuSeconds(f.hub.proc.pid!) - cpu0;
    const seqS = workSum / 1000;
    const ideal = seqS / MAX_PARALLEL;
    const seqNominal = (ENVOYS * WORK_MS) / 1000;
    console.log(
      `job ${job.id}: ${summary!.succeeded}/${summary!.total} succeeded, state ${summary!.job.state}, max running ${summary!.job.maxRunning} (envoys saw ${maxSeen})`,
    );
    const bench = 'jobs';
    const others = f.spokes.reduce((n, d) => n + cpuSeconds(d.proc.pid!), 0);
    const gen = process.cpuUsage();
    return [
      {
        bench,
        name: `converge ${ENVOYS} envoys, 4 spokes, max_parallel ${MAX_PARALLEL}`,
        value: wallS,
        unit: 's',
        target: '',
        reference: `sequential estimate ${seqNominal.toFixed(0)} s (${ENVOYS} x ${WORK_MS} ms unloaded); sum of per-target times as measured under load ${seqS.toFixed(0)} s; ideal ${ideal.toFixed(1)} s`,
      },
      {
        bench,
        name: 'speed-up over sequential',
        value: seqNominal / wallS,
        unit: 'x',
        target: `>= ${MAX_PARALLEL / 20}x`,
        pass: seqNominal / wallS >= MAX_PARALLEL / 20 && summary!.succeeded === ENVOYS,
        reference: `max_parallel ${MAX_PARALLEL}; hub, 4 spokes and the envoy simulator share this machine`,
      },
      {
        bench,
        name: 'hub CPU for the job',
        value: cpuS,
        unit: 'cpu-s',
        target: '',
        reference: `${((cpuS / ENVOYS) * 1000).toFixed(2)} cpu-ms per target; ${((cpuS / wallS) * 100).toFixed(0)} % of one core; spokes ${others.toFixed(1)} cpu-s in all (whole run), envoy simulator ${((gen.user + gen.system) / 1e6).toFixed(1)} cpu-s`,
      },
      {
        bench,
        name: 'max targets running at once',
        value: summary!.job.maxRunning,
        unit: 'targets',
        target: `<= ${MAX_PARALLEL}`,
        pass: summary!.job.maxRunning <= MAX_PARALLEL && maxSeen <= MAX_PARALLEL,
        reference: `envoys saw ${maxSeen}`,
      },
    ];
  } finally {
    await f.stop();
  }
}
