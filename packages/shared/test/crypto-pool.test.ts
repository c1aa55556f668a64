import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AxleServer,
  CloseCode,
  Codec,
  CryptoPool,
  makeAuth,
  newNonce,
  readHandshake,
  Signer,
  connectPeer,
  generateKeyPair,
  verifyDetached,
  type Connection,
  type FrameCrypto,
} from '../src/index.js';
import { rawSession } from '../../../test/support/raw-session.js';
import { waitFor } from '@axle/testkit';
import { workers } from '../../../test/support/workers.js';

/** The signature workers started here, so a test can kill one the way a crash would. */
vi.mock('node:worker_threads', async (real) => (await import('../../../test/support/workers.js')).recording(real));

const key = generateKeyPair();
const peer = generateKeyPair();
const peerSigner = new Signer(peer);
const pools: CryptoPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
  workers.length = 0;
});
const pool = (threads: number) => {
  const p = new CryptoPool({ keyPair: key, threads });
  pools.push(p);
  return p;
};

/** Verifies `n` messages (every third with a broken signature) and signs `n`, all at once. */
async function mixed(p: CryptoPool, n: number): Promise<{ verified: boolean[]; sigs: Uint8Array[] }> {
  const verified: boolean[] = [];
  const sigs: Uint8Array[] = [];
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const data = new Uint8Array(100 + i).fill(i % 251);
      const sig = new Uint8Array(peerSigner.sign(data));
      if (i % 3 === 0) sig[5] = (sig[5] as number) ^ 1;
      verified[i] = await new Promise<boolean>((r) => p.verify(data, sig, peer.publicKey, r));
      sigs[i] = await new Promise<Uint8Array>((r) => p.sign(data, r));
    }),
  );
  return { verified, sigs };
}

describe('crypto pool', () => {
  it('answers as inline node:crypto does, on worker threads, good and bad signatures alike', async () => {
    const p = pool(2);
    await waitFor(() => workers.length === 2);
    const { verified, sigs } = await mixed(p, 600);
    verified.forEach((ok, i) => expect(ok, `verify ${i}`).toBe(i % 3 !== 0));
    sigs.forEach((sig, i) =>
      expect(verifyDetached(new Uint8Array(100 + i).fill(i % 251), sig, key.publicKey), `sign ${i}`).toBe(true),
    );
    expect(p.threads).toBe(2);
  });

  it('with 0 threads works inline and starts no worker', async () => {
    const p = pool(0);
    const { verified } = await mixed(p, 30);
    expect(verified.filter((ok) => !ok)).toHaveLength(10);
    expect(workers).toHaveLength(0);
  });

  it('redoes the work of a worker that dies, answers every caller once, and replaces the worker', async () => {
    const p = pool(1);
    await waitFor(() => workers.length === 1);
    const first = workers[0]!;
    await waitFor(async () => {
      // Ready once it has taken work (a starting worker is given none).
      await mixed(p, 4);
      return true;
    });
    let answers = 0;
    const run = mixed(p, 400).then((r) => {
      answers = r.verified.length + r.sigs.length;
      return r;
    });
    // Killed while batches are on it, as a crash would.
    await first.terminate();
    const { verified, sigs } = await run;
    expect(answers).toBe(800);
    verified.forEach((ok, i) => expect(ok).toBe(i % 3 !== 0));
    expect(sigs.every((s) => s.length === 64)).toBe(true);
    await waitFor(() => workers.length === 2 && p.threads === 1, { what: 'a replacement worker' });
    expect((await mixed(p, 30)).verified.filter((ok) => !ok)).toHaveLength(10);
  });

  it('finishes what it holds on close', async () => {
    const p = pool(2);
    await waitFor(() => workers.length === 2);
    const pending = mixed(p, 200);
    await p.close();
    expect((await pending).verified).toHaveLength(200);
  });
});

