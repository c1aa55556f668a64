/**
 * TLS on the one port every daemon listens on, through AxleServer and connectPeer as the
 * daemons use them: the fleet CA's certificates accepted by Node, curl and OpenSSL; a wrong CA,
 * an expired certificate and another name refused with errors that say which; plain ws:// and
 * http:// refused on a TLS port (and wss:// on a plain one); failed handshakes give their slots
 * back; a new certificate served to new connections while open ones keep going.
 */
import { execFile } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AxleServer,
  ErrorCode,
  connectPeer,
  fetchTls,
  generateKeyPair,
  isAxleError,
  loadTlsMaterial,
  type Connection,
  type TlsFiles,
} from '@axle/shared';
import { makePki, type TestPki } from '../support/pki.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const t = tempDir('axle-tls-');
const servers: AxleServer[] = [];
const serverKey = generateKeyPair();
const clientKey = generateKeyPair();
let fleet: TestPki;
let other: TestPki;

beforeAll(async () => {
  fleet = await makePki(`${t.dir}/fleet`);
  other = await makePki(`${t.dir}/other`);
}, 30_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close(100)));
  t.cleanup();
});

async function serve(files: TlsFiles | undefined, o: { headersTimeoutMs?: number } = {}): Promise<AxleServer> {
  const m = files ? loadTlsMaterial(files, 'test') : undefined;
  const s = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'srv',
    keyPair: serverKey,
    authenticate: () => ({ role: 'envoy' }),
    onConnection: (conn) => {
      conn.onRequest = () => ({
        type: 'probe_ok',
        spokeId: 'srv',
        term: 0,
        configVersion: 0,
        envoys: 0,
        uptimeS: 0,
      });
    },
    http: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
    keepaliveMs: 100,
    ...(o.headersTimeoutMs ? { httpLimits: { headersTimeoutMs: o.headersTimeoutMs } } : {}),
    ...(m ? { tls: { cert: m.cert, key: m.key } } : {}),
  });
  servers.push(s);
  await s.listen();
  return s;
}

const addrOf = (s: AxleServer) => `127.0.0.1:${s.address().port}`;

function dial(addr: string, ca: Buffer | undefined): Promise<Connection> {
  return connectPeer(addr, {
    id: 'web1.dc1.example.com',
    role: 'envoy',
    keyPair: clientKey,
    expectServerKey: serverKey.publicKey,
    ca,
    keepaliveMs: 100,
    handshakeTimeoutMs: 5000,
  });
}

/** A tool run without blocking this process's event loop (the server under test lives in it). */
function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (e, out, err) => resolve({ ok: !e, out, err }));
  });
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (!isAxleError(e)) throw new Error(`expected an AxleError, got ${String(e)}`);
  return { code: e.code, message: e.message };
}

