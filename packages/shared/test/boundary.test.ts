import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AxleServer, type Connection, type Message, connectPeer, createLogger, generateKeyPair } from '../src/index.js';
import { rawRequest } from '../../../test/support/raw-http.js';

/**
 * The request boundary: whatever a handler throws, now or later, costs that request (or that
 * message) and leaves the server serving. The process-level handlers are never reached; vitest
 * would fail the file on an uncaught exception or unhandled rejection if one were.
 */
const serverKey = generateKeyPair();
const clientKey = generateKeyPair();
let server: AxleServer | undefined;
afterEach(async () => {
  await server?.close(100);
  server = undefined;
});

async function start(headersTimeoutMs?: number): Promise<{ addr: string; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({
    daemon: 'test',
    id: 'boundary',
    destination: { write: (s: string) => logs.push(JSON.parse(s) as Record<string, unknown>) } as never,
  });
  server = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'boundary',
    keyPair: serverKey,
    log,
    authenticate: () => ({ role: 'envoy' }),
    ...(headersTimeoutMs !== undefined ? { httpLimits: { headersTimeoutMs } } : {}),
    onConnection: (conn: Connection) => {
      const onRequest = (msg: Message): Message | Promise<Message> => {
        if (msg.type === 'stats') throw new TypeError('handler bug');
        if (msg.type === 'probe') return Promise.reject(new RangeError('async handler bug'));
        if (msg.type === 'list_runs') {
          // A reply over the frame limit: encoding fails, so the request fails, not the connection.
          const run = { hostname: 'a.example.com', results: [], counts: { ok: 0, changed: 0, failed: 0, drift: 0 } };
          return {
            type: 'run_list',
            runs: Array.from({ length: 1000 }, (_, i) => ({ ...run, id: `r${i}${'x'.repeat(2000)}` })),
          } as never;
        }
        return { type: 'ok' };
      };
      const onEvent = () => {
        throw new Error('event handler bug');
      };
      conn.attach({ onRequest, onEvent });
    },
    http: (req, res) => {
      if (req.url === '/sync') throw new TypeError('sync bug');
      if (req.url === '/async') return Promise.reject(new Error('async bug'));
      if (req.url === '/uri') throw new URIError('URI malformed');
      res.end('fine');
      return undefined;
    },
  });
  const { port } = await server.listen();
  return { addr: `127.0.0.1:${port}`, logs };
}

describe('the request boundary', () => {
  it('turns an HTTP handler that throws into one 500 (logged with the request) or 400, and keeps serving', async () => {
    const { addr, logs } = await start();
    const get = (path: string) => rawRequest(addr, `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: req-42\r\n\r\n`);
    const sync = await get('/sync');
    expect(sync.status).toBe(500);
    expect(sync.body).toMatch(/"code":"E_INTERNAL"/);
    // Internals stay in the log, not in the answer.
    expect(sync.body).not.toMatch(/sync bug/);
    expect((await get('/async')).status).toBe(500);
    expect((await get('/uri')).status).toBe(400);
    expect((await get('/ok')).body).toBe('fine');
    const failed = logs.filter((l) => l.msg === 'request failed');
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ requestId: 'req-42', method: 'GET', path: '/sync', err: 'sync bug' });
  });

  it('answers headers that trickle in past the headers timeout with 408, then closes', async () => {
    const { addr } = await start(500);
    const [host, port] = addr.split(':');
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect({ host: host!, port: Number(port) }, () => s.write('GET /ok HTTP/1.1\r\nHost: x\r\n'));
      // A header line every 100 ms keeps the socket from ever being idle: only the headers timeout ends it.
      const drip = setInterval(() => s.writable && s.write(`X-Slow: ${Date.now()}\r\n`), 100);
      const give = () => {
        clearInterval(drip);
        resolve(got);
      };
      const cap = setTimeout(() => {
        s.destroy();
        give();
      }, 10_000);
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(cap);
        give();
      });
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('answers a throwing, rejecting or oversized message handler with an error and keeps the connection', async () => {
    const { addr, logs } = await start();
    const c = await connectPeer(addr, { id: 'a.example.com', role: 'envoy', keyPair: clientKey, keepaliveMs: 0 });
    try {
      await expect(c.request({ type: 'stats', term: 1 })).rejects.toMatchObject({ code: 'E_INTERNAL' });
      await expect(c.request({ type: 'probe', term: 1 })).rejects.toMatchObject({ code: 'E_INTERNAL' });
      await expect(c.request({ type: 'list_runs', term: 1, limit: 1000 })).rejects.toMatchObject({
        code: 'E_FRAME_TOO_LARGE',
      });
      c.send({ type: 'run_now', reason: 'event handlers throw too' });
      expect(await c.request({ type: 'ok' })).toEqual({ type: 'ok' });
      expect(c.isOpen).toBe(true);
    } finally {
      c.close();
    }
    const types = logs.filter((l) => l.msg === 'message handler failed').map((l) => l.type);
    expect(types).toEqual(expect.arrayContaining(['stats', 'probe', 'list_runs', 'run_now']));
  });
});
