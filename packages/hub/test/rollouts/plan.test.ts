import { describe, expect, it } from 'vitest';
import { emptyCounts, type Job } from '../../src/jobs/model.js';
import type { Rollout } from '../../src/jobs/rollouts/model.js';
import { decide, planWaves, type Facts } from '../../src/jobs/rollouts/plan.js';

const hosts = Array.from(
  { length: 20 },
  (_, i) => `${i % 2 ? 'web' : 'db'}${String(i).padStart(2, '0')}.dc${i % 4}.x`,
).sort();

describe('planWaves', () => {
  it('puts a glob canary first, then waves of wave_size in host name order', () => {
    const w = planWaves(hosts, { canary: { match: 'web01.*' }, waveSize: 8 });
    expect(hosts.filter((_, i) => w[i] === 0)).toEqual(['web01.dc1.x']);
    expect([1, 2, 3].map((k) => w.filter((x) => x === k).length)).toEqual([8, 8, 3]);
    // The rest keep name order across waves.
    const rest = hosts.filter((_, i) => w[i] !== 0);
    expect(rest.map((h) => w[hosts.indexOf(h)])).toEqual([...rest.map((h) => w[hosts.indexOf(h)])].sort());
  });

  it('spreads a percentage canary over the sorted fleet, at least one host', () => {
    const w = planWaves(hosts, { canary: { percent: 10 }, waveSize: 0 });
    const canary = hosts.filter((_, i) => w[i] === 0);
    expect(canary).toHaveLength(2);
    expect(canary.some((h) => h.startsWith('db'))).toBe(true);
    expect(canary.some((h) => h.startsWith('web'))).toBe(true);
    expect(w.filter((x) => x === 1)).toHaveLength(18);
    expect(planWaves(hosts, { canary: { percent: 0.1 }, waveSize: 0 }).filter((x) => x === 0)).toHaveLength(1);
  });

  it('is one wave without a canary or a wave size, and refuses a canary that matches nothing', () => {
    expect(new Set(planWaves(hosts, { waveSize: 0 }))).toEqual(new Set([0]));
    expect(() => planWaves(hosts, { canary: { match: 'nope*' }, waveSize: 5 })).toThrow(/matches none of the 20/);
    expect(planWaves([], { canary: { match: 'x*' }, waveSize: 5 })).toEqual([]);
  });
});

const rollout = (o: Partial<Rollout> = {}): Rollout => ({
  id: 'r-1',
  version: 7,
  from: 6,
  state: 'running',
  options: {
    waveSize: 5,
    wavePauseMs: 0,
    maxParallel: 2,
    maxFailureRate: 0.1,
    autoRollback: false,
    timeoutMs: 60_000,
    retries: 3,
  },
  by: 'admin',
  createdAt: 1,
  updatedAt: 1,
  jobId: 'r-1.waves',
  total: 20,
  waves: 4,
  canaryHosts: 0,
  wavesDone: 0,
  ...o,
});
const job = (o: Partial<Job> = {}): Job => ({
  id: 'r-1.waves',
  action: { kind: 'config', version: 7, rollout: 'r-1' },
  selector: {},
  options: { maxParallel: 2, waveSize: 5, wavePauseMs: 0, retries: 3, backoffMs: 1, factor: 2, timeoutMs: 1 },
  state: 'running',
  by: 'admin',
  createdAt: 1,
  startedAt: 1,
  total: 20,
  counts: emptyCounts(),
  waves: 4,
  wave: 0,
  unresolved: [],
  maxRunning: 0,
  ...o,
});
const facts = (o: Partial<Facts> = {}): Facts => ({
  job: job(),
  rollbackJob: undefined,
  staged: true,
  stopping: false,
  ...o,
});
const budget = { reason: '3 of 10 failed', by: 'failure budget', at: 5, budget: true };

describe('decide', () => {
  it('announces finished waves, then makes the version live when every wave ran', () => {
    expect(decide(rollout(), facts())).toEqual({ kind: 'none' });
    expect(decide(rollout(), facts({ job: job({ wave: 2 }) }))).toEqual({ kind: 'waves', done: 2 });
    const ended = job({ state: 'failed', wave: 4 });
    expect(decide(rollout({ wavesDone: 2 }), facts({ job: ended }))).toEqual({ kind: 'waves', done: 4 });
    expect(decide(rollout({ wavesDone: 4 }), facts({ job: ended }))).toEqual({ kind: 'promote' });
    expect(decide(rollout({ state: 'succeeded' }), facts({ staged: false }))).toEqual({ kind: 'none' });
  });

  it('halts on a budget pause, then rolls back only when asked to', () => {
    const paused = facts({ job: job({ paused: budget }) });
    expect(decide(rollout(), paused)).toEqual({ kind: 'halt', reason: '3 of 10 failed' });
    expect(decide(rollout({ state: 'halted' }), paused)).toEqual({ kind: 'none' });
    const auto = rollout({ state: 'halted', options: { ...rollout().options, autoRollback: true } });
    expect(decide(auto, paused)).toEqual({ kind: 'rollback' });
    // An operator's pause is not a halt.
    expect(decide(rollout({ state: 'paused' }), facts({ job: job({ paused: { ...budget, budget: false } }) }))).toEqual(
      {
        kind: 'none',
      },
    );
  });

  it('rolls back step by step, whichever hub picks it up mid-way', () => {
    const rb = rollout({ state: 'rolling_back' });
    expect(decide(rb, facts())).toEqual({ kind: 'stop_waves' });
    expect(decide(rb, facts({ stopping: true }))).toEqual({ kind: 'stop_waves' });
    expect(decide(rb, facts({ stopping: true, staged: false }))).toEqual({ kind: 'none' });
    const stopped = facts({ job: job({ state: 'cancelled' }), staged: false });
    expect(decide(rb, stopped)).toEqual({ kind: 'start_rollback' });
    const withJob = rollout({ state: 'rolling_back', rollbackJobId: 'r-1.rollback' });
    expect(decide(withJob, { ...stopped, rollbackJob: job({ id: 'r-1.rollback' }) })).toEqual({ kind: 'none' });
    expect(decide(withJob, { ...stopped, rollbackJob: job({ id: 'r-1.rollback', state: 'succeeded' }) })).toEqual({
      kind: 'rolled_back',
    });
    expect(decide(withJob, stopped).kind).toBe('lost');
  });

  it('finishes an abort the hub did not get to finish, and gives up on a rollout whose job is gone', () => {
    expect(decide(rollout({ state: 'aborted' }), facts())).toEqual({ kind: 'stop_waves' });
    expect(decide(rollout({ state: 'aborted' }), facts({ stopping: true, staged: false }))).toEqual({ kind: 'none' });
    expect(decide(rollout(), facts({ job: undefined })).kind).toBe('lost');
    expect(decide(rollout(), facts({ job: job({ state: 'cancelled' }) })).kind).toBe('lost');
  });
});
