import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { keyFileOf, loadSpokeConfig, spokeConfigFrom } from '@axle/spoke';
import { tempDir } from '@axle/testkit';

const tmp = tempDir('axle-spoke-cfg-');
afterAll(() => tmp.cleanup());

const base = {
  server_id: 'dc1',
  insecure_transport: true,
  listen: '127.0.0.1:1530',
  data_dir: '/var/lib/axle/spoke',
  spanner: { role: 'spoke', spoke_id: 'dc1' },
};

describe('spoke config', () => {
  it('fills the documented defaults', () => {
    const c = spokeConfigFrom(base);
    expect(c.status_interval).toBe(30_000);
    expect(c.retention).toEqual({ max_runs_per_envoy: 100, max_age: 30 * 24 * 3600 * 1000 });
    expect(c.limits).toEqual({
      max_connections_per_ip: 512,
      max_handshakes_per_ip: 64,
      frame_bytes: 1024 * 1024,
      keepalive: 3000,
      max_report_bytes: 256 * 1024,
      max_concurrent_queries: 2,
      query_steps: 50_000_000,
      max_http_connections_per_ip: 64,
      http_headers_timeout: 10_000,
      http_request_timeout: 60_000,
      http_keepalive_timeout: 5_000,
      max_header_bytes: 16 * 1024,
    });
    expect(c.spanner).toEqual({ role: 'spoke', spoke_id: 'dc1', hub_fallback_addrs: [], hub_pubkeys: [] });
    expect(c.crypto_threads).toBe('auto');
    expect(keyFileOf(c)).toBe('/var/lib/axle/spoke/spoke.key');
  });

  it('reads the YAML keys of the design brief', () => {
    const key = toBase64(generateKeyPair().publicKey);
    const file = join(tmp.dir, 'spoke.yaml');
    writeFileSync(
      file,
      `server_id: dc1
listen: "0.0.0.0:1530"
data_dir: /var/lib/axle/spoke
key_file: /etc/axle/spoke.key
status_interval: 10s
retention: { max_runs_per_envoy: 20, max_age: 7d }
spanner:
  role: spoke
  spoke_id: dc1
  hub_addr: "hub.example.com:1530"
  hub_fallback_addrs: ["hub-standby.example.com:1530"]
  hub_pubkeys: ["${key}"]
`,
    );
    const c = loadSpokeConfig(file);
    expect(c).toMatchObject({
      key_file: '/etc/axle/spoke.key',
      status_interval: 10_000,
      retention: { max_runs_per_envoy: 20, max_age: 7 * 24 * 3600 * 1000 },
      spanner: {
        hub_addr: 'hub.example.com:1530',
        hub_fallback_addrs: ['hub-standby.example.com:1530'],
        hub_pubkeys: [key],
      },
    });
  });

  it('refuses role hub, a missing spoke_id, bad keys and addresses, unknown keys', () => {
    expect(() => spokeConfigFrom({ ...base, spanner: { role: 'hub', spoke_id: 'dc1' } })).toThrow(
      /spanner\.role: is "hub", but this is the spoke daemon/,
    );
    expect(() => spokeConfigFrom({ ...base, spanner: { role: 'spoke' } })).toThrow(
      /spanner\.spoke_id: is required: set it to this spoke's id/,
    );
    expect(() => spokeConfigFrom({ ...base, spanner: { ...base.spanner, hub_pubkeys: ['bm90IGEga2V5'] } })).toThrow(
      /spanner\.hub_pubkeys\[0\]/,
    );
    expect(() => spokeConfigFrom({ ...base, spanner: { ...base.spanner, hub_addr: 'nohostport' } })).toThrow(
      /spanner\.hub_addr/,
    );
    expect(() => spokeConfigFrom({ ...base, status_interval: 'soon' })).toThrow(/status_interval/);
    expect(() => spokeConfigFrom({ ...base, retension: {} })).toThrow(/retension: unknown key/);
    try {
      spokeConfigFrom({ ...base, spanner: { role: 'spoke' } }, 'x.yaml');
    } catch (e) {
      expect(e).toMatchObject({ code: 'E_BAD_CONFIG' });
    }
  });

  it('takes crypto_threads as "auto" or a thread count, and names the key when it is neither', () => {
    expect(spokeConfigFrom({ ...base, crypto_threads: 0 }).crypto_threads).toBe(0);
    expect(spokeConfigFrom({ ...base, crypto_threads: 3 }).crypto_threads).toBe(3);
    expect(spokeConfigFrom({ ...base, crypto_threads: 'auto' }).crypto_threads).toBe('auto');
    for (const bad of [-1, 1.5, 65, 'all', '2', true]) {
      expect(() => spokeConfigFrom({ ...base, crypto_threads: bad }, 'spoke.yaml'), String(bad)).toThrow(
        /spoke\.yaml.*crypto_threads: must be "auto" or a whole number of threads from 0 to 64/s,
      );
    }
  });
});
