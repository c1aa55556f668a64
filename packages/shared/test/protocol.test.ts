import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  AxleError,
  AxleServer,
  Codec,
  CloseCode,
  type Connection,
  connectPeer,
  generateKeyPair,
  toBase64,
} from '../src/index.js';
import { waitFor } from '@axle/testkit';
import { rawSession as rawFrames } from '../../../test/support/raw-session.js';

const codec = new Codec();
const serverKey = generateKeyPair();
const envoyKey = generateKeyPair();

interface Fixture {
  server: AxleServer;
  addr: string;
  errors: AxleError[];
  serverConns: Connection[];
}

async function startServer(extra: Partial<ConstructorParameters<typeof AxleServer>[0]> = {}): Promise<Fixture> {
  const errors: AxleError[] = [];
  const serverConns: Connection[] = [];
  const known = new Map([[toBase64(envoyKey.publicKey), 'web1.dc1.example.com']]);
  const server = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'spoke-test',
    keyPair: serverKey,
    authenticate: (claim) => {
      const host = known.get(toBase64(claim.pubkey));
      if (host !== claim.id) throw new AxleError('E_UNKNOWN_KEY', `key of ${claim.id} is not known`);
      return { role: 'envoy' };
    },
    onConnection: (conn) => {
      serverConns.push(conn);
      conn.attach({
        onRequest: (msg) => {
          if (msg.type === 'stats') return new Promise(() => undefined); // never answers
          if (msg.type === 'probe')
            return { type: 'probe_ok', spokeId: 'dc1', term: msg.term, configVersion: 0, envoys: 1, uptimeS: 1 };
          return { type: 'ok' };
        },
      });
    },
    onError: (e) => errors.push(e),
    ...extra,
  });
  const { port } = await server.listen();
  return { server, addr: `127.0.0.1:${port}`, errors, serverConns };
}

/** A client that completes the handshake by hand, so the test can forge frames. */
const rawSession = (addr: string) => rawFrames(addr, envoyKey, 'web1.dc1.example.com');

let fx: Fixture;
beforeEach(async () => {
  fx = await startServer();
});
afterEach(async () => {
  await fx.server.close(200);
});

const probe = { type: 'probe', term: 1 } as const;

