import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook, type Hub } from '@axle/hub';
import { api, Bag, enroll, envoy, hubKey, inProcessSpoke, joinToken, startHub, waitFor } from '@axle/testkit';

const SECRET = 'a-webhook-secret-of-some-length';
const bag = new Bag();
let hub: Hub;
let receiver: Server;
let port = 0;
const received: { headers: Record<string, string | string[] | undefined>; body: string; status: number }[] = [];

beforeAll(async () => {
  let n = 0;
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // The first delivery fails, so the retry path is exercised; /dead always fails.
      const status = req.url === '/dead' ? 503 : n++ === 0 ? 500 : 204;
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  port = (receiver.address() as { port: number }).port;
  bag.add(() => new Promise<void>((r) => receiver.close(() => r())));
  const key = await hubKey(bag);
  const s = await inProcessSpoke(bag, 'dc1', key);
  hub = await startHub(bag, key, {
    spokes: [{ ...s, patterns: ['*'] }],
    extra: {
      webhooks: [
        {
          url: `http://127.0.0.1:${port}/hook`,
          secret: SECRET,
          events: ['envoy.enrolled'],
          max_attempts: 4,
          backoff: '50ms',
        },
        {
          url: `http://127.0.0.1:${port}/dead`,
          secret: SECRET,
          events: ['envoy.enrolled'],
          max_attempts: 2,
          backoff: '20ms',
        },
      ],
    },
  });
});
afterAll(() => bag.run());

describe('webhooks', () => {
  it('POST signed JSON, retry with backoff after a failure, and log every delivery', async () => {
    await enroll(hub.addr, envoy('web1.x'), await joinToken(hub));
    const deliveries = await waitFor(
      async () => {
        const r = await api(hub, 'GET', '/api/v1/webhooks/deliveries', { token: hub.adminToken });
        const list = r.body.deliveries as {
          url: string;
          status: string;
          attempts: number;
          lastStatus?: number;
          type: string;
        }[];
        return list.length === 2 && list.every((d) => d.status === 'delivered' || d.status === 'failed')
          ? list
          : undefined;
      },
      { what: 'deliveries settled' },
    );
    const ok = deliveries.find((d) => d.url.endsWith('/hook'))!;
    expect(ok).toMatchObject({ status: 'delivered', attempts: 2, lastStatus: 204, type: 'envoy.enrolled' });
    const dead = deliveries.find((d) => d.url.endsWith('/dead'))!;
    expect(dead).toMatchObject({ status: 'failed', attempts: 2, lastStatus: 503 });

    const hook = received.filter((r) => r.status !== 503);
    expect(hook.map((r) => r.status)).toEqual([500, 204]);
    for (const r of hook) {
      const ts = r.headers['x-axle-timestamp'] as string;
      const sig = r.headers['x-axle-signature'] as string;
      expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(verifyWebhook(SECRET, ts, r.body, sig)).toBe(true);
      expect(verifyWebhook('another-secret-entirely', ts, r.body, sig)).toBe(false);
      expect(verifyWebhook(SECRET, ts, r.body.replace('web1', 'web2'), sig)).toBe(false);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-axle-event']).toBe('envoy.enrolled');
      const body = JSON.parse(r.body);
      expect(body).toMatchObject({ type: 'envoy.enrolled', data: { hostname: 'web1.x', spoke: 'dc1' } });
    }
    // Both attempts are the same delivery (same id), so a receiver can de-duplicate.
    expect(hook[0]!.headers['x-axle-delivery']).toBe(hook[1]!.headers['x-axle-delivery']);
  });
});