/** The SHA-256 fingerprint of the certificate a fresh TLS connection is served. */
function servedFingerprint(addr: string, ca: Buffer): Promise<string> {
  const port = Number(addr.split(':')[1]);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

const probe = (c: Connection) => c.request({ type: 'probe', term: 0 }, 5000, 'probe_ok');

describe('TLS listeners and clients', () => {
  it('the fleet CA: a signed WebSocket over wss:// and HTTPS, accepted by Node, curl and OpenSSL', async () => {
    const files = await fleet.issue('srv-ok');
    const s = await serve(files);
    const conn = await dial(addrOf(s), fleet.caPem);
    expect((await probe(conn)).spokeId).toBe('srv');
    conn.close();
    const res = await fetchTls(`https://${addrOf(s)}/healthz`, { ca: fleet.caPem });
    expect(await res.json()).toEqual({ ok: true });
    const curl = await run('curl', ['-fsS', '--cacert', fleet.caFile, `https://${addrOf(s)}/healthz`]);
    expect(curl.out).toBe('{"ok":true}');
    const verify = await run('openssl', [
      'verify',
      '-CAfile',
      fleet.caFile,
      '-verify_ip',
      '127.0.0.1',
      '-purpose',
      'sslserver',
      files.cert_file,
    ]);
    expect(verify.out.trim()).toBe(`${files.cert_file}: OK`);
  });

  it('a certificate from another CA is refused with E_TLS naming ca_file', async () => {
    const s = await serve(await other.issue('srv-other'));
    const r = await refusal(dial(addrOf(s), fleet.caPem));
    expect(r.code).toBe(ErrorCode.TLS);
    expect(r.message).toMatch(/TLS to 127\.0\.0\.1:\d+ refused: its certificate is not signed by a CA in ca_file/);
    const curl = await run('curl', ['-fsS', '--cacert', fleet.caFile, `https://${addrOf(s)}/healthz`]);
    expect(curl.ok).toBe(false);
    expect(curl.err).toMatch(/certificate/i);
  });

  it('an expired certificate is refused, saying so', async () => {
    const s = await serve(await fleet.issue('srv-expired', { days: 30, notBefore: new Date(Date.now() - 60 * 864e5) }));
    const r = await refusal(dial(addrOf(s), fleet.caPem));
    expect(r.code).toBe(ErrorCode.TLS);
    expect(r.message).toMatch(/its certificate has expired; issue a new one \(axle-hub ca issue\)/);
  });

  it('a certificate for another name is refused, naming what it is for', async () => {
    const s = await serve(await fleet.issue('srv-name', { hosts: ['hub.example.com'] }));
    const r = await refusal(dial(addrOf(s), fleet.caPem));
    expect(r.code).toBe(ErrorCode.TLS);
    expect(r.message).toMatch(
      /its certificate is for another name \(it names DNS:hub\.example\.com; issue one with --host/,
    );
  });

  it('plain ws:// and http:// on a TLS port are refused with a 400 that says to use TLS; wss:// on a plain port fails as TLS', async () => {
    const tls = await serve(await fleet.issue('srv-plain'));
    const r = await refusal(dial(addrOf(tls), undefined));
    expect(r.message).toMatch(/HTTP 400 .*does it speak TLS only\?/);
    const res = await fetch(`http://${addrOf(tls)}/healthz`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/this port speaks TLS only: use https:\/\//);

    const plain = await serve(undefined);
    const w = await refusal(dial(addrOf(plain), fleet.caPem));
    expect(w.code).toBe(ErrorCode.TLS);
    expect(w.message).toMatch(/does it speak TLS\?/);
  });

  it('failed and unfinished handshakes give their slots back; a silent socket is dropped', async () => {
    const s = await serve(await fleet.issue('srv-slots'), { headersTimeoutMs: 400 });
    const addr = addrOf(s);
    await Promise.all([
      refusal(dial(addr, other.caPem)),
      refusal(dial(addr, undefined)),
      fetch(`http://${addr}/x`).then((r) => r.text()),
    ]);
    // A socket that never starts its handshake, and one that stops half way through it.
    const port = Number(addr.split(':')[1]);
    const silent = netConnect(port, '127.0.0.1');
    const half = netConnect(port, '127.0.0.1', () => half.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    const closed = (x: typeof silent) => new Promise<void>((r) => x.once('close', () => r()));
    silent.on('error', () => undefined);
    half.on('error', () => undefined);
    await Promise.all([closed(silent), closed(half)]);
    await waitFor(() => {
      const n = s.slotTotals();
      return n.pending + n.http + n.handshakes + n.conns === 0;
    });
  });

  it('a new certificate goes to new connections while an open one keeps its session', async () => {
    const first = await fleet.issue('srv-rotate');
    const s = await serve(first);
    const addr = addrOf(s);
    const before = await servedFingerprint(addr, fleet.caPem);
    const conn = await dial(addr, fleet.caPem);
    const next = await fleet.issue('srv-rotate');
    const m = loadTlsMaterial(next, 'test');
    s.setTls({ cert: m.cert, key: m.key });
    const after = await servedFingerprint(addr, fleet.caPem);
    expect(after).not.toBe(before);
    expect(after).toBe(m.leaf.fingerprint256);
    // Requests still cross the session opened under the old certificate.
    for (let i = 0; i < 5; i++) expect((await probe(conn)).spokeId).toBe('srv');
    expect(conn.isOpen).toBe(true);
    conn.close();
  });
});
