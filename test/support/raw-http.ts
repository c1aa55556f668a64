import { connect, type Socket } from 'node:net';

export interface RawResponse {
  /** 0 when the server closed the socket without a status line. */
  status: number;
  head: string;
  body: string;
}

/**
 * Sends bytes exactly as given over a fresh TCP connection and reads the status line and
 * body: for requests no HTTP client would send (`GET //[ HTTP/1.1`, bad escapes, broken
 * upgrades). Resolves when the server closes or answers in full (a progress stream: once it
 * has started), or after `timeoutMs`.
 */
export function rawRequest(addr: string, data: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  const [host, port] = splitAddr(addr);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect({ host, port });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(parse(Buffer.concat(chunks).toString('latin1')));
    };
    const timer = setTimeout(finish, timeoutMs);
    s.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return finish();
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const r = parse(Buffer.concat(chunks).toString('latin1'));
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(r.head)?.[1];
      if (r.status !== 0 && len !== undefined && Buffer.byteLength(r.body, 'latin1') >= Number(len)) finish();
      // A progress stream never ends by itself: its status line and headers are the answer.
      else if (r.status !== 0 && /\r\ncontent-type:\s*(text\/event-stream|application\/x-ndjson)/i.test(r.head))
        finish();
    });
    s.on('close', finish);
    s.write(data);
  });
}

function parse(text: string): RawResponse {
  const i = text.indexOf('\r\n\r\n');
  const head = i === -1 ? text : text.slice(0, i);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return { status: m ? Number(m[1]) : 0, head, body: i === -1 ? '' : text.slice(i + 4) };
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

/** Opens `n` TCP connections that send nothing; returns them (and how many the server has closed so far). */
export async function idleSockets(addr: string, n: number): Promise<{ sockets: Socket[]; closed: () => number }> {
  const [host, port] = splitAddr(addr);
  let closed = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect({ host, port }, () => resolve(s));
          s.on('error', () => resolve(s));
          s.on('close', () => closed++);
          // Read whatever the server answers (a 408 when its own headers timeout fires first):
          // a socket holding unread data never sees the end, so it would never close.
          s.resume();
        }),
    ),
  );
  return { sockets, closed: () => closed };
}

/** GET /healthz over a fresh connection; the time it took, or undefined when it did not answer 200. */
export async function healthz(addr: string, timeoutMs = 1000): Promise<number | undefined> {
  const t0 = performance.now();
  const r = await rawRequest(addr, `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, timeoutMs).catch(
    () => undefined,
  );
  return r?.status === 200 ? performance.now() - t0 : undefined;
}
