import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@axle/shared';
import { adopt, checkin, envoyConnect, makeRun, newEnvoy, report, SpokeSession } from './helpers.js';

const session = new SpokeSession(afterAll);

beforeAll(async () => {
  await session.start();
  const hub = await session.hub();
  const a = newEnvoy('m1.dc1.example.com');
  await adopt(hub, [a, newEnvoy('m2.dc1.example.com')]);
  const c = await session.envoy(a);
  await checkin(c, a);
  const run = makeRun(a.hostname, { compliant: false });
  await report(c, a, run);
  await report(c, a, run);
  await checkin(c, { ...a, epoch: 0 });
  await envoyConnect(session.f.spoke, 'x.example.com', generateKeyPair()).catch(() => undefined);
  await hub.request({ type: 'stats', term: 0 }).catch(() => undefined);
});

/** Node's default metrics (process_*, nodejs_*) carry names promtool's linter dislikes; ours must be clean. */
const DEFAULT_METRIC = /^axle_spoke_(process_|nodejs_)/;

describe('spoke: HTTP endpoints', () => {
  it('/metrics passes promtool check metrics apart from Node default-metric lint', async () => {
    const res = await fetch(`http://${session.f.spoke.addr}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^axle_spoke_envoys 2$/m);
    expect(text).toMatch(/^axle_spoke_envoys_connected 1$/m);
    expect(text).toMatch(/^axle_spoke_envoys_by_compliance\{state="noncompliant"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_envoys_by_compliance\{state="unknown"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_checkins_total 1$/m);
    expect(text).toMatch(/^axle_spoke_reports_total\{result="stored"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_reports_total\{result="duplicate"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_redirects_total\{reason="stale_epoch"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_refusals_total\{reason="unknown_key"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_hub_requests_total\{type="stats",result="E_STALE_TERM"\} 1$/m);
    expect(text).toMatch(/^axle_spoke_term 1$/m);

    const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(out.error).toBeUndefined();
    // promtool exits 3 for lint findings only, 1 for a malformed exposition.
    expect([0, 3]).toContain(out.status);
    const findings = `${out.stdout}\n${out.stderr}`
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const ours = findings.filter((l) => !DEFAULT_METRIC.test(l));
    expect(ours).toEqual([]);
  });

  it('/healthz and /readyz answer, unknown routes are 404', async () => {
    const h = await fetch(`http://${session.f.spoke.addr}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ ok: true, spokeId: 'dc1' });
    const r = await fetch(`http://${session.f.spoke.addr}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ ready: true, envoys: 2 });
    expect((await fetch(`http://${session.f.spoke.addr}/nope`)).status).toBe(404);
  });
});
