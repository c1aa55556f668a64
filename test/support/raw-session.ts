import WebSocket from 'ws';
import { Codec, Signer, makeAuth, newNonce, readHandshake, sessionContext, type KeyPair } from '@axle/shared';

const codec = new Codec();

/**
 * A client that completes the handshake by hand over ws:// (a daemon with insecure_transport),
 * so a test can send forged, pipelined or out-of-order frames. Frames are built here from the
 * wire format itself (signature over session context, direction byte 0 and body, then the
 * body), not by frame-signing.ts, so a test also pins that format.
 */
export async function rawSession(addr: string, kp: KeyPair, id: string, role = 'envoy') {
  const ws = new WebSocket(`ws://${addr}/ws`, { perMessageDeflate: false });
  const inbox: Buffer[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (d: Buffer) => {
    inbox.push(d);
    wake?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.on('close', (code, reason) => r({ code, reason: reason.toString() })),
  );
  ws.on('error', () => undefined);
  const next = async () => {
    while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
    return inbox.shift() as Buffer;
  };
  const signer = new Signer(kp);
  const hello = readHandshake(codec, await next(), 'hello');
  const nonce = newNonce();
  ws.send(codec.encode(makeAuth(hello, id, role, signer, nonce)));
  readHandshake(codec, await next(), 'welcome');
  const ctx = sessionContext(nonce, hello.nonce);
  const frameRaw = (body: Uint8Array) =>
    Buffer.concat([signer.sign(Buffer.concat([ctx, Buffer.from([0]), body])), body]);
  return {
    ws,
    closed,
    next,
    inbox,
    frame: (body: unknown) => frameRaw(codec.encode(body)),
    frameRaw,
    /** The envelope of a received frame: [seq, sender, kind, id, payload]. */
    decode: (f: Buffer) => codec.decode(f.subarray(64)) as [number, string, number, number, unknown],
  };
}
