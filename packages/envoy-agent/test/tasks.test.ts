import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger, type MessageOf, type Run } from '@axle/shared';
import { runJob, type JobRunDeps } from '@axle/envoy-agent';
import { tempDir } from '@axle/testkit';

const t = tempDir('axle-envoy-tasks-');
afterAll(() => t.cleanup());
const dir = join(t.dir, 'live');
mkdirSync(join(dir, 'tasks'), { recursive: true });
writeFileSync(
  join(dir, 'tasks', 'echo.yaml'),
  'command: [/bin/sh, -c, \'echo "$AXLE_HOSTNAME $AXLE_JOB_ID $AXLE_ATTEMPT $GREETING"\']\ntimeout: 5s\nenv: { GREETING: hi }\n',
);
writeFileSync(join(dir, 'tasks', 'slow.yaml'), 'command: [/bin/sleep, "5"]\ntimeout: 10s\n');
writeFileSync(join(dir, 'tasks', 'missing.yaml'), 'command: [/no/such/program]\ntimeout: 1s\n');
writeFileSync(
  join(dir, 'tasks', 'debian-only.yaml'),
  'command: [/bin/true]\ntimeout: 1s\nallow: { traits: { os_id: debian } }\n',
);

const run = (name: string, timeoutMs = 5000): MessageOf<'job_run'> => ({
  type: 'job_run',
  jobId: 'j-1',
  action: { kind: 'task', name },
  timeoutMs,
  attempt: 2,
});
const deps = (o: Partial<JobRunDeps> = {}): JobRunDeps => ({
  configDir: dir,
  hostname: 'web1.dc1',
  configVersion: 7,
  traits: () => ({ os_id: 'debian' }),
  log: silentLogger(),
  converge: () => Promise.reject(new Error('not here')),
  ...o,
});

describe('the envoy runs only tasks of its applied bundle', () => {
  it('runs a task with its env and the job variables, returning the output', async () => {
    const r = await runJob(run('echo'), deps());
    expect(r).toMatchObject({ status: 'succeeded', exitCode: 0, message: 'task "echo" exited 0' });
    expect(r.output.trim()).toBe('web1.dc1 j-1 2 hi');
  });

  it('refuses a name its bundle does not define, and a host the task does not allow', async () => {
    const r = await runJob(run('rm-rf'), deps());
    expect(r.status).toBe('refused');
    expect(r.message).toBe(
      'task "rm-rf" is not defined in this envoy\'s applied config (version 7; its tasks: debian-only, echo, missing, slow); only tasks of the published bundle can run',
    );
    const r2 = await runJob(run('debian-only'), deps({ traits: () => ({ os_id: 'rhel' }) }));
    expect(r2).toMatchObject({ status: 'refused', message: expect.stringMatching(/does not allow web1.dc1/) });
    // No bundle applied yet: nothing runs.
    const r3 = await runJob(run('echo'), deps({ configDir: join(t.dir, 'none') }));
    expect(r3.status).toBe('refused');
  });

  it('kills a task at the job timeout (shorter than its own) and reports timed_out', async () => {
    const r = await runJob(run('slow', 200), deps());
    expect(r).toMatchObject({ status: 'timed_out', message: 'task "slow" timed out after 200 ms and was killed' });
  });

  it('a program that cannot start is a failure with the reason', async () => {
    const r = await runJob(run('missing'), deps());
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/task "missing": cannot run \/no\/such\/program: .*ENOENT/);
  });

  it('converge: the run decides the result', async () => {
    const base: Run = {
      id: 'run-12345678',
      hostname: 'web1.dc1',
      startedAt: 1,
      finishedAt: 2,
      configVersion: 7,
      mode: 'enforce',
      trigger: 'job',
      compliant: false,
      counts: { ok: 1, changed: 0, failed: 1, drift: 0 },
      results: [{ resource: 'file:/etc/motd', policy: 'base', status: 'failed', message: 'EACCES', durationMs: 1 }],
    };
    const conv: MessageOf<'job_run'> = {
      type: 'job_run',
      jobId: 'j-2',
      action: { kind: 'converge' },
      timeoutMs: 5000,
      attempt: 1,
    };
    const bad = await runJob(conv, deps({ converge: async () => base }));
    expect(bad).toMatchObject({
      status: 'failed',
      runId: 'run-12345678',
      message: '1 ok, 0 changed, 1 failed, 0 drift; first failure: file:/etc/motd: EACCES',
    });
    const good = await runJob(
      conv,
      deps({
        converge: async () => ({
          ...base,
          compliant: true,
          counts: { ok: 2, changed: 0, failed: 0, drift: 0 },
          results: [],
        }),
      }),
    );
    expect(good.status).toBe('succeeded');
    const slow = await runJob({ ...conv, timeoutMs: 50 }, deps({ converge: () => new Promise(() => undefined) }));
    expect(slow.status).toBe('timed_out');
  });
});
