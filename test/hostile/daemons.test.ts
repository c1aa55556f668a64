/**
 * One regression test per class of hostile input from the field report (issue 14), each against
 * the built hub and spoke running as child processes, so "it crashed" shows as a process that
 * exited rather than as an exception inside the test.
 */
import { linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPeer, generateKeyPair, isAxleError, type KeyPair, type MessageOf, type Run } from '@axle/shared';
import { type ApiError, Fleet, HubApi, tempDir, waitFor } from '@axle/testkit';
import { healthz, idleSockets, rawRequest } from '../support/raw-http.js';

const t = tempDir('axle-hostile-');
let f: Fleet;
let admin: HubApi;
let hubAddr: string;
let joinToken: string;

beforeAll(async () => {
  f = await Fleet.start({
    dir: t.dir,
    hubs: ['hub-a'],
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'] },
      { id: 'dc2', patterns: ['*.dc2.*'] },
    ],
    // Small caps so a test can reach them, and a small query budget so one glob can exceed it.
    spokeConfig: {
      limits: {
        max_handshakes_per_ip: 16,
        max_http_connections_per_ip: 8,
        http_headers_timeout: '1s',
        http_request_timeout: '2s',
        query_steps: 1000,
      },
    },
    hubConfig: { limits: { max_http_connections_per_ip: 32 }, api: { max_concurrent_queries: 4 } },
  });
  admin = await f.api();
  hubAddr = admin.addr;
  joinToken = (await admin.post<{ secret: string }>('/tokens', { note: 'hostile' })).secret;
}, 120_000);

afterAll(async () => {
  await f?.stop();
  t.cleanup();
});

/** Every daemon is still running and answers /healthz within a second. */
async function allAlive(): Promise<void> {
  for (const d of [...f.hubs.map((h) => h.daemon), ...f.spokes.map((s) => s.daemon)]) {
    expect(d?.proc.exitCode).toBeNull();
    expect(d?.proc.signalCode).toBeNull();
    expect(await healthz(d!.addr, 1000)).toBeDefined();
  }
}

async function enroll(hostname: string, key: KeyPair, token = joinToken): Promise<MessageOf<'assignment'>> {
  const c = await connectPeer(hubAddr, { id: hostname, role: 'envoy', keyPair: key, keepaliveMs: 0 });
  try {
    return await c.request({ type: 'enroll', hostname, token }, 10_000, 'assignment');
  } finally {
    c.close();
  }
}

function spokeAddr(id: string): string {
  return f.spoke(id).addr;
}

function bigRun(hostname: string, bytes: number, i: number): Run {
  const per = 4000;
  const n = Math.ceil(bytes / (per + 80));
  return {
    id: `hostile-run-${i}-${Math.random().toString(36).slice(2, 10)}`,
    hostname,
    startedAt: Date.now() - 1000 + i,
    finishedAt: Date.now() + i,
    configVersion: 0,
    mode: 'enforce',
    trigger: 'schedule',
    compliant: true,
    counts: { ok: n, changed: 0, failed: 0, drift: 0 },
    results: Array.from({ length: n }, (_, k) => ({
      resource: `file:/etc/app/${k}.conf`,
      policy: 'base',
      status: 'ok' as const,
      message: 'x'.repeat(per),
      durationMs: 1,
    })),
  };
}

