import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub, loadHubConfig } from '@axle/hub';
import { Spoke, loadSpokeConfig } from '@axle/spoke';
import { fetchTls, silentLogger } from '@axle/shared';
import { planFleet } from '../../scripts/demo/fleet.js';
import { ROOT } from '../support/proc.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

/**
 * The Grafana dashboard and the alert rules may only use metrics the daemons really export:
 * a real hub (with a replication peer configured, so the replication metrics exist) and a
 * real spoke are started from their config files, both /metrics are scraped, and every
 * axle_* name in deploy/grafana/axle-fleet.json and deploy/prometheus/alerts.yml must be in
 * one of them. `promtool` checks the scrape config, the rules, and every dashboard query.
 */
const DASHBOARD = join(ROOT, 'deploy/grafana/axle-fleet.json');
const PROM = join(ROOT, 'deploy/prometheus/prometheus.yml');
const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yml');
const t = tempDir('axle-metrics-');
let hub: Hub;
let spoke: Spoke;
let exported: Map<string, string>;

/** name -> type from the `# TYPE` lines of a Prometheus text exposition. */
function types(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Every axle_* metric name a PromQL expression uses (histogram series mapped to their metric). */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\baxle_[a-z0-9_]+(?![a-z0-9_:])/g)].map((m) => m[0]);
}

function resolveName(name: string): string | undefined {
  if (exported.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return exported.get(base) === 'histogram' ? base : undefined;
}

interface Panel {
  title?: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function dashboardExprs(): { panel: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const out: { panel: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const tg of p.targets ?? []) if (tg.expr) out.push({ panel: p.title ?? '?', expr: tg.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

function alertExprs(): { rule: string; expr: string }[] {
  if (!existsSync(ALERTS)) return [];
  const doc = parseYaml(readFileSync(ALERTS, 'utf8')) as {
    groups: { rules: { alert?: string; record?: string; expr: string }[] }[];
  };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ rule: r.alert ?? r.record ?? '?', expr: String(r.expr) })));
}

function promtool(args: string[]): { code: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: t.dir });
  if (r.error)
    throw new Error(`promtool is missing (${r.error.message}); install prometheus (promtool) to run this check`);
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

beforeAll(async () => {
  const plan = await planFleet(join(t.dir, 'fleet'), {
    hubs: ['hub-a', 'hub-b'],
    spokes: [{ id: 'dc1', patterns: ['*.dc1.*'] }],
    statusInterval: '200ms',
    probeInterval: '300ms',
  });
  spoke = new Spoke(loadSpokeConfig(plan.spokes[0]!.configFile), { logger: silentLogger() });
  await spoke.start();
  // hub-b stays down: hub-a still exports its replication metrics (as a standby or candidate).
  hub = new Hub(loadHubConfig(plan.hubs[0]!.configFile), { logger: silentLogger() });
  await hub.start();
  // The fleet runs with TLS, as Prometheus scrapes it (scheme: https, tls_config.ca_file).
  const scrape = async (addr: string) => (await fetchTls(`https://${addr}/metrics`, { ca: plan.ca.pem })).text();
  const spokeAddr = plan.spokes[0]!.addr;
  // Wait for a status push so every collector has run with real data at least once.
  await waitFor(async () => (await scrape(spokeAddr)).match(/^axle_spoke_status_pushes_total\{[^}]*\} [1-9]/m), {
    timeoutMs: 15_000,
    what: 'a status push',
  }).catch(() => undefined);
  exported = new Map([...types(await scrape(hub.addr)), ...types(await scrape(spokeAddr))]);
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  await spoke?.stop();
  t.cleanup();
});

describe('metrics used by the dashboard and the alerts', () => {
  it('the daemons export their documented families', () => {
    for (const n of [
      'axle_hub_spokes',
      'axle_hub_fanout_duration_seconds',
      'axle_hub_replication_lag',
      'axle_spoke_checkins_total',
      'axle_spoke_checkin_duration_seconds',
    ]) {
      expect(exported.has(n), n).toBe(true);
    }
  });

  it('every metric in the Grafana dashboard is exported by a hub or a spoke', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = namesIn(expr);
      expect(names.length, `panel "${panel}" queries no axle metric: ${expr}`).toBeGreaterThan(0);
      for (const n of names) if (!resolveName(n)) missing.push(`${panel}: ${n}`);
    }
    expect(missing).toEqual([]);
  });

  it('the dashboard covers spokes by state, compliance, check-ins, fan-out, drains, replication and jobs', () => {
    const all = dashboardExprs()
      .map((e) => e.expr)
      .join('\n');
    for (const n of [
      'axle_hub_spokes',
      'axle_hub_compliance_ratio',
      'axle_spoke_checkins_total',
      'axle_spoke_checkin_duration_seconds_bucket',
      'axle_hub_fanout_duration_seconds_bucket',
      'axle_hub_drains_total',
      'axle_hub_stranded_envoys',
      'axle_hub_replication_lag',
      'axle_hub_jobs',
    ]) {
      expect(all, n).toContain(n);
    }
    const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: { id: number }[] };
    expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
  });

  it('every metric in the alert rules is exported (when deploy/prometheus/alerts.yml exists)', () => {
    const missing: string[] = [];
    for (const { rule, expr } of alertExprs()) {
      for (const n of namesIn(expr)) if (!resolveName(n)) missing.push(`${rule}: ${n}`);
    }
    expect(missing).toEqual([]);
  });

  it('the catch-all check catches an unknown metric', () => {
    expect(resolveName('axle_hub_no_such_metric')).toBeUndefined();
    expect(resolveName('axle_spoke_checkin_duration_seconds_bucket')).toBe('axle_spoke_checkin_duration_seconds');
    expect(resolveName('axle_spoke_checkins_total_bucket')).toBeUndefined();
  });
});

describe('promtool', () => {
  it('passes check config on prometheus.yml (with alerts.yml when it exists, else without rule_files)', () => {
    const cfg = parseYaml(readFileSync(PROM, 'utf8')) as { rule_files?: string[] };
    const file = join(t.dir, 'prometheus.yml');
    if (existsSync(ALERTS)) {
      copyFileSync(ALERTS, join(t.dir, 'alerts.yml'));
      copyFileSync(PROM, file);
      expect(cfg.rule_files).toContain('alerts.yml');
    } else {
      // The alert rules are not written yet: check the scrape config alone.
      delete cfg.rule_files;
      writeFileSync(file, stringify(cfg));
    }
    const r = promtool(['check', 'config', file]);
    expect(r.output).toMatch(/SUCCESS/);
    expect(r.code, r.output).toBe(0);
  });

  it('parses every dashboard query (as recording rules)', () => {
    const rules = dashboardExprs().map((e, i) => ({ record: `axle_dashboard:q${i}`, expr: e.expr }));
    const file = join(t.dir, 'dashboard-queries.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = promtool(['check', 'rules', file]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('the check catches a broken query', () => {
    const file = join(t.dir, 'broken.yml');
    writeFileSync(
      file,
      stringify({
        groups: [{ name: 'x', rules: [{ record: 'axle:broken', expr: 'sum by (spoke (axle_hub_envoys)' }] }],
      }),
    );
    expect(promtool(['check', 'rules', file]).code).not.toBe(0);
  });
});