describe('signed connection', () => {
  it('completes the handshake with the right keys and answers requests', async () => {
    const conn = await connectPeer(fx.addr, {
      id: 'web1.dc1.example.com',
      role: 'envoy',
      keyPair: envoyKey,
      expectServerKey: serverKey.publicKey,
    });
    expect(conn.peer.id).toBe('spoke-test');
    const reply = await conn.request(probe, 2000, 'probe_ok');
    expect(reply.spokeId).toBe('dc1');
    expect(await conn.request({ type: 'ok' })).toEqual({ type: 'ok' });
    conn.close();
  });

  it('refuses an unknown key with E_UNKNOWN_KEY and close code 4002', async () => {
    const stranger = generateKeyPair();
    const err = await connectPeer(fx.addr, { id: 'web1.dc1.example.com', role: 'envoy', keyPair: stranger }).catch(
      (e: AxleError) => e,
    );
    expect(err).toBeInstanceOf(AxleError);
    expect((err as AxleError).code).toBe('E_UNKNOWN_KEY');
    expect((err as AxleError).message).toContain('(4002)');
  });

  it('refuses a server whose key the client does not expect', async () => {
    const err = await connectPeer(fx.addr, {
      id: 'web1.dc1.example.com',
      role: 'envoy',
      keyPair: envoyKey,
      expectServerKey: generateKeyPair().publicKey,
    }).catch((e: AxleError) => e);
    expect((err as AxleError).code).toBe('E_UNTRUSTED');
  });

  it('closes with 4001 on a tampered frame', async () => {
    const s = await rawSession(fx.addr);
    const f = s.frame([0, 'web1.dc1.example.com', 1, 1, probe]);
    f[f.length - 1] = (f[f.length - 1] as number) ^ 1;
    s.ws.send(f);
    expect((await s.closed).code).toBe(CloseCode.BAD_SIGNATURE);
    await waitFor(() => fx.errors.some((e) => e.code === 'E_BAD_SIGNATURE'));
  });

  it('closes with 4004 on a frame replayed on the same connection', async () => {
    const s = await rawSession(fx.addr);
    const f = s.frame([0, 'web1.dc1.example.com', 1, 1, probe]);
    s.ws.send(f);
    await s.next(); // the reply: the first copy was accepted
    s.ws.send(f);
    expect((await s.closed).code).toBe(CloseCode.BAD_SEQUENCE);
    expect(fx.errors.map((e) => e.code)).toContain('E_BAD_SEQUENCE');
  });

  it('closes with 4001 on a frame replayed on another connection', async () => {
    const a = await rawSession(fx.addr);
    const f = a.frame([0, 'web1.dc1.example.com', 1, 1, probe]);
    a.ws.send(f);
    await a.next();
    const b = await rawSession(fx.addr);
    b.ws.send(f);
    expect((await b.closed).code).toBe(CloseCode.BAD_SIGNATURE);
  });

  it('closes with 4004 on a skipped or repeated sequence number', async () => {
    const a = await rawSession(fx.addr);
    a.ws.send(a.frame([1, 'web1.dc1.example.com', 1, 1, probe]));
    expect((await a.closed).code).toBe(CloseCode.BAD_SEQUENCE);
    const b = await rawSession(fx.addr);
    b.ws.send(b.frame([0, 'web1.dc1.example.com', 1, 1, probe]));
    await b.next();
    b.ws.send(b.frame([0, 'web1.dc1.example.com', 1, 2, probe]));
    expect((await b.closed).code).toBe(CloseCode.BAD_SEQUENCE);
  });

  it('closes with 4005 when a frame names another sender', async () => {
    const s = await rawSession(fx.addr);
    s.ws.send(s.frame([0, 'db1.dc2.example.com', 1, 1, probe]));
    expect((await s.closed).code).toBe(CloseCode.SENDER_MISMATCH);
    expect(fx.errors.map((e) => e.code)).toContain('E_SENDER_MISMATCH');
  });

  it('closes with 4003 on a message sent before the handshake', async () => {
    const ws = new WebSocket(`ws://${fx.addr}/ws`, { perMessageDeflate: false });
    ws.on('error', () => undefined);
    const closed = new Promise<number>((r) => ws.on('close', (c) => r(c)));
    ws.on('message', () => ws.send(codec.encode({ type: 'probe', term: 1 })));
    expect(await closed).toBe(CloseCode.NOT_AUTHENTICATED);
    await waitFor(() => fx.errors.some((e) => e.code === 'E_NOT_AUTHENTICATED'));
  });

  it('closes with 1009 and reports E_FRAME_TOO_LARGE on an oversized frame', async () => {
    await fx.server.close(100);
    fx = await startServer({ limits: { maxFrameBytes: 4096 } });
    const s = await rawSession(fx.addr);
    s.ws.send(Buffer.alloc(10_000, 1));
    expect((await s.closed).code).toBe(CloseCode.FRAME_TOO_LARGE);
    await waitFor(() => fx.errors.some((e) => e.code === 'E_FRAME_TOO_LARGE'));
  });

  it('closes with 4006 on malformed msgpack and on a huge length prefix', async () => {
    const a = await rawSession(fx.addr);
    a.ws.send(a.frameRaw(Buffer.from([0x95, 0x00, 0xc1])));
    expect((await a.closed).code).toBe(CloseCode.MALFORMED);
    const b = await rawSession(fx.addr);
    b.ws.send(b.frameRaw(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x00])));
    expect((await b.closed).code).toBe(CloseCode.MALFORMED);
    expect(fx.errors.filter((e) => e.code === 'E_MALFORMED')).toHaveLength(2);
  });

  it('closes with 4009 on deep nesting and 4010 on prototype keys', async () => {
    const a = await rawSession(fx.addr);
    a.ws.send(a.frameRaw(Buffer.concat([Buffer.alloc(200, 0x91), Buffer.from([0x00])])));
    expect((await a.closed).code).toBe(CloseCode.TOO_DEEP);
    const b = await rawSession(fx.addr);
    const key = Buffer.from('constructor');
    b.ws.send(b.frameRaw(Buffer.concat([Buffer.from([0x81, 0xa0 | key.length]), key, Buffer.from([0x01])])));
    expect((await b.closed).code).toBe(CloseCode.FORBIDDEN_KEY);
    expect(fx.errors.map((e) => e.code)).toEqual(expect.arrayContaining(['E_TOO_DEEP', 'E_FORBIDDEN_KEY']));
  });

  it('answers an invalid message with E_BAD_MESSAGE and keeps the connection', async () => {
    const conn = await connectPeer(fx.addr, { id: 'web1.dc1.example.com', role: 'envoy', keyPair: envoyKey });
    const s = await rawSession(fx.addr);
    s.ws.send(s.frame([0, 'web1.dc1.example.com', 1, 7, { type: 'probe', term: -5 }]));
    const reply = codec.decode((await s.next()).subarray(64)) as unknown[];
    expect(reply[2]).toBe(3); // an error reply
    expect(reply[3]).toBe(7);
    expect((reply[4] as { code: string }).code).toBe('E_BAD_MESSAGE');
    s.ws.send(s.frame([1, 'web1.dc1.example.com', 1, 8, probe]));
    const ok = codec.decode((await s.next()).subarray(64)) as unknown[];
    expect(ok[2]).toBe(2);
    conn.close();
  });

  it('times out a request that gets no answer', async () => {
    const conn = await connectPeer(fx.addr, { id: 'web1.dc1.example.com', role: 'envoy', keyPair: envoyKey });
    const err = await conn.request({ type: 'stats', term: 1 }, 150).catch((e: AxleError) => e);
    expect((err as AxleError).code).toBe('E_TIMEOUT');
    expect(conn.isOpen).toBe(true);
    conn.close();
  });

  it('notices a silently dead peer through keepalive pings', async () => {
    await fx.server.close(100);
    fx = await startServer({ keepaliveMs: 100 });
    const conn = await connectPeer(fx.addr, {
      id: 'web1.dc1.example.com',
      role: 'envoy',
      keyPair: envoyKey,
      keepaliveMs: 0,
    });
    await waitFor(() => fx.serverConns.length === 1);
    // Stop reading: pings go unanswered as if the link were cut without a FIN.
    (conn as unknown as { socket: { _socket: { pause(): void } } }).socket._socket.pause();
    const info = await fx.serverConns[0]!.closed;
    expect(info.error?.code).toBe('E_KEEPALIVE');
    conn.terminate();
  });

  it('closes a peer that does not finish the handshake in time', async () => {
    await fx.server.close(100);
    fx = await startServer({ handshakeTimeoutMs: 150 });
    const ws = new WebSocket(`ws://${fx.addr}/ws`, { perMessageDeflate: false });
    ws.on('error', () => undefined);
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    expect([CloseCode.HANDSHAKE_TIMEOUT, 1006]).toContain(code);
    await waitFor(() => fx.errors.some((e) => e.code === 'E_HANDSHAKE_TIMEOUT'));
  });

  it('caps connections per source address', async () => {
    await fx.server.close(100);
    fx = await startServer({ maxConnectionsPerIp: 2 });
    const opts = { id: 'web1.dc1.example.com', role: 'envoy', keyPair: envoyKey };
    const a = await connectPeer(fx.addr, opts);
    const b = await connectPeer(fx.addr, opts);
    const err = await connectPeer(fx.addr, opts).catch((e: AxleError) => e);
    expect((err as AxleError).code).toBe('E_UNREACHABLE');
    expect((err as AxleError).message).toContain('429');
    a.close();
    await waitFor(() => fx.server.connections.size === 1);
    const c = await connectPeer(fx.addr, opts);
    b.close();
    c.close();
  });

  it('reports an unresolvable name as E_UNRESOLVABLE', async () => {
    const err = await connectPeer('no-such-host.invalid:1530', { id: 'x', role: 'envoy', keyPair: envoyKey }).catch(
      (e: AxleError) => e,
    );
    expect((err as AxleError).code).toBe('E_UNRESOLVABLE');
  });
});