describe('one request cannot end a daemon', () => {
  it('answers broken escapes and unparseable targets with 4xx, before any auth, and stays up', async () => {
    const hub = f.hubs[0]!.daemon!.addr;
    const bad = await rawRequest(hub, 'GET /api/v1/envoys/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatch(/not valid percent-encoding/);
    for (const target of ['//[', '//x:99999/', '*', 'http://[::1', '/%', `/${'a'.repeat(9000)}`]) {
      for (const addr of [hub, spokeAddr('dc1')]) {
        const r = await rawRequest(addr, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
        expect(r.status, `${target} at ${addr}`).toBeGreaterThanOrEqual(400);
        expect(r.status, `${target} at ${addr}`).toBeLessThan(500);
      }
    }
    await allAlive();
  });
});

describe('replies are bounded by construction', () => {
  it('pages a dozen ~125 KB reports instead of crashing the spoke, and refuses a report over the limit', async () => {
    const host = 'big1.dc1.example.com';
    const key = generateKeyPair();
    const a = await enroll(host, key);
    const conn = await connectPeer(a.target!.addr, { id: host, role: 'envoy', keyPair: key, keepaliveMs: 0 });
    try {
      for (let i = 0; i < 12; i++) {
        const r = await conn.request({ type: 'report', hostname: host, epoch: a.epoch, run: bigRun(host, 125_000, i) });
        expect(r.type).toBe('ack');
      }
      // Over the spoke's 256 KiB limit: refused where it arrives, nothing stored.
      const tooBig = await conn
        .request({ type: 'report', hostname: host, epoch: a.epoch, run: bigRun(host, 300_000, 99) })
        .catch((e: unknown) => e);
      expect(isAxleError(tooBig)).toBe(true);
      expect((tooBig as Error).message).toMatch(/over this spoke's report limit of 262144/);
    } finally {
      conn.close();
    }
    const ids = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: { detail: { runs: { id: string }[]; runsCursor: string | null } } = await admin.get(
        `/envoys/${host}?runs=1000${cursor ? `&runs_cursor=${cursor}` : ''}`,
      );
      for (const run of r.detail.runs) ids.add(run.id);
      cursor = r.detail.runsCursor;
      pages++;
    } while (cursor);
    expect(ids.size).toBe(12);
    expect(pages).toBeGreaterThan(1);
    const spoke = await admin.get<{ recentRuns: unknown[]; recentRunsCursor: string | null }>('/spokes/dc1?runs=1000');
    expect(spoke.recentRuns.length).toBeGreaterThan(0);
    expect(spoke.recentRunsCursor).not.toBeNull();
    await allAlive();
  });
});

describe('connection accounting always balances', () => {
  async function slots(addr: string): Promise<Record<string, number>> {
    const r = await rawRequest(addr, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const out: Record<string, number> = {};
    for (const m of r.body.matchAll(/^axle_spoke_connection_slots\{state="(\w+)"\} (\d+)/gm)) {
      out[m[1] as string] = Number(m[2]);
    }
    return out;
  }

  it('gives back the slot of every upgrade ws refuses, so the address is never locked out', async () => {
    const addr = spokeAddr('dc2');
    const upgrades = [
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n',
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n',
      'POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ];
    // Four times the handshake cap, one after another: with a leak the last ones would be refused 429.
    for (let i = 0; i < 64; i++) {
      const r = await rawRequest(addr, upgrades[i % upgrades.length]!);
      expect(r.status, `upgrade ${i}`).not.toBe(429);
    }
    await waitFor(async () => (await slots(addr)).handshakes === 0, { what: 'handshake slots back to 0' });
    // A real hub connection still gets through.
    const hubKey = generateKeyPair();
    const refusedForKey = await connectPeer(addr, { id: 'x', role: 'hub', keyPair: hubKey, keepaliveMs: 0 }).catch(
      (e: unknown) => e,
    );
    expect((refusedForKey as { code?: string }).code).toBe('E_UNKNOWN_KEY');
    await allAlive();
  });

  it('caps idle sockets per address and closes the rest in time', async () => {
    const addr = spokeAddr('dc2');
    const { sockets, closed } = await idleSockets(addr, 200);
    // Beyond HTTP + handshake caps (8 + 16) they are dropped at once; the rest by the headers timeout.
    await waitFor(() => closed() >= 200 - 24, { timeoutMs: 5000, what: 'sockets over the cap dropped' });
    try {
      await waitFor(() => closed() === 200, { timeoutMs: 15_000, what: 'idle sockets timed out' });
    } finally {
      for (const s of sockets) s.destroy();
    }
    await waitFor(async () => {
      const s = await slots(addr);
      return s.pending === 0 && s.handshakes === 0;
    });
    await allAlive();
  });
});

describe('queries have a cost ceiling', () => {
  it('refuses an explosive glob at once and stops a costly one with a clear error', async () => {
    const boom = encodeURIComponent('{a,b}'.repeat(51));
    const e1 = await admin.get(`/envoys?match=${boom}`).catch((e: unknown) => e as ApiError);
    expect((e1 as ApiError).status).toBe(400);
    expect((e1 as ApiError).message).toMatch(/more than 64 alternatives/);
    for (let i = 0; i < 60; i++) await enroll(`node${i}.dc1.example.com`, generateKeyPair());
    const costly = encodeURIComponent('*o*o*o*o*o*o*o*o*o*o*o*o*o*o*m');
    const e2 = await admin.get(`/envoys?match=${costly}`).catch((e: unknown) => e as ApiError);
    expect((e2 as ApiError).status).toBe(422);
    expect((e2 as ApiError).code).toBe('E_QUERY_TOO_COSTLY');
    // A literal name costs a step per host: well inside the same budget.
    const cheap = await admin.get<{ items: unknown[] }>('/envoys?match=node7.dc1.example.com');
    expect(cheap.items).toHaveLength(1);
    await allAlive();
  });

  it('caps concurrent queries per token with 429, never a 5xx', async () => {
    const viewer = (await admin.post<{ secret: string }>('/api-tokens', { role: 'viewer', name: 'flood' })).secret;
    const api = new HubApi(hubAddr, viewer);
    // A stopped spoke holds each fan-out until its timeout, so the token's four slots stay taken.
    const stopped = f.spoke('dc2').daemon!.proc;
    stopped.kill('SIGSTOP');
    try {
      const started = Array.from({ length: 6 }, () =>
        api.get<{ partial: boolean }>('/envoys?limit=10').then(
          (r) => (r.partial ? 'partial' : 'full'),
          (e: ApiError) => e.status,
        ),
      );
      const outcomes = await Promise.all(started);
      expect(outcomes.filter((o) => o === 429)).toHaveLength(2);
      expect(outcomes.filter((o) => o === 'partial')).toHaveLength(4);
    } finally {
      stopped.kill('SIGCONT');
    }
    // Another token is not held up by this one.
    expect((await admin.get<{ partial: boolean }>('/envoys?limit=10')).partial).toBe(false);
  });
});

describe('one host, one identity', () => {
  it('refuses other spellings of an enrolled host at the handshake and finds it by any spelling', async () => {
    const key = generateKeyPair();
    await enroll('web1.dc1.example.com', key);
    for (const alias of ['WEB1.DC1.EXAMPLE.COM', 'web1.dc1.example.com.']) {
      const e = (await enroll(alias, generateKeyPair()).catch((x: unknown) => x)) as Error;
      expect(e.message, alias).toMatch(/not a canonical host name; connect as "web1\.dc1\.example\.com"/);
    }
    const r = await admin.get<{ directory: { hostname: string; pubkey: string } }>('/envoys/WEB1.DC1.EXAMPLE.COM.');
    expect(r.directory.hostname).toBe('web1.dc1.example.com');
    const dir = await admin.get<{ items: { hostname: string }[] }>('/directory?limit=10000');
    expect(dir.items.filter((x) => x.hostname.toLowerCase().startsWith('web1.dc1'))).toHaveLength(1);
  });
});

describe('a token binds its partition', () => {
  it('refuses an enrollment whose route lands outside the spokes the token names', async () => {
    const scoped = (
      await admin.post<{ secret: string; token: { spokes: string[] } }>('/tokens', {
        pattern: '*.dc2.*',
        spokes: ['dc2'],
      })
    ).secret;
    const e = (await enroll('web9.dc1.example.com.dc2.x', generateKeyPair(), scoped).catch((x: unknown) => x)) as Error;
    expect((e as { code?: string }).code).toBe('E_FORBIDDEN');
    expect(e.message).toMatch(
      /may enroll only into spoke dc2; "web9\.dc1\.example\.com\.dc2\.x" would go to spoke dc1/,
    );
    const ok = await enroll('web9.dc2.example.com', generateKeyPair(), scoped);
    expect(ok.target?.spokeId).toBe('dc2');
    const unknown = await admin.post('/tokens', { spokes: ['nope'] }).catch((x: unknown) => x as ApiError);
    expect((unknown as ApiError).status).toBe(404);
  });
});

describe('the hub validates before it signs', () => {
  it('refuses a config with hard links or a gzip bomb with the spokes own message, and changes nothing', async () => {
    const before = await admin.get<{ current: number }>('/config/versions');
    const links = join(t.dir, 'cfg-links');
    mkdirSync(join(links, 'policies'), { recursive: true });
    writeFileSync(join(links, 'policies', 'a.yaml'), 'resources: []\n');
    linkSync(join(links, 'policies', 'a.yaml'), join(links, 'policies', 'b.yaml'));
    const e1 = await admin.post('/config/publish', { dir: links }).catch((x: unknown) => x as ApiError);
    expect((e1 as ApiError).status).toBe(400);
    expect((e1 as ApiError).message).toMatch(/config bundle refused: entry ".*" is a Link/);
    const bomb = join(t.dir, 'cfg-bomb');
    mkdirSync(join(bomb, 'policies'), { recursive: true });
    writeFileSync(join(bomb, 'zeros.bin'), Buffer.alloc(8 * 1024 * 1024));
    const e2 = await admin.post('/config/publish', { dir: bomb }).catch((x: unknown) => x as ApiError);
    expect((e2 as ApiError).status).toBe(400);
    expect((e2 as ApiError).message).toMatch(/decompression ratio \d+:1 is over 200:1/);
    expect((await admin.get<{ current: number }>('/config/versions')).current).toBe(before.current);
    await allAlive();
  });
});
