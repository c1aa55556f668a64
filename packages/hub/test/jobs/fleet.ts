import type { Connection, Message, MessageOf } from '@axle/shared';
import type { Hub } from '@axle/hub';
import type { Spoke } from '@axle/spoke';
import {
  api,
  asEnvoy,
  type Bag,
  enroll,
  envoy,
  hubKey,
  type HubKey,
  inProcessSpoke,
  joinToken,
  locate,
  procSpoke,
  type ProcSpoke,
  type SpokeRef,
  startHub,
  waitFor,
} from '@axle/testkit';

export type JobRun = MessageOf<'job_run'>;
export type Behaviour = (hostname: string, m: JobRun) => Promise<MessageOf<'job_result'>> | MessageOf<'job_result'>;

export interface ProtoFleet {
  hub: Hub;
  key: HubKey;
  spokes: (SpokeRef & { spoke?: Spoke; proc?: ProcSpoke })[];
  hosts: string[];
  conns: Map<string, Connection>;
}

/**
 * A hub, `spokes` in-process spokes and `n` protocol-level envoys (each its own key and
 * connection) answering job_run with `behaviour`. Host names are h<i>.dc<i % spokes>.test.
 */
export interface FleetOptions {
  procSpokes?: string[];
  /** Hub config order and patterns per spoke (default: dc0..dcN-1, each "*.<id>.*"). */
  hubSpokes?: { id: string; patterns: string[] }[];
  spanner?: Record<string, unknown>;
  /** Envoys that lose their spoke ask the hub where to go and reconnect (like the agent). */
  follow?: boolean;
}

export async function protoFleet(
  bag: Bag,
  n: number,
  spokeCount: number,
  behaviour: Behaviour,
  o: FleetOptions = {},
): Promise<ProtoFleet> {
  const key = await hubKey(bag);
  const spokes: ProtoFleet['spokes'] = [];
  for (let i = 0; i < spokeCount; i++) {
    const id = `dc${i}`;
    if (o.procSpokes?.includes(id)) {
      const p = await procSpoke(bag, id, key);
      spokes.push({ id, addr: p.addr, pubkey: p.pubkey, proc: p });
    } else spokes.push(await inProcessSpoke(bag, id, key));
  }
  const order = o.hubSpokes ?? spokes.map((s) => ({ id: s.id, patterns: [`*.${s.id}.*`] }));
  const hub = await startHub(bag, key, {
    spokes: order.map((x) => ({ ...spokes.find((s) => s.id === x.id)!, patterns: x.patterns })),
    ...(o.spanner ? { spanner: o.spanner } : {}),
  });
  let stopped = false;
  bag.add(() => (stopped = true));
  const token = await joinToken(hub, { max_uses: n + 10 });
  const hosts: string[] = [];
  const conns = new Map<string, Connection>();
  const all = Array.from({ length: n }, (_, i) => envoy(`h${String(i).padStart(3, '0')}.dc${i % spokeCount}.test`));
  for (let i = 0; i < all.length; i += 25) {
    await Promise.all(
      all.slice(i, i + 25).map(async (e) => {
        const attach = async (a: MessageOf<'assignment'>): Promise<void> => {
          const t = a.target!;
          const c = await asEnvoy(t.addr, e, t.pubkey);
          const onRequest = async (m: Message) => {
            if (m.type !== 'job_run') throw new Error(`unexpected ${m.type}`);
            return behaviour(e.hostname, m);
          };
          c.attach({ onRequest });
          const r = await c.request({
            type: 'checkin',
            hostname: e.hostname,
            epoch: a.epoch,
            term: a.term,
            configVersion: 0,
          });
          if (r.type !== 'checkin_ok') {
            c.close();
            throw new Error(`check-in answered ${r.type}`);
          }
          bag.add(() => c.close());
          conns.set(e.hostname, c);
          if (o.follow) {
            void c.closed.then(async () => {
              for (let i = 0; i < 200 && !stopped; i++) {
                await delay(100);
                try {
                  return await attach(await locate(hub.addr, e));
                } catch {
                  // not moved yet: ask again
                }
              }
            });
          }
        };
        await attach(await enroll(hub.addr, e, token));
        hosts.push(e.hostname);
      }),
    );
  }
  hosts.sort();
  return { hub, key, spokes, hosts, conns };
}

export async function startJob(hub: Hub, body: Record<string, unknown>): Promise<string> {
  const r = await api(hub, 'POST', '/api/v1/jobs', { token: hub.adminToken, body });
  if (r.status !== 200) throw new Error(`POST /jobs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.job.id as string;
}

export async function jobDone(hub: Hub, id: string, timeoutMs = 30_000): Promise<any> {
  return waitFor(
    async () => {
      const r = await api(hub, 'GET', `/api/v1/jobs/${id}`, { token: hub.adminToken });
      return r.body.job?.state !== 'running' ? r.body : undefined;
    },
    { timeoutMs, intervalMs: 50, what: `job ${id} to finish` },
  );
}

export async function targets(hub: Hub, id: string): Promise<any[]> {
  const r = await api(hub, 'GET', `/api/v1/jobs/${id}/targets?limit=100000`, { token: hub.adminToken });
  return r.body.targets;
}

export const ok = (message = 'done'): MessageOf<'job_result'> => ({
  type: 'job_result',
  status: 'succeeded',
  message,
  output: '',
});
export const bad = (message: string, exitCode = 1): MessageOf<'job_result'> => ({
  type: 'job_result',
  status: 'failed',
  message,
  exitCode,
  output: '',
});
export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The rows of the CLI's "Failed hosts (n):" table (after its header lines), split into columns. */
export function failedRows(stdout: string, n: number): string[][] {
  const block = stdout.slice(stdout.indexOf(`Failed hosts (${n}):`), stdout.indexOf('Job:'));
  return block
    .trim()
    .split('\n')
    .slice(2)
    .map((l) => l.split(/\s{2,}/));
}
