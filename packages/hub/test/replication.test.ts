import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, generateKeyPair, toBase64 } from '@axle/shared';
import { hubConfigFrom, type Hub } from '@axle/hub';
import { api, Bag, enroll, envoy, waitFor, directory } from '@axle/testkit';
import {
  adminToken,
  hubInProcess,
  makeCluster,
  spokeInProcess,
  tokenIds,
  view,
  type Node,
  waitPrimary,
} from './replication/support.js';

const bag = new Bag();
afterEach(() => bag.run());

async function token(n: Node): Promise<string> {
  const r = await api(n, 'POST', '/api/v1/tokens', { token: adminToken(n), body: {} });
  if (r.status !== 200) throw new Error(`token create at ${n.id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.secret as string;
}

describe('replicated hubs (in process)', () => {
  it('elects one primary, replicates every acknowledged change, refuses writes at standbys with 421 naming the primary', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb', 'hc'], spokes: ['dc1'], leaseMs: 1000 });
    await spokeInProcess(bag, c.spoke('dc1'));
    for (const n of c.hubs) await hubInProcess(bag, n);
    const p = await waitPrimary(c.hubs);
    const standbys = c.hubs.filter((n) => n !== p);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await api(p, 'POST', '/api/v1/tokens', { token: adminToken(p), body: { note: `t${i}` } });
      expect(r.status).toBe(200);
      ids.push(r.body.token.id as string);
    }
    // min_acks defaults to 1 here: at least one standby held each token when it was acknowledged.
    await waitFor(async () => {
      const held = await Promise.all(standbys.map((s) => tokenIds(s)));
      return held.every((t) => ids.every((id) => t.has(id)));
    });
    await waitFor(async () => {
      const primarySeq = (await view(p))!.logSeq;
      const seqs = await Promise.all(standbys.map(async (s) => (await view(s))?.logSeq));
      return seqs.every((seq) => seq === primarySeq);
    });

    const w = await api(standbys[0]!, 'POST', '/api/v1/tokens', { token: adminToken(standbys[0]!), body: {} });
    expect(w.status).toBe(421);
    expect(w.body.error.code).toBe(ErrorCode.NOT_PRIMARY);
    expect(w.body.error.primary).toBe(p.addr);
    // Reads are served by the standby, with its own admin token.
    const list = await api(standbys[0]!, 'GET', '/api/v1/tokens', { token: adminToken(standbys[0]!) });
    expect(list.status).toBe(200);
    expect(list.body.tokens.length).toBe(5);
    // Each hub's admin token reaches the primary's store, so the CLI can follow a 421 with it.
    await waitFor(async () => (await api(p, 'GET', '/api/v1/hub', { token: adminToken(standbys[0]!) })).status === 200);

    const e = envoy('web1.dc1.example.com');
    const err = await enroll(standbys[1]!.addr, e, 'axj_x').catch(
      (x: unknown) => x as { code: string; message: string },
    );
    expect((err as { code: string }).code).toBe(ErrorCode.NOT_PRIMARY);
    expect((err as { message: string }).message).toContain(p.addr);

    const m = await api(p, 'GET', '/metrics');
    expect(m.body).toMatch(/axle_hub_role\{role="primary"\} 1/);
    expect(m.body).toMatch(/axle_hub_log_position \d+/);
    expect(m.body).toMatch(/axle_hub_replication_lag\{peer="[a-z]+"\} \d+/);
    const v = await api(p, 'GET', '/api/v1/hub', { token: adminToken(p) });
    expect(v.body.role).toBe('primary');
    expect(v.body.replication.hubs.map((h: { role: string }) => h.role).sort()).toEqual(['standby', 'standby']);
  });

  it('promotes a standby when the primary stops; acknowledged changes are there; a standby started empty catches up from a snapshot', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb', 'hc'], spokes: ['dc1'], leaseMs: 1000 });
    await spokeInProcess(bag, c.spoke('dc1'));
    const hubs: Record<string, Hub> = {};
    for (const n of c.hubs.slice(0, 2)) hubs[n.id] = await hubInProcess(bag, n);
    const p = await waitPrimary(c.hubs.slice(0, 2));
    const first = (await view(p))!.term;
    const secrets: string[] = [];
    for (let i = 0; i < 3; i++) secrets.push(await token(p));
    const e1 = envoy('a1.dc1.example.com');
    const a1 = await enroll(p.addr, e1, secrets[0]!);
    expect(a1.status).toBe('assigned');

    // The third hub starts with nothing and catches up from a snapshot and the tail.
    hubs.hc = await hubInProcess(bag, c.hub('hc'));
    const hc = c.hub('hc');
    await waitFor(
      async () =>
        (await view(hc))?.logSeq === (await view(p))!.logSeq &&
        (await directory({ addr: hc.addr, adminToken: adminToken(hc) })).has(e1.hostname),
    );

    await hubs[p.id]!.stop();
    const rest = c.hubs.filter((n) => n !== p);
    const q = await waitPrimary(rest);
    const after = (await view(q))!;
    expect(after.term).toBeGreaterThan(first);
    expect((await directory(hubs[q.id]!)).get(e1.hostname)?.spokeId).toBe('dc1');
    // A token made on the old primary enrolls through the new one.
    const a2 = await enroll(q.addr, envoy('a2.dc1.example.com'), secrets[1]!);
    expect(a2.status).toBe('assigned');
    expect(a2.term).toBe(after.term);
  });
});

describe('replication config', () => {
  const base = (extra: Record<string, unknown>) => ({
    server_id: 'ha',
    insecure_transport: true,
    listen: '127.0.0.1:0',
    data_dir: '/tmp/x',
    spanner: { role: 'hub', peers: [{ id: 'hb', addr: '127.0.0.1:1', pubkey: toBase64(generateKeyPair().publicKey) }] },
    ...extra,
  });

  it('refuses an election timeout not longer than the lease, and min_acks above the peers', () => {
    expect(() => hubConfigFrom(base({ replication: { lease: '2s', election_timeout: '1s' } }))).toThrow(
      /replication\.election_timeout: must be longer than replication\.lease/,
    );
    expect(() => hubConfigFrom(base({ replication: { min_acks: 2 } }))).toThrow(
      /replication\.min_acks: is 2, but only 1 peer/,
    );
    expect(() => hubConfigFrom(base({ replication: { lease: 'soon' } }))).toThrow(/replication\.lease/);
  });

  it("refuses a peer with this hub's own id", () => {
    const c = base({});
    (c.spanner as { peers: { id: string }[] }).peers[0]!.id = 'ha';
    expect(() => hubConfigFrom(c)).toThrow(/spanner\.peers\[0\]\.id: "ha" is this hub's server_id/);
  });
});
