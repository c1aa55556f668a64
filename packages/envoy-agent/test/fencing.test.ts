import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AxleServer,
  type Connection,
  type KeyPair,
  type Message,
  Signer,
  buildBundle,
  generateKeyPair,
  saveKeyPair,
  sha256,
  signBundle,
  signTerm,
  silentLogger,
  toBase64,
} from '@axle/shared';
import { Envoy, envoyConfigFrom } from '@axle/envoy-agent';
import { tempDir } from '../../../test/support/tmp.js';
import { waitFor } from '../../../test/support/wait.js';

/**
 * A spoke (compromised, or an impostor the envoy was sent to) answers the envoy however it
 * likes. Terms and config versions must come only from hubs: the envoy raises its term only on
 * a proof signed by a hub key it was given, and never moves to an older config version.
 */
const host = 'web1.dc1.example.com';
const hubKey = generateKeyPair();
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rogue {
  addr: string;
  key: KeyPair;
  fetches: number;
  /** What the next check-in is answered with. */
  answer: (m: Extract<Message, { type: 'checkin' }>) => Message;
  bundle?: Message;
}

async function rogueSpoke(): Promise<Rogue> {
  const key = generateKeyPair();
  const rogue: Rogue = {
    addr: '',
    key,
    fetches: 0,
    answer: () => ({ type: 'checkin_ok', configVersion: 0, term: 3, runNow: false }),
  };
  const server = new AxleServer({
    host: '127.0.0.1',
    port: 0,
    id: 'dc1',
    keyPair: key,
    authenticate: () => ({ role: 'envoy' }),
    onConnection: (conn: Connection) => {
      conn.onRequest = (m) => {
        if (m.type === 'checkin') return rogue.answer(m);
        if (m.type === 'config_fetch') {
          rogue.fetches++;
          if (rogue.bundle) return rogue.bundle;
        }
        if (m.type === 'report') return { type: 'ack', runId: m.run.id, duplicate: false };
        throw new Error(`rogue has no answer for ${m.type}`);
      };
    },
  });
  const { port } = await server.listen();
  cleanups.push(() => server.close(100));
  rogue.addr = `127.0.0.1:${port}`;
  return rogue;
}

/** An envoy enrolled (by hand) at term 3 and config version 3, assigned to the rogue. */
async function envoyAt(rogue: Rogue): Promise<{ envoy: Envoy; stateDir: string }> {
  const t = tempDir('axle-fence-');
  cleanups.push(t.cleanup);
  const stateDir = join(t.dir, 'state');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  saveKeyPair(join(stateDir, 'key'), generateKeyPair());
  writeFileSync(
    join(stateDir, 'assignment.json'),
    JSON.stringify({
      status: 'assigned',
      target: { spokeId: 'dc1', addr: rogue.addr, pubkey: toBase64(rogue.key.publicKey) },
      epoch: 1,
      term: 3,
      hubAddrs: ['127.0.0.1:1'],
      hubKeys: [toBase64(hubKey.publicKey)],
      updatedAt: Date.now(),
    }),
  );
  writeFileSync(join(stateDir, 'config-version'), '3\n');
  const envoy = new Envoy(
    envoyConfigFrom({
      hub_addrs: ['127.0.0.1:1'],
      insecure_transport: true,
      state_dir: stateDir,
      hostname: host,
      run_on_start: false,
      checkin_interval: '100ms',
      traits_interval: '1h',
    }),
    { logger: silentLogger() },
  );
  await envoy.start();
  cleanups.push(() => envoy.stop());
  return { envoy, stateDir };
}

describe('terms and versions come only from hubs', () => {
  it('ignores a term the spoke claims, or proves with a key no hub holds, and takes one a hub signed', async () => {
    const rogue = await rogueSpoke();
    const { envoy } = await envoyAt(rogue);
    let checkins = 0;
    rogue.answer = () => {
      checkins++;
      return { type: 'checkin_ok', configVersion: 0, term: 5000, runNow: false };
    };
    await waitFor(() => checkins >= 3, { what: 'check-ins claiming term 5000' });
    expect(envoy.state.assignment?.term).toBe(3);

    const forged = signTerm(5000, new Signer(generateKeyPair()));
    rogue.answer = () => {
      checkins++;
      return { type: 'checkin_ok', configVersion: 0, term: 5000, runNow: false, termProof: forged };
    };
    const seen = checkins;
    await waitFor(() => checkins >= seen + 3, { what: 'check-ins with a forged proof' });
    expect(envoy.state.assignment?.term).toBe(3);

    // A forged proof that names the real hub's key does not verify either.
    rogue.answer = () => {
      checkins++;
      return {
        type: 'checkin_ok',
        configVersion: 0,
        term: 5000,
        runNow: false,
        termProof: { ...forged, hub: hubKey.publicKey },
      };
    };
    const seen2 = checkins;
    await waitFor(() => checkins >= seen2 + 3, { what: "check-ins with a forged proof naming the hub's key" });
    expect(envoy.state.assignment?.term).toBe(3);

    rogue.answer = () => ({
      type: 'checkin_ok',
      configVersion: 0,
      term: 7,
      runNow: false,
      termProof: signTerm(7, new Signer(hubKey)),
    });
    await waitFor(() => envoy.state.assignment?.term === 7, { what: 'the hub-signed term 7' });
  });

  it('never fetches an older version, and refuses an older hub-signed bundle passed off as newer', async () => {
    const rogue = await rogueSpoke();
    const { envoy } = await envoyAt(rogue);
    let checkins = 0;
    rogue.answer = () => {
      checkins++;
      return { type: 'checkin_ok', configVersion: 2, term: 3, runNow: false };
    };
    await waitFor(() => checkins >= 3);
    expect(rogue.fetches).toBe(0);

    // Version 2, really signed by the hub, served when the spoke announces version 9.
    const dir = tempDir('axle-fence-bundle-');
    cleanups.push(dir.cleanup);
    mkdirSync(join(dir.dir, 'policies'));
    writeFileSync(join(dir.dir, 'policies', 'old.yaml'), 'resources: []\n');
    const b = await buildBundle(dir.dir);
    rogue.bundle = {
      type: 'config_bundle',
      version: 2,
      hash: sha256(b.data),
      signature: signBundle(2, b.hash, new Signer(hubKey)),
      hubKey: hubKey.publicKey,
      total: b.data.length,
      offset: 0,
      data: b.data,
    };
    rogue.answer = () => ({ type: 'checkin_ok', configVersion: 9, term: 3, runNow: false });
    // Each check-in announces 9 again, so several fetches come and each is refused.
    await waitFor(() => rogue.fetches >= 3, { what: 'the envoy fetching "version 9" again and again' });
    expect(envoy.state.configVersion).toBe(3);
  });
});
