import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AxleServer,
  ErrorCode,
  Link,
  generateKeyPair,
  isAxleError,
  type Connection,
  type LinkOptions,
} from '../src/index.js';
import { waitFor } from '@axle/testkit';

const serverKey = generateKeyPair();
const clientKey = generateKeyPair();
const PROBE = { type: 'probe', term: 1 } as const;

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A signed server on 127.0.0.1; `port` 0 the first time, the same port again to "restart" it. */
async function server(port = 0, key = serverKey) {
  const conns: Connection[] = [];
  const s = new AxleServer({
    host: '127.0.0.1',
    port,
    id: 'srv',
    keyPair: key,
    authenticate: () => ({ role: 'hub' }),
    onConnection: (conn) => {
      conns.push(conn);
      conn.attach({ onRequest: (m) => (m.type === 'stats' ? new Promise(() => undefined) : { type: 'ok' }) });
    },
  });
  const a = await s.listen();
  cleanup.push(() => s.close(0));
  return { s, conns, port: a.port, addr: `127.0.0.1:${a.port}` };
}

function link(addrs: string[], extra: Partial<LinkOptions> = {}): Link {
  const l = new Link({
    name: 'test server',
    addrs,
    id: 'client',
    role: 'hub',
    keyPair: clientKey,
    serverKey: serverKey.publicKey,
    ca: () => undefined,
    ...extra,
  });
  cleanup.push(() => l.close());
  return l;
}

/** A port with nothing listening on it. */
async function freePort(): Promise<number> {
  const t = createServer();
  await new Promise<void>((r) => t.listen(0, '127.0.0.1', r));
  const { port } = t.address() as { port: number };
  await new Promise((r) => t.close(r));
  return port;
}

describe('Link', () => {
  it('dials on first use, shares one dial between callers and attaches handlers before any frame', async () => {
    const srv = await server();
    const asked: string[] = [];
    const l = link([srv.addr], {
      handlers: {
        onRequest: (m) => {
          asked.push(m.type);
          return { type: 'ok' };
        },
      },
    });
    expect(l.connected).toBe(false);
    expect(srv.conns).toHaveLength(0);
    const [a, b] = await Promise.all([l.request(PROBE, 2000, 'ok'), l.request(PROBE, 2000)]);
    expect([a.type, b.type]).toEqual(['ok', 'ok']);
    expect(srv.conns).toHaveLength(1);
    expect(l.connected).toBe(true);
    // The server asks the client: the handler given at construction answers.
    const reply = await (srv.conns[0] as Connection).request(PROBE, 2000);
    expect(reply.type).toBe('ok');
    expect(asked).toEqual(['probe']);
  });

  it('redials on the next use after the server restarts', async () => {
    const srv = await server();
    const l = link([srv.addr]);
    await l.request(PROBE, 2000, 'ok');
    await srv.s.close(0);
    await waitFor(() => !l.connected, { what: 'the link to notice the close' });
    const down = await l.request(PROBE, 2000).catch((e: unknown) => e);
    expect(isAxleError(down, ErrorCode.UNREACHABLE)).toBe(true);
    const again = await server(srv.port);
    await l.request(PROBE, 2000, 'ok');
    expect(again.conns).toHaveLength(1);
  });

  it('refuses a server whose key is not the pinned one', async () => {
    const other = await server(0, generateKeyPair());
    const l = link([other.addr]);
    const e = await l.request(PROBE, 2000).catch((x: unknown) => x);
    expect(isAxleError(e, ErrorCode.UNTRUSTED)).toBe(true);
  });

  it('rejects a request the server never answers, and a handshake that never completes, with E_TIMEOUT', async () => {
    const srv = await server();
    const l = link([srv.addr]);
    const e = await l.request({ type: 'stats', term: 1 }, 150).catch((x: unknown) => x);
    expect(isAxleError(e, ErrorCode.TIMEOUT)).toBe(true);
    // A TCP listener that accepts and says nothing: the dial times out within the caller's budget.
    const sockets: Socket[] = [];
    const mute: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    cleanup.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => mute.close(r));
    });
    const m = link([`127.0.0.1:${(mute.address() as { port: number }).port}`]);
    const t = await m.connection(150).catch((x: unknown) => x);
    // The caller's deadline and the handshake's own (the same budget) race; either names it.
    expect([ErrorCode.TIMEOUT, ErrorCode.HANDSHAKE_TIMEOUT]).toContain((t as { code?: string }).code);
    expect((t as Error).message).toMatch(/did not complete within 150 ms|did not complete the handshake within 150 ms/);
  });

  it('kept open: backs off exponentially while the server is down and reconnects when it is back', async () => {
    const port = await freePort();
    const l = link([`127.0.0.1:${port}`]);
    const retries: { attempt: number; delay: number }[] = [];
    l.on('retry', (_addr, attempt, delay) => retries.push({ attempt, delay }));
    let connects = 0;
    l.on('connected', () => connects++);
    l.start({ initialBackoffMs: 5, maxBackoffMs: 40, random: () => 0.999 });
    await waitFor(() => retries.length >= 6, { what: 'six retries' });
    const first = retries.slice(0, 6);
    expect(first.map((r) => r.attempt)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(first.map((r) => Math.round(r.delay / 0.999))).toEqual([5, 10, 20, 40, 40, 40]);
    const srv = await server(port);
    await waitFor(() => connects === 1 && l.connected, { what: 'the link to reconnect' });
    expect(srv.conns).toHaveLength(1);
    // A server restart: the link notices the close and comes back on its own.
    await srv.s.close(0);
    await waitFor(() => !l.connected, { what: 'the drop' });
    const again = await server(port);
    await waitFor(() => connects === 2 && l.connected, { what: 'a second connection' });
    expect(again.conns).toHaveLength(1);
    // Connected, the connect-failure count started over: a drop waits by the count of short-lived
    // connections in a row (0 or 1 here, by how long this one lived), never by the six failures before.
    const n = retries.length;
    await again.s.close(0);
    await waitFor(() => retries.length > n, { what: 'a retry after the second drop' });
    expect(retries[n]?.attempt).toBeLessThanOrEqual(1);
  });

  it('close() stops reconnecting and leaves nothing dialling', async () => {
    const port = await freePort();
    const l = link([`127.0.0.1:${port}`]);
    let errors = 0;
    l.on('connect_error', () => errors++);
    l.start({ initialBackoffMs: 5, maxBackoffMs: 10 });
    await waitFor(() => errors >= 2, { what: 'two failed dials' });
    await l.close();
    const after = errors;
    const srv = await server(port);
    // Longer than several backoff windows: had the loop survived, it would have connected.
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toBe(after);
    expect(srv.conns).toHaveLength(0);
    const e = await l.request(PROBE, 500).catch((x: unknown) => x);
    expect(isAxleError(e, ErrorCode.CLOSED)).toBe(true);
    expect(() => l.start()).toThrow(/closed/);
  });

  it('a dropped connection kept open counts as a failure and moves to the next address after three', async () => {
    const [a, b] = [await server(), await server()];
    const l = link([a.addr, b.addr]);
    const moves: string[] = [];
    l.on('failover', (_from, to) => moves.push(to));
    l.start({ initialBackoffMs: 5, maxBackoffMs: 10 });
    for (let i = 1; i <= 3; i++) {
      await waitFor(() => l.current() && a.conns.length === i, { what: `connection ${i} to the first server` });
      l.drop(new Error('status push failed'));
    }
    await waitFor(() => l.current() && b.conns.length === 1, { what: 'the second server' });
    expect(moves).toEqual([b.addr]);
    expect(l.currentAddr).toBe(b.addr);
  });
});
