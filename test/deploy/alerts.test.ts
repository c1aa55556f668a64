import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/proc.js';
import { tempDir } from '../support/tmp.js';

/**
 * The alert rules (deploy/prometheus/alerts.yml) pass `promtool check rules`, and their unit
 * tests (alerts.test.yml: hub down, spoke offline, envoys stranded by a drain, spoke job failure
 * rate over 10 %, targets stuck past their timeout, fleet compliance dropping) pass
 * `promtool test rules`.
 * (test/deploy/metrics.test.ts checks every metric they name is really exported.)
 */
const DIR = join(ROOT, 'deploy/prometheus');
const t = tempDir('axle-alerts-');
afterAll(() => t.cleanup());

function promtool(args: string[], cwd: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd });
  if (r.error)
    throw new Error(
      `promtool is missing (${r.error.message}); run scripts/install-test-deps.sh (Debian package prometheus)`,
    );
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    const r = promtool(['check', 'rules', 'alerts.yml'], DIR);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('pass their promtool unit tests', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml'], DIR);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/SUCCESS/);
  });

  it('cover the conditions the operations guide asks for, each tested', () => {
    const rules = (
      parseYaml(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as { groups: { rules: { alert?: string }[] }[] }
    ).groups
      .flatMap((g) => g.rules)
      .map((r) => r.alert)
      .filter(Boolean);
    const tested = readFileSync(join(DIR, 'alerts.test.yml'), 'utf8');
    for (const a of [
      'AxleHubDown',
      'AxleSpokeOffline',
      'AxleEnvoysStranded',
      'AxleSpokeJobFailureRateHigh',
      'AxleJobTargetsStuck',
      'AxleFleetComplianceDropping',
      'AxleTlsCertificateExpiring',
    ]) {
      expect(rules).toContain(a);
      expect(tested).toContain(`alertname: ${a}`);
    }
  });

  it('the unit tests catch a wrong threshold', () => {
    const rules = readFileSync(join(DIR, 'alerts.yml'), 'utf8').replace(
      'axle:spoke_job_failure_ratio:15m > 0.10',
      'axle:spoke_job_failure_ratio:15m > 0.50',
    );
    writeFileSync(join(t.dir, 'alerts.yml'), rules);
    copyFileSync(join(DIR, 'alerts.test.yml'), join(t.dir, 'alerts.test.yml'));
    const r = promtool(['test', 'rules', 'alerts.test.yml'], t.dir);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/AxleSpokeJobFailureRateHigh/);
  });
});
