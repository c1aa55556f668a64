/**
 * A real hub, a real spoke (a child process, so SIGHUP is a signal) and a real envoy over TLS
 * with their own CA, with a passive relay on the envoy's links to both, standing where an
 * on-path attacker would: it sees none of the join token, the trait values or the result
 * messages (the same fleet in insecure mode shows all three to the same relay, so the check can
 * fail). SIGHUP gives the spoke a new certificate without dropping the envoy's connection. An
 * envoy whose hub address is redirected to a rogue hub follows it nowhere, whether the rogue
 * has a certificate from another CA or one from the fleet CA itself.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub, hubConfigFrom } from '@axle/hub';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { Envoy, enroll, envoyConfigFrom, type EnvoyConfig } from '@axle/envoy-agent';
import {
  ErrorCode,
  fetchTls,
  generateKeyPair,
  isAxleError,
  loadKeyPair,
  loadTlsMaterial,
  saveKeyPair,
  silentLogger,
  toBase64,
  type KeyPair,
  type TlsFiles,
} from '@axle/shared';
import { ChaosProxy } from '../system/chaos-proxy.js';
import { makePki, type TestPki } from '../support/pki.js';
import { bin, startDaemon, type Daemon } from '../support/proc.js';
import { Bag, freePort } from '../support/resources.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const t = tempDir('axle-transport-');
const bag = new Bag();
let pki: TestPki;

const HOST = 'web1.dc1.example.com';
const TRAIT_VALUE = 'rack-7731-traitvalue';
/** Printed by the policy's command: in the run's result message, and nowhere in the bundle. */
const RESULT_TEXT = 'result-42-from-the-run';

beforeAll(async () => {
  pki = await makePki(join(t.dir, 'pki'));
}, 30_000);
afterAll(async () => {
  await bag.run();
  t.cleanup();
}, 60_000);

/** Bytes a relay saw, per connection and direction, and what they say once WebSocket masking is undone. */
class Eavesdropper {
  private readonly streams = new Map<string, Buffer[]>();
  listen(p: ChaosProxy): void {
    p.tap = (conn, dir, d) => {
      const k = `${p.name}/${conn}/${dir}`;
      const s = this.streams.get(k) ?? [];
      s.push(Buffer.from(d));
      this.streams.set(k, s);
    };
  }
  get bytes(): number {
    return [...this.streams.values()].flat().reduce((n, b) => n + b.length, 0);
  }
  /** Everything readable: the raw bytes and, where they are plain WebSocket, the unmasked frames. */
  readable(): Buffer {
    const out: Buffer[] = [];
    for (const chunks of this.streams.values()) {
      const raw = Buffer.concat(chunks);
      out.push(raw, unmask(raw));
    }
    return Buffer.concat(out);
  }
  sees(text: string): boolean {
    return this.readable().includes(Buffer.from(text));
  }
}

/** Undoes what an attacker undoes: the HTTP upgrade, then each frame's 4-byte mask (RFC 6455 5.3). */
function unmask(stream: Buffer): Buffer {
  const head = stream.indexOf('\r\n\r\n');
  if (
    head < 0 ||
    !stream
      .subarray(0, 16)
      .toString('latin1')
      .match(/^(GET|HTTP)/)
  )
    return Buffer.alloc(0);
  const out: Buffer[] = [];
  let i = head + 4;
  while (i + 2 <= stream.length) {
    const b1 = stream[i + 1] as number;
    let len = b1 & 0x7f;
    let p = i + 2;
    if (len === 126) {
      len = stream.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(stream.readBigUInt64BE(p));
      p += 8;
    }
    const mask = b1 & 0x80 ? stream.subarray(p, p + 4) : undefined;
    if (mask) p += 4;
    if (p + len > stream.length) break;
    const payload = Buffer.from(stream.subarray(p, p + len));
    if (mask) for (let j = 0; j < payload.length; j++) payload[j] = (payload[j] as number) ^ (mask[j % 4] as number);
    out.push(payload);
    i = p + len;
  }
  return Buffer.concat(out);
}

interface TestFleet {
  hub: Hub;
  hubKey: KeyPair;
  spoke: Daemon;
  spokeTls: TlsFiles | undefined;
  spokeAddr: string;
  hubLink: ChaosProxy;
  spokeLink: ChaosProxy;
  ear: Eavesdropper;
  envoy: Envoy;
  cfg: EnvoyConfig;
  token: string;
  dir: string;
}

