import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import {
  AxleServer,
  Codec,
  connectPeer,
  generateKeyPair,
  signDetached,
  verifyDetached,
  type Message,
} from '@axle/shared';
import { printFigures, rate, type Figure } from './lib.js';

/**
 * Signed frames per second through a real loopback WebSocket, receiver in its own process:
 * encode, sign, send (client) then receive, verify, decode, validate (server). Printed beside
 * the raw node:crypto and tweetnacl verify rates measured in this run.
 */
const FRAMES = Number(process.env.BENCH_FRAMES ?? 40_000);

async function receiver(): Promise<void> {
  const keyPair = generateKeyPair();
  let count = 0;
  const server = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'bench-spoke',
    keyPair,
    authenticate: () => ({ role: 'bench' }),
    onConnection: (conn) => {
      conn.attach({ onEvent: () => void count++, onRequest: () => ({ type: 'adopted', count }) });
    },
  });
  const { port } = await server.listen();
  process.send?.({ port });
  process.on('message', () => void server.close(100).then(() => process.exit(0)));
}

/** A check-in (200 B) or a run report (4 KiB) whose encoded body is about `size` bytes. */
function messageOfSize(size: number): Message {
  const codec = new Codec();
  const make = (pad: number): Message =>
    size <= 256
      ? {
          type: 'checkin',
          hostname: 'web3.dc1.example.com',
          epoch: 7,
          term: 2,
          configVersion: 12,
          traits: { role: 'x'.repeat(pad) },
        }
      : {
          type: 'report',
          hostname: 'web3.dc1.example.com',
          epoch: 7,
          run: {
            id: 'run-0123456789abcdef',
            hostname: 'web3.dc1.example.com',
            startedAt: Date.now(),
            finishedAt: Date.now(),
            configVersion: 12,
            mode: 'enforce',
            trigger: 'schedule',
            compliant: true,
            counts: { ok: 20, changed: 0, failed: 0, drift: 0 },
            results: Array.from({ length: 20 }, (_, i) => ({
              resource: `file:/etc/app/${i}.conf`,
              policy: 'base',
              status: 'ok' as const,
              message: 'x'.repeat(pad),
              durationMs: 0.4,
            })),
          },
        };
  let pad = 0;
  while (codec.encode(make(pad + 1)).length + 64 <= size) pad++;
  return make(pad);
}

export async function run(): Promise<Figure[]> {
  const msg = new Uint8Array(200).fill(7);
  const kp = generateKeyPair();
  const sig = signDetached(msg, kp.secretKey);
  const raw = rate(() => verifyDetached(msg, sig, kp.publicKey), 1500);
  const naclRate = rate(() => nacl.sign.detached.verify(msg, sig, kp.publicKey), 1000);

  const child = fork(fileURLToPath(import.meta.url), ['receiver'], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  const { port } = await new Promise<{ port: number }>((r) => child.once('message', (m) => r(m as { port: number })));
  const conn = await connectPeer(`127.0.0.1:${port}`, {
    id: 'bench-envoy',
    role: 'envoy',
    keyPair: kp,
    requestTimeoutMs: 120_000,
  });
  const figs: Figure[] = [];
  for (const [label, size] of [
    ['200-byte', 200],
    ['4 KiB', 4096],
  ] as const) {
    const frame = messageOfSize(size);
    const before = (await conn.request({ type: 'probe', term: 0 }, 120_000, 'adopted')).count;
    const start = process.hrtime.bigint();
    // Two windows in flight: the sender never runs more than ~1,000 frames ahead of the
    // receiver, as a real peer under backpressure would.
    let inflight: Promise<unknown> | undefined;
    for (let i = 0; i < FRAMES; i++) {
      conn.send(frame);
      if (i % 500 === 499) {
        const p = conn.request({ type: 'probe', term: 0 }, 120_000);
        if (inflight) await inflight;
        inflight = p;
      }
    }
    const after = (await conn.request({ type: 'probe', term: 0 }, 120_000, 'adopted')).count;
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    if (after - before !== FRAMES) throw new Error(`receiver counted ${after - before} of ${FRAMES} frames`);
    const fps = FRAMES / secs;
    figs.push({
      bench: 'protocol',
      name: `signed frames/s, ${label} bodies`,
      value: fps,
      unit: 'frames/s',
      target: size <= 256 ? '>= 0.5x raw verify' : '',
      ...(size <= 256 ? { pass: fps >= raw * 0.5 } : {}),
      reference: `${(fps / raw).toFixed(2)}x raw verify`,
    });
  }
  conn.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
  figs.push({
    bench: 'protocol',
    name: 'raw node:crypto verify (200 B)',
    value: raw,
    unit: 'verify/s',
    target: 'reference',
  });
  figs.push({
    bench: 'protocol',
    name: 'tweetnacl verify (200 B)',
    value: naclRate,
    unit: 'verify/s',
    target: 'reference',
    reference: `node:crypto is ${(raw / naclRate).toFixed(0)}x faster`,
  });
  return figs;
}

if (process.argv[2] === 'receiver') void receiver();
else if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
