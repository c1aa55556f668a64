import { once } from 'node:events';
import net, { type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHostPort } from '../src/config.js';
import { AxleError, ErrorCode } from '../src/errors.js';
import { FailoverClient, type FailoverOptions } from '../src/failover.js';

interface TcpConn {
  socket: Socket;
  closed: Promise<void>;
  close(): void;
}

/** A real TCP connect, as the daemons' connect would be minus the handshake. */
function tcpConnect(addr: string, signal: AbortSignal): Promise<TcpConn> {
  const { host, port } = parseHostPort(addr);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, signal });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      // After connecting, a reset shows up as 'close', which is what the client watches.
      socket.on('error', () => undefined);
      resolve({ socket, closed, close: () => socket.destroy() });
    });
  });
}

interface Listener {
  addr: string;
  port: number;
  sockets: Set<Socket>;
  server: Server;
}

const servers: Listener[] = [];
const clients: FailoverClient<TcpConn>[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await Promise.all(
    servers.splice(0).map(async (s) => {
      for (const sock of s.sockets) sock.destroy();
      await new Promise<void>((r) => s.server.close(() => r()));
    }),
  );
});

async function up(port = 0): Promise<Listener> {
  const server = net.createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const bound = (server.address() as net.AddressInfo).port;
  const l = { addr: `127.0.0.1:${bound}`, port: bound, sockets, server };
  servers.push(l);
  return l;
}

/** An address nothing listens on: bind a port, then let it go. */
async function down(): Promise<string> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `127.0.0.1:${port}`;
}

type Event =
  | { e: 'connected'; addr: string }
  | { e: 'disconnected'; addr: string; reason: unknown }
  | { e: 'connect_error'; addr: string; err: AxleError }
  | { e: 'failover'; from: string; to: string; failures: number }
  | { e: 'retry'; addr: string; attempt: number; delay: number };