async function hubApi(f: Pick<TestFleet, 'hub'>, method: string, path: string, body?: unknown) {
  const tls = f.hub.tlsMaterial;
  const res = await fetchTls(`${tls ? 'https' : 'http'}://${f.hub.addr}/api/v1${path}`, {
    method,
    ca: tls?.ca,
    headers: { authorization: `Bearer ${f.hub.adminToken}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Hub in this process, spoke as a child process, the envoy's links to both through relays. */
async function startFleet(name: string, secure: boolean): Promise<TestFleet> {
  const dir = join(t.dir, name);
  const transport = async (n: string) =>
    secure ? { tls: await pki.issue(`${name}-${n}`) } : { insecure_transport: true };
  const hubKey = generateKeyPair();
  const hubDir = join(dir, 'hub');
  mkdirSync(hubDir, { recursive: true });
  saveKeyPair(join(hubDir, 'hub.key'), hubKey);
  const hubAddr = `127.0.0.1:${await freePort()}`;
  const spokeDir = join(dir, 'spoke');
  mkdirSync(spokeDir, { recursive: true });
  const spokeKey = generateKeyPair();
  saveKeyPair(join(spokeDir, 'spoke.key'), spokeKey);
  const spokeListen = `127.0.0.1:${await freePort()}`;
  const spokeLink = new ChaosProxy(spokeListen, 'spoke');
  await spokeLink.listen();
  bag.add(() => spokeLink.close());
  const spokeT = await transport('spoke');
  const spokeFile = join(spokeDir, 'spoke.yaml');
  writeFileSync(
    spokeFile,
    JSON.stringify({
      server_id: 'dc1',
      listen: spokeListen,
      data_dir: spokeDir,
      status_interval: '300ms',
      ...spokeT,
      spanner: { role: 'spoke', spoke_id: 'dc1', hub_addr: hubAddr, hub_pubkeys: [toBase64(hubKey.publicKey)] },
    }),
  );
  const spoke = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', spokeFile]);
  bag.add(() => spoke.kill('SIGKILL'));
  const hubLink = new ChaosProxy(hubAddr, 'hub');
  await hubLink.listen();
  bag.add(() => hubLink.close());
  const hub = new Hub(
    hubConfigFrom({
      server_id: 'hub-a',
      listen: hubAddr,
      data_dir: hubDir,
      // The hub's name as envoys know it leads through the relay (where DNS could send them elsewhere).
      public_addr: hubLink.addr,
      ...(await transport('hub')),
      spanner: {
        role: 'hub',
        // Hub and envoys reach the spoke through the relay.
        spokes: [{ id: 'dc1', addr: spokeLink.addr, pubkey: toBase64(spokeKey.publicKey), patterns: ['*'] }],
      },
    }),
    { logger: silentLogger() },
  );
  await hub.start();
  bag.add(() => hub.stop());
  const ear = new Eavesdropper();
  ear.listen(hubLink);
  ear.listen(spokeLink);

  // A policy whose command fails, printing text that exists only in the run's result.
  const src = join(dir, 'config');
  mkdirSync(join(src, 'policies'), { recursive: true });
  writeFileSync(
    join(src, 'policies', 'probe.yaml'),
    'name: probe\nresources:\n  - exec: [/bin/sh, -c, "echo result-$((6*7))-from-the-run >&2; exit 3"]\n',
  );
  await hubApi({ hub }, 'POST', '/config/publish', { dir: src });
  const traits = join(dir, 'traits');
  mkdirSync(traits, { recursive: true });
  writeFileSync(join(traits, 'site.yaml'), `rack: ${TRAIT_VALUE}\n`);
  const token = (await hubApi({ hub }, 'POST', '/tokens', {})).secret as string;
  const stateDir = join(dir, 'envoy');
  mkdirSync(stateDir, { recursive: true });
  const cfg = envoyConfigFrom({
    hub_addrs: [hubLink.addr],
    hub_pubkeys: [toBase64(hubKey.publicKey)],
    ...(secure ? { ca_file: pki.caFile } : { insecure_transport: true }),
    state_dir: stateDir,
    hostname: HOST,
    traits_dir: traits,
    checkin_interval: '200ms',
    keepalive: '300ms',
    request_timeout: '2s',
    backoff_initial: '50ms',
    backoff_max: '300ms',
    failures_before_locate: 1,
  });
  await enroll(cfg, token);
  const envoy = new Envoy(cfg, { logger: silentLogger() });
  await envoy.start();
  bag.add(() => envoy.stop());
  return {
    hub,
    hubKey,
    spoke,
    spokeTls: 'tls' in spokeT ? spokeT.tls : undefined,
    spokeAddr: spokeListen,
    hubLink,
    spokeLink,
    ear,
    envoy,
    cfg,
    token,
    dir,
  };
}

/** Waits until the hub's answer for the envoy holds a run carrying RESULT_TEXT and the trait. */
async function reported(f: TestFleet): Promise<void> {
  await waitFor(
    async () => {
      const r = await hubApi(f, 'GET', `/envoys/${HOST}?runs=5`);
      const text = JSON.stringify(r);
      return text.includes(RESULT_TEXT) && text.includes(TRAIT_VALUE);
    },
    { timeoutMs: 30_000, what: 'a run with the probe result and the trait at the hub' },
  );
}

function servedFingerprint(addr: string, ca: Buffer): Promise<string> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, ca }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('an on-path observer', () => {
  it('without TLS reads the join token, the trait values and the result messages (the control)', async () => {
    const f = await startFleet('plain', false);
    await reported(f);
    expect(f.ear.sees(f.token)).toBe(true);
    expect(f.ear.sees(TRAIT_VALUE)).toBe(true);
    expect(f.ear.sees(RESULT_TEXT)).toBe(true);
  }, 60_000);

  describe('with TLS', () => {
    let f: TestFleet;
    beforeAll(async () => {
      f = await startFleet('tls', true);
      await reported(f);
    }, 60_000);

    it('reads none of them from an enrollment, check-ins and a report', () => {
      expect(f.ear.bytes).toBeGreaterThan(10_000);
      expect(f.ear.sees(f.token)).toBe(false);
      expect(f.ear.sees(TRAIT_VALUE)).toBe(false);
      expect(f.ear.sees(RESULT_TEXT)).toBe(false);
      expect(f.ear.sees(HOST)).toBe(false);
    });

    it('SIGHUP gives the spoke a new certificate for new connections; the envoy stays connected', async () => {
      const before = await servedFingerprint(f.spokeAddr, pki.caPem);
      let reconnects = 0;
      f.envoy.events?.on('connected', () => reconnects++);
      const checkins = async () => {
        const m = await (await fetchTls(`https://${f.spokeAddr}/metrics`, { ca: pki.caPem })).text();
        return Number(/^axle_spoke_checkins_total (\d+)/m.exec(m)?.[1] ?? 0);
      };
      const next = await pki.issue('tls-spoke'); // new key and certificate over the same files
      f.spoke.proc.kill('SIGHUP');
      await f.spoke.waitForLog((l) => l.msg === 'TLS certificate reloaded');
      const after = await servedFingerprint(f.spokeAddr, pki.caPem);
      expect(after).not.toBe(before);
      expect(after).toBe(loadTlsMaterial(next, 'test').leaf.fingerprint256);
      const n = await checkins();
      await waitFor(async () => (await checkins()) >= n + 3, { what: 'check-ins on the open connection' });
      expect(reconnects).toBe(0);
      expect(f.envoy.state.connected?.spokeId).toBe('dc1');
    });

    it('the axle CLI speaks https with the fleet CA (--ca-file, AXLE_CA_FILE) and says what is wrong without it', async () => {
      const axle = (env: Record<string, string>, ...args: string[]) =>
        new Promise<{ code: number; out: string; err: string }>((resolve) => {
          execFile(
            process.execPath,
            [bin('hub', 'axle'), ...args],
            {
              env: { ...process.env, AXLE_CLI_CONFIG: '/nonexistent', AXLE_TOKEN: f.hub.adminToken, ...env },
              timeout: 30_000,
            },
            (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }),
          );
        });
      const ok = { AXLE_HUB: f.hub.addr, AXLE_CA_FILE: pki.caFile };
      const created = await axle(ok, 'tokens', 'create', '--ttl', '1h');
      expect(created.code, created.err).toBe(0);
      const tls = f.hub.tlsMaterial!;
      expect(created.out).toContain(
        `curl -fsSL --pinnedpubkey '${tls.spkiPin}' -k https://${f.hubLink.addr}/bootstrap.sh | sudo sh -s -- --token axj_`,
      );
      expect(created.out).toContain(`--ca-pin ${pki.pin}`);
      const status = await axle({ AXLE_HUB: `https://${f.hub.addr}` }, '--ca-file', pki.caFile, 'hub', 'status');
      expect(status.code, status.err).toBe(0);
      expect(status.out).toMatch(/^tls: +certificate valid until \S+ \(36[45] days\), CA sha256:[0-9a-f]{64}$/m);
      const other = await makePki(join(t.dir, 'cli-other'));
      const wrong = await axle({ AXLE_HUB: f.hub.addr, AXLE_CA_FILE: other.caFile }, 'hub', 'status');
      expect(wrong.code).toBe(1);
      expect(wrong.err).toMatch(
        /its certificate is not signed by a CA in ca_file .*give the fleet CA with --ca-file or AXLE_CA_FILE \(now from AXLE_CA_FILE\)/,
      );
      const plain = await axle({ AXLE_HUB: `http://${f.hub.addr}` }, 'hub', 'status');
      expect(plain.code).toBe(1);
      expect(plain.err).toMatch(/speaks TLS only: use https:\/\/ in --hub or AXLE_HUB, with the fleet CA in --ca-file/);
    });

    it('the web UI over TLS sets its session cookie Secure', async () => {
      const res = await fetchTls(`https://${f.hub.addr}/ui/login`, {
        method: 'POST',
        ca: pki.caPem,
        headers: { 'content-type': 'application/json', origin: `https://${f.hub.addr}` },
        body: JSON.stringify({ token: f.hub.adminToken }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('set-cookie')).toMatch(/; Secure$/);
    });

    it('an envoy sent to a rogue hub (another CA, then a fleet certificate but not a pinned key) follows nowhere', async () => {
      const marker = join(f.dir, 'rogue-applied');
      const other = await makePki(join(t.dir, 'rogue-pki'));
      const rogues = [
        { files: await other.issue('rogue-1'), expect: ErrorCode.TLS },
        { files: await pki.issue('rogue-2'), expect: ErrorCode.UNTRUSTED },
      ];
      const before = f.envoy.state.assignment;
      const envoyKey = toBase64(loadKeyPair(join(f.cfg.state_dir, 'key')).publicKey);
      // The real spoke vanishes from the envoy's view, so it asks its hub address where to go.
      await f.spokeLink.close();
      for (const r of rogues) {
        const rogue = await rogueHub(r.files, marker, envoyKey);
        f.hubLink.setTarget(rogue.hub.addr);
        await waitFor(() => f.envoy.state.lastError?.includes(r.expect), {
          timeoutMs: 20_000,
          what: `the envoy refusing the rogue hub with ${r.expect}`,
        });
        // It was ready to place the envoy on its own spoke; nothing asked it to.
        expect(rogue.hub.internals?.state.envoys.get(HOST)?.spokeId).toBe('evil');
      }
      const target = f.envoy.state.assignment?.target;
      expect({ ...target, pubkey: toBase64(target!.pubkey) }).toEqual({
        ...before?.target,
        pubkey: toBase64(before!.target!.pubkey),
      });
      expect(f.envoy.state.assignment?.hubKeys?.map(toBase64)).toEqual(before?.hubKeys?.map(toBase64));
      expect(existsSync(marker)).toBe(false);
    }, 90_000);
  });

  it('an envoy without hub keys asks no hub at all', async () => {
    const stateDir = join(t.dir, 'keyless');
    const cfg = envoyConfigFrom({
      hub_addrs: ['127.0.0.1:9'],
      ca_file: pki.caFile,
      state_dir: stateDir,
      hostname: HOST,
    });
    const e = await enroll(cfg, 'axj_whatever').then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isAxleError(e, ErrorCode.UNTRUSTED)).toBe(true);
    expect((e as Error).message).toMatch(/trusts no hub key, so it asks no hub: set hub_pubkeys/);
  });
});