describe('signed connections over a crypto pool', () => {
  const serverKey = key;
  let server: AxleServer | undefined;
  let serverConns: Connection[] = [];
  afterEach(async () => {
    await server?.close(200);
    server = undefined;
    serverConns = [];
  });

  async function start(crypto: FrameCrypto = pool(2)): Promise<string> {
    server = new AxleServer({
      host: '127.0.0.1',
      port: 0,
      id: 'spoke-test',
      keyPair: serverKey,
      crypto,
      authenticate: () => ({ role: 'envoy' }),
      onConnection: (conn) => {
        serverConns.push(conn);
        conn.attach({
          onRequest: (msg, c) => {
            // Answers, then closes at once: the answer must still go out first.
            if (msg.type === 'stats') setImmediate(() => c.close(CloseCode.NORMAL));
            return {
              type: 'probe_ok',
              spokeId: 'dc1',
              term: 'term' in msg ? msg.term : 0,
              configVersion: 0,
              envoys: 0,
              uptimeS: 0,
            };
          },
        });
      },
    });
    const { port } = await server.listen();
    return `127.0.0.1:${port}`;
  }

  /** A hand-driven client: frames are built and sent without waiting for answers. */
  const raw = (addr: string) => rawSession(addr, peer, 'web1.dc1.example.com');

  it('handles frames in order and answers them in order, however the checks interleave', async () => {
    const addr = await start();
    const s = await raw(addr);
    const n = 500;
    for (let i = 0; i < n; i++) s.ws.send(s.frame([i, 'web1.dc1.example.com', 1, i + 1, { type: 'probe', term: i }]));
    for (let i = 0; i < n; i++) {
      const [seq, , kind, id, payload] = s.decode(await s.next());
      expect([seq, kind, id, (payload as { term: number }).term]).toEqual([i, 2, i + 1, i]);
    }
    s.ws.close();
  });

  it('a bad signature among good frames closes that connection with 4001 and handles nothing after it', async () => {
    const addr = await start();
    const bystander = await connectPeer(addr, {
      id: 'db1.dc1.example.com',
      role: 'envoy',
      keyPair: peer,
      expectServerKey: serverKey.publicKey,
    });
    const s = await raw(addr);
    for (let i = 0; i < 20; i++) s.ws.send(s.frame([i, 'web1.dc1.example.com', 1, i + 1, { type: 'probe', term: 1 }]));
    const bad = s.frame([20, 'web1.dc1.example.com', 1, 21, { type: 'probe', term: 1 }]);
    bad[3] = (bad[3] as number) ^ 0xff;
    s.ws.send(bad);
    s.ws.send(s.frame([21, 'web1.dc1.example.com', 1, 22, { type: 'probe', term: 1 }]));
    expect((await s.closed).code).toBe(CloseCode.BAD_SIGNATURE);
    expect((await serverConns[1]!.closed).error?.code).toBe('E_BAD_SIGNATURE');
    // Nothing after it was handled (answers to the frames before it may or may not have gone out).
    const ids = s.inbox.map((f) => s.decode(f)[3]);
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
    expect(ids.length).toBeLessThanOrEqual(20);
    expect(await bystander.request({ type: 'probe', term: 2 }, 5000, 'probe_ok')).toMatchObject({ term: 2 });
    bystander.close();
  });

  it('stops reading a peer whose frames wait for their checks, and goes on once they are done', async () => {
    // The real pool behind a gate: checks finish only when the test opens it, like a pool far behind.
    const real = pool(1);
    // Open through the handshake (its auth is checked on the pool too), closed from the first frame.
    let held: (() => void)[] | undefined;
    let most = 0;
    const gated: FrameCrypto = {
      verify: (data, sig, pub, done) =>
        real.verify(data, sig, pub, (ok) => {
          if (!held) return done(ok);
          held.push(() => done(ok));
          most = Math.max(most, held.length);
        }),
      sign: (data, done) => real.sign(data, done),
    };
    const addr = await start(gated);
    const s = await raw(addr);
    held = [];
    const n = 1500;
    for (let i = 0; i < n; i++) s.ws.send(s.frame([i, 'web1.dc1.example.com', 1, i + 1, { type: 'probe', term: i }]));
    // Read until it stops growing: the socket is paused, the rest waits in TCP buffers.
    let last = -1;
    await waitFor(
      () => {
        const settled = most === last && most > 0;
        last = most;
        return settled;
      },
      { intervalMs: 300, what: 'the server to stop reading' },
    );
    // 64 frames, and the rest of the read that carried the 64th; never all of them.
    expect(most).toBeGreaterThanOrEqual(64);
    expect(most).toBeLessThan(1000);
    const release = held;
    held = undefined;
    for (const f of release) f();
    for (let i = 0; i < n; i++) expect(s.decode(await s.next())[3]).toBe(i + 1);
    s.ws.close();
  });

  it('checks the handshake on the pool: a claimed key the auth was not signed with is refused, a good one welcomed', async () => {
    const addr = await start();
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`ws://${addr}/ws`, { perMessageDeflate: false });
    ws.on('error', () => undefined);
    const codec = new Codec();
    const first = await new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    const hello = readHandshake(codec, first, 'hello');
    // Signed by another key than the one it claims.
    const auth = makeAuth(hello, 'web1.dc1.example.com', 'envoy', new Signer(generateKeyPair()), newNonce());
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send(codec.encode({ ...auth, pubkey: peer.publicKey }));
    expect(await closed).toBe(CloseCode.HANDSHAKE_FAILED);
    expect(serverConns).toHaveLength(0);
    const good = await raw(addr);
    await waitFor(() => serverConns.length === 1);
    good.ws.close();
  });

  it('sends an answer before the close that follows it', async () => {
    const addr = await start();
    const c = await connectPeer(addr, {
      id: 'web1.dc1.example.com',
      role: 'envoy',
      keyPair: peer,
      expectServerKey: serverKey.publicKey,
    });
    expect(await c.request({ type: 'stats', term: 3 }, 5000, 'probe_ok')).toMatchObject({ term: 3 });
    expect((await c.closed).code).toBe(CloseCode.NORMAL);
  });
});
