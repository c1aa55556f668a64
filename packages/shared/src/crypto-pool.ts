import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { KeyPair } from './keys.js';
import { custom } from './schema.js';
import { Signer, verifyDetached } from './sign.js';

/**
 * Frame signatures on more than one core. Verifies and signs queued in one turn of the event
 * loop go to a worker thread as one message (one copy, one wake-up for the batch), and come
 * back the same way; each caller is answered by callback. While every worker is far behind,
 * the calling thread does the work itself, and a pool of 0 threads is plain inline
 * node:crypto. A worker that dies has its batches redone inline and is replaced; the daemon
 * never waits on a dead thread.
 */
export interface FrameCrypto {
  /** Calls `done` with whether `sig` is `publicKey`'s signature over `data`; maybe later, never twice. */
  verify(data: Uint8Array, sig: Uint8Array, publicKey: Uint8Array, done: (ok: boolean) => void): void;
  /** Calls `done` with the signature over `data` by this pool's key. */
  sign(data: Uint8Array, done: (sig: Uint8Array) => void): void;
}

export interface CryptoPoolOptions {
  keyPair: KeyPair;
  /** Worker threads; 0 does everything on the calling thread. */
  threads: number;
  /** Called when a worker fails (it is replaced); for the daemon's log. */
  onWorkerError?: (err: Error) => void;
}

/**
 * Worker threads for `crypto_threads: auto`: every core but the `reserved` ones (the event
 * loop's, by default), at most 4 (see README).
 */
export function autoCryptoThreads(reserved = 1): number {
  return Math.max(0, Math.min(4, availableParallelism() - reserved));
}

/** The `crypto_threads` setting of hub and spoke configs: "auto" (see autoCryptoThreads) or a count, 0 for none. */
export const cryptoThreadsSetting = () =>
  custom(
    'thread count',
    (v): 'auto' | number => {
      if (v === 'auto') return 'auto';
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 64) return v;
      throw new Error(`must be "auto" or a whole number of threads from 0 to 64, got ${JSON.stringify(v)}`);
    },
    ['auto', 0, 2],
  );

/** The worker threads a `crypto_threads` setting asks for on this machine, `reserved` cores left to the rest. */
export function cryptoThreadsFor(setting: 'auto' | number, reserved = 1): number {
  return setting === 'auto' ? autoCryptoThreads(reserved) : setting;
}

const VERIFY = 0;
const SIGN = 1;
/**
 * Operations a worker may hold (about 20 ms of work) before the calling thread does new ones
 * itself. The event loop has work only it can do (decoding, handlers, LMDB writes) and is the
 * first to run out of time, so it helps only a worker that is far behind: at 32, it ended up
 * doing most signatures itself and the worker idled (bench/spoke-checkin).
 */
const BACKLOG = 256;
/** Replacements of dead workers per minute before the pool stays inline. */
const MAX_RESPAWNS = 5;

interface Op {
  kind: typeof VERIFY | typeof SIGN;
  data: Uint8Array;
  sig?: Uint8Array;
  key?: Uint8Array;
  done: ((ok: boolean) => void) | ((sig: Uint8Array) => void);
}

interface Slot {
  worker: Worker;
  /** Set once the worker runs: a thread still starting (slow on a loaded machine) is given nothing. */
  ready: boolean;
  held: number;
  batches: Map<number, Op[]>;
}