function client(opts: Partial<FailoverOptions<TcpConn>> & { addrs: string[] }): {
  c: FailoverClient<TcpConn>;
  log: Event[];
} {
  const c = new FailoverClient<TcpConn>({
    connect: tcpConnect,
    initialBackoffMs: 5,
    maxBackoffMs: 40,
    connectTimeoutMs: 5_000,
    ...opts,
  });
  clients.push(c);
  const log: Event[] = [];
  c.on('connected', (_conn, addr) => log.push({ e: 'connected', addr }));
  c.on('disconnected', (addr, reason) => log.push({ e: 'disconnected', addr, reason }));
  c.on('connect_error', (addr, err) => log.push({ e: 'connect_error', addr, err }));
  c.on('failover', (from, to, failures) => log.push({ e: 'failover', from, to, failures }));
  c.on('retry', (addr, attempt, delay) => log.push({ e: 'retry', addr, attempt, delay }));
  return { c, log };
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const count = (log: Event[], e: Event['e']): number => log.filter((x) => x.e === e).length;
const withoutRetries = (log: Event[]): Event[] => log.filter((x) => x.e !== 'retry');
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('FailoverClient', () => {
  it('refuses an empty or malformed address list', () => {
    expect(() => new FailoverClient<TcpConn>({ addrs: [], connect: tcpConnect })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID }) as Error,
    );
    expect(() => new FailoverClient<TcpConn>({ addrs: ['no-port'], connect: tcpConnect })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID }) as Error,
    );
  });

  it('moves to the next address only after exactly 3 consecutive failures', async () => {
    const [a, b] = [await down(), await up()];
    const { c, log } = client({ addrs: [a, b.addr] });
    c.start();
    const conn = await c.waitConnected(5_000);
    expect(conn.socket.remotePort).toBe(b.port);
    expect(c.current).toBe(conn);
    expect(c.currentAddr).toBe(b.addr);
    expect(withoutRetries(log).map((x) => x.e)).toEqual([
      'connect_error',
      'connect_error',
      'connect_error',
      'failover',
      'connected',
    ]);
    expect(log.find((x) => x.e === 'failover')).toEqual({ e: 'failover', from: a, to: b.addr, failures: 3 });
    for (const x of log) if (x.e === 'connect_error') expect([x.addr, x.err.code]).toEqual([a, ErrorCode.UNREACHABLE]);
  });

  it('with the first two addresses down, ends connected to the third', async () => {
    const [a, b, l] = [await down(), await down(), await up()];
    const { c, log } = client({ addrs: [a, b, l.addr] });
    c.start();
    await c.waitConnected(5_000);
    expect(c.currentAddr).toBe(l.addr);
    expect(log.filter((x) => x.e === 'failover')).toEqual([
      { e: 'failover', from: a, to: b, failures: 3 },
      { e: 'failover', from: b, to: l.addr, failures: 3 },
    ]);
    expect(count(log, 'connect_error')).toBe(6);
  });

  it('cycles through every address and wraps round', async () => {
    const addrs = [await down(), await down(), await down()];
    const { c, log } = client({ addrs, maxBackoffMs: 10 });
    c.start();
    await until(() => count(log, 'failover') >= 4, 'four failovers');
    const hops = log.flatMap((x) => (x.e === 'failover' ? [[x.from, x.to]] : [])).slice(0, 4);
    expect(hops).toEqual([
      [addrs[0], addrs[1]],
      [addrs[1], addrs[2]],
      [addrs[2], addrs[0]],
      [addrs[0], addrs[1]],
    ]);
    expect(count(log, 'connected')).toBe(0);
  });

  it('reconnects after the server closes the connection, without counting a failure', async () => {
    const l = await up();
    const { c, log } = client({ addrs: [l.addr, await down()] });
    c.start();
    const first = await c.waitConnected(5_000);
    const again = once(c, 'connected');
    await until(() => l.sockets.size === 1, 'server side of the connection');
    for (const s of l.sockets) s.destroy();
    const [second] = (await again) as [TcpConn, string];
    expect(second).not.toBe(first);
    expect(c.current).toBe(second);
    expect(withoutRetries(log).map((x) => x.e)).toEqual(['connected', 'disconnected', 'connected']);
    // A dropped connection retries from the shortest backoff, not from where failures left it.
    expect(log.filter((x) => x.e === 'retry').map((x) => (x.e === 'retry' ? x.attempt : -1))).toEqual([0]);
  });

  it('recovers when a down address comes up', async () => {
    const [a, b] = [await down(), await down()];
    const { c, log } = client({ addrs: [a, b], maxBackoffMs: 10 });
    c.start();
    await until(
      () => log.some((x) => x.e === 'failover' && x.from === b && x.to === a),
      'wrap back to the first address',
    );
    await up(parseHostPort(a).port);
    await c.waitConnected(5_000);
    expect(c.currentAddr).toBe(a);
  });

  it('surfaces an unresolvable host name as E_UNRESOLVABLE and moves on', async () => {
    const l = await up();
    const bad = 'does-not-exist.invalid:1';
    const { c, log } = client({ addrs: [bad, l.addr] });
    c.start();
    await c.waitConnected(10_000);
    const errors = log.flatMap((x) => (x.e === 'connect_error' ? [x] : []));
    expect(errors).toHaveLength(3);
    for (const x of errors) {
      expect(x.addr).toBe(bad);
      expect(x.err.code).toBe(ErrorCode.UNRESOLVABLE);
      expect(x.err.message).toContain(bad);
    }
    expect(c.currentAddr).toBe(l.addr);
  });

  it('treats EAI_AGAIN and an E_UNRESOLVABLE AxleError from connect as unresolvable', async () => {
    const thrown: unknown[] = [
      Object.assign(new Error('getaddrinfo EAI_AGAIN hub.example'), { code: 'EAI_AGAIN' }),
      new AxleError(ErrorCode.UNRESOLVABLE, 'no such host'),
    ];
    const { c, log } = client({
      addrs: ['hub.example:1530'],
      connect: () => Promise.reject(thrown.shift() ?? new Error('refused')),
    });
    c.start();
    await until(() => count(log, 'connect_error') >= 3, 'three connect errors');
    const codes = log.flatMap((x) => (x.e === 'connect_error' ? [x.err.code] : []));
    expect(codes.slice(0, 3)).toEqual([ErrorCode.UNRESOLVABLE, ErrorCode.UNRESOLVABLE, ErrorCode.UNREACHABLE]);
  });

  it('backs off exponentially with full jitter, capped', async () => {
    const script = [0.5, 0.25, 1, 0.75, 0.1, 0.9, 0.5];
    let i = 0;
    const random = (): number => script[i++ % script.length] as number;
    const [a, b] = [await down(), await down()];
    const { c, log } = client({ addrs: [a, b], initialBackoffMs: 4, maxBackoffMs: 20, random });
    c.start();
    await until(() => count(log, 'retry') >= 7, 'seven retries');
    await c.stop();
    const retries = log.flatMap((x) => (x.e === 'retry' ? [x] : [])).slice(0, 7);
    const caps = [4, 8, 16, 20, 20, 20, 20];
    expect(retries.map((r) => r.attempt)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    retries.forEach((r, k) => expect(r.delay).toBeCloseTo((script[k] as number) * (caps[k] as number), 9));
    // The third failure switched address, so the third wait is already spent on the next one.
    expect(retries.map((r) => r.addr)).toEqual([a, a, b, b, b, a, a]);
  });

  it('counts reported request failures toward switching and reconnects each time', async () => {
    const [l1, l2] = [await up(), await up()];
    const { c, log } = client({ addrs: [l1.addr, l2.addr] });
    c.start();
    await c.waitConnected(5_000);
    const report = async (): Promise<string> => {
      const next = once(c, 'connected');
      c.reportFailure(new AxleError(ErrorCode.TIMEOUT, 'status push timed out'));
      expect(c.current).toBeUndefined();
      return ((await next) as [TcpConn, string])[1];
    };
    expect(await report()).toBe(l1.addr);
    c.reportSuccess();
    expect(await report()).toBe(l1.addr);
    expect(await report()).toBe(l1.addr);
    expect(await report()).toBe(l2.addr);
    expect(log.filter((x) => x.e === 'failover')).toEqual([{ e: 'failover', from: l1.addr, to: l2.addr, failures: 3 }]);
    const reasons = log.flatMap((x) => (x.e === 'disconnected' ? [x.reason] : []));
    expect(reasons).toHaveLength(4);
    for (const r of reasons) expect((r as AxleError).message).toBe('status push timed out');
  });

  it('waitConnected times out with E_TIMEOUT and rejects with E_CLOSED after stop', async () => {
    const { c } = client({ addrs: [await down()] });
    c.start();
    await expect(c.waitConnected(30)).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    const pending = c.waitConnected(5_000);
    await c.stop();
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.CLOSED });
    await expect(c.waitConnected(10)).rejects.toMatchObject({ code: ErrorCode.CLOSED });
  });

  it('stop() during a pending connect aborts it and leaves no timers behind', async () => {
    const before = timers();
    const signals: AbortSignal[] = [];
    const { c, log } = client({
      addrs: ['127.0.0.1:1', '127.0.0.1:2'],
      // One honours the signal; the other never settles, which stop() must survive too.
      connect: (_addr, signal) => {
        signals.push(signal);
        return new Promise<TcpConn>((_resolve, reject) => {
          if (signals.length === 1) signal.addEventListener('abort', () => reject(signal.reason as Error));
        });
      },
    });
    c.start();
    await until(() => signals.length === 1, 'connect to be called');
    await c.stop();
    expect(signals[0]?.aborted).toBe(true);
    expect(log).toEqual([]);
    expect(timers()).toBe(before);

    const stuck = client({ addrs: ['127.0.0.1:1'], connect: () => new Promise<TcpConn>(() => undefined) }).c;
    stuck.start();
    await stuck.stop();
    expect(timers()).toBe(before);
  });

  it('stop() while connected closes the connection; stop() while backing off clears the timer', async () => {
    const before = timers();
    const l = await up();
    const { c } = client({ addrs: [l.addr] });
    c.start();
    const conn = await c.waitConnected(5_000);
    await c.stop();
    await conn.closed;
    expect(c.current).toBeUndefined();

    const { c: slow, log } = client({
      addrs: [await down()],
      initialBackoffMs: 60_000,
      maxBackoffMs: 60_000,
      random: () => 1,
    });
    slow.start();
    await until(() => count(log, 'retry') === 1, 'the first backoff');
    await slow.stop();
    expect(timers()).toBe(before);
    expect(() => slow.start()).toThrow(expect.objectContaining({ code: ErrorCode.CLOSED }) as Error);
  });
});