/**
 * A hub an attacker runs, with a spoke of its own that would hand out a bundle writing `marker`,
 * and an enrollment ready for HOST: everything a redirected envoy would need to be taken over.
 */
async function rogueHub(files: TlsFiles, marker: string, envoyKey: string): Promise<{ hub: Hub }> {
  const dir = join(t.dir, `rogue-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  const key = generateKeyPair();
  saveKeyPair(join(dir, 'hub.key'), key);
  const hubAddr = `127.0.0.1:${await freePort()}`;
  const spoke = new Spoke(
    spokeConfigFrom({
      server_id: 'evil',
      listen: '127.0.0.1:0',
      data_dir: join(dir, 'spoke'),
      tls: files,
      spanner: { role: 'spoke', spoke_id: 'evil', hub_addr: hubAddr, hub_pubkeys: [toBase64(key.publicKey)] },
    }),
    { logger: silentLogger() },
  );
  await spoke.start();
  bag.add(() => spoke.stop());
  const hub = new Hub(
    hubConfigFrom({
      server_id: 'hub-a',
      listen: hubAddr,
      data_dir: dir,
      tls: files,
      spanner: {
        role: 'hub',
        spokes: [{ id: 'evil', addr: spoke.addr, pubkey: toBase64(spoke.publicKey), patterns: ['*'] }],
      },
    }),
    { logger: silentLogger() },
  );
  await hub.start();
  bag.add(() => hub.stop());
  const src = join(dir, 'config');
  mkdirSync(join(src, 'policies'), { recursive: true });
  writeFileSync(join(src, 'policies', 'own.yaml'), `name: own\nresources:\n  - file: ${marker}\n    content: owned\n`);
  await hubApi({ hub }, 'POST', '/config/publish', { dir: src });
  // The envoy's public key is no secret (it shows it in every handshake): the rogue knows it.
  const imported = await hubApi({ hub }, 'POST', '/envoys/import', { envoys: [{ hostname: HOST, pubkey: envoyKey }] });
  expect(imported.imported).toBe(1);
  return { hub };
}