/**
 * The worker's whole program, run with `eval` so it needs no file of its own beside a bundle.
 * A batch is `meta` (per op: kind, data offset, data length, key offset; signature at data
 * end) and `bytes`; the answer is one byte per op (verify result) and 64 per op (signature).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const priv = crypto.createPrivateKey({ key: Buffer.concat([Buffer.from(workerData.pkcs8Prefix), Buffer.from(workerData.seed)]), format: 'der', type: 'pkcs8' });
const keys = new Map();
function publicKey(bytes) {
  const k = bytes.toString('latin1');
  let ko = keys.get(k);
  if (!ko) {
    // JWK, not DER: OpenSSL 3's DER decoder costs more than the verify (keys.ts).
    ko = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') }, format: 'jwk' });
    if (keys.size >= 100000) keys.clear();
    keys.set(k, ko);
  }
  return ko;
}
parentPort.on('message', (m) => {
  const meta = new Int32Array(m.meta);
  const bytes = Buffer.from(m.bytes);
  const n = meta.length / 4;
  const ok = new Uint8Array(n);
  const sigs = new Uint8Array(n * 64);
  for (let i = 0; i < n; i++) {
    const kind = meta[i * 4], off = meta[i * 4 + 1], len = meta[i * 4 + 2], keyOff = meta[i * 4 + 3];
    const data = bytes.subarray(off, off + len);
    try {
      if (kind === ${VERIFY}) {
        ok[i] = crypto.verify(null, data, publicKey(bytes.subarray(keyOff, keyOff + 32)), bytes.subarray(off + len, off + len + 64)) ? 1 : 0;
      } else {
        sigs.set(crypto.sign(null, data, priv), i * 64);
        ok[i] = 1;
      }
    } catch {
      ok[i] = 0;
    }
  }
  parentPort.postMessage({ id: m.id, ok, sigs }, [ok.buffer, sigs.buffer]);
});
`;

const PKCS8_PREFIX = '302e020100300506032b657004220420';

export class CryptoPool implements FrameCrypto {
  private readonly signer: Signer;
  private readonly slots: Slot[] = [];
  private queue: Op[] = [];
  private scheduled = false;
  private nextId = 1;
  private closed = false;
  private respawns: number[] = [];

  constructor(private readonly o: CryptoPoolOptions) {
    this.signer = new Signer(o.keyPair);
    for (let i = 0; i < o.threads; i++) this.spawn();
  }

  /** Worker threads running now. */
  get threads(): number {
    return this.slots.length;
  }

  verify(data: Uint8Array, sig: Uint8Array, publicKey: Uint8Array, done: (ok: boolean) => void): void {
    if (this.slots.length === 0 || sig.length !== 64 || publicKey.length !== 32)
      return done(verifyDetached(data, sig, publicKey));
    this.enqueue({ kind: VERIFY, data, sig, key: publicKey, done });
  }

  sign(data: Uint8Array, done: (sig: Uint8Array) => void): void {
    if (this.slots.length === 0) return done(this.signer.sign(data));
    this.enqueue({ kind: SIGN, data, done });
  }

  /** Stops the workers; what they held is finished on this thread. */
  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const s of slots) this.redo(s);
    this.flush();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private enqueue(op: Op): void {
    this.queue.push(op);
    if (!this.scheduled) {
      this.scheduled = true;
      // After the poll phase: every frame read in this turn joins the same batch.
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const ops = this.queue;
    this.queue = [];
    if (ops.length === 0) return;
    const byWorker = new Map<Slot, Op[]>();
    for (const op of ops) {
      let best: Slot | undefined;
      for (const s of this.slots) if (s.ready && (!best || s.held < best.held)) best = s;
      if (!best || best.held >= BACKLOG) {
        this.inline(op);
        continue;
      }
      best.held++;
      let list = byWorker.get(best);
      if (!list) byWorker.set(best, (list = []));
      list.push(op);
    }
    for (const [slot, list] of byWorker) this.post(slot, list);
  }

  private post(slot: Slot, ops: Op[]): void {
    let size = 0;
    for (const op of ops) size += op.data.length + (op.kind === VERIFY ? 96 : 0);
    const meta = new Int32Array(ops.length * 4);
    const bytes = new Uint8Array(size);
    let at = 0;
    ops.forEach((op, i) => {
      meta[i * 4] = op.kind;
      meta[i * 4 + 1] = at;
      meta[i * 4 + 2] = op.data.length;
      bytes.set(op.data, at);
      at += op.data.length;
      if (op.kind === VERIFY) {
        bytes.set(op.sig!, at);
        meta[i * 4 + 3] = at + 64;
        bytes.set(op.key!, at + 64);
        at += 96;
      }
    });
    const id = this.nextId++;
    slot.batches.set(id, ops);
    slot.worker.postMessage({ id, meta: meta.buffer, bytes: bytes.buffer }, [meta.buffer, bytes.buffer]);
  }

  private inline(op: Op): void {
    if (op.kind === VERIFY) (op.done as (ok: boolean) => void)(verifyDetached(op.data, op.sig!, op.key!));
    else (op.done as (sig: Uint8Array) => void)(this.signer.sign(op.data));
  }

  private answered(slot: Slot, m: { id: number; ok: Uint8Array; sigs: Uint8Array }): void {
    const ops = slot.batches.get(m.id);
    if (!ops) return;
    slot.batches.delete(m.id);
    slot.held -= ops.length;
    ops.forEach((op, i) => {
      if (op.kind === VERIFY) (op.done as (ok: boolean) => void)(m.ok[i] === 1);
      // A signature the worker could not make is made here: signing our own key never fails quietly.
      else if (m.ok[i] === 1) (op.done as (sig: Uint8Array) => void)(m.sigs.subarray(i * 64, i * 64 + 64));
      else this.inline(op);
    });
  }

  private spawn(): void {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        pkcs8Prefix: Buffer.from(PKCS8_PREFIX, 'hex'),
        seed: this.o.keyPair.secretKey.slice(0, 32),
      },
    });
    // A crypto worker must not keep the process alive on its own.
    worker.unref();
    const slot: Slot = { worker, ready: false, held: 0, batches: new Map() };
    this.slots.push(slot);
    worker.once('online', () => (slot.ready = true));
    worker.on('message', (m: { id: number; ok: Uint8Array; sigs: Uint8Array }) => this.answered(slot, m));
    worker.on('error', (e) => this.o.onWorkerError?.(e));
    worker.on('exit', () => this.lost(slot));
  }

  /** A worker ended: its batches are done here, and it is replaced unless workers keep dying. */
  private lost(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    this.redo(slot);
    if (this.closed) return;
    const now = Date.now();
    this.respawns = this.respawns.filter((t) => now - t < 60_000);
    if (this.respawns.length >= MAX_RESPAWNS) {
      this.o.onWorkerError?.(new Error('crypto workers keep failing; signatures are checked on the main thread now'));
      return;
    }
    this.respawns.push(now);
    this.spawn();
  }

  private redo(slot: Slot): void {
    const batches = [...slot.batches.values()];
    slot.batches.clear();
    slot.held = 0;
    for (const ops of batches) for (const op of ops) this.inline(op);
  }
}
