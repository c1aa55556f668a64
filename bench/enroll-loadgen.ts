import { askSigned, fromBase64, generateKeyPair } from '@axle/shared';

/**
 * The envoys of bench/enroll, run as their own process so the hub's CPU is the hub's:
 * each enrollment is what a new host does (one signed request with its own key and the join
 * token, on a fresh connection, answered once the assignment is durable), `concurrency` at a
 * time until `count` are done.
 */
export interface EnrollJob {
  addr: string;
  hubPub: string;
  /** The fleet CA (PEM): the envoys speak TLS as they do by default; omitted, in clear. */
  ca?: string;
  token: string;
  count: number;
  concurrency: number;
  /** Host names are `${prefix}${n}.dc${1 + n % spokes}.example.com`. */
  prefix: string;
  spokes: number;
}

export interface EnrollResult {
  enrolled: number;
  seconds: number;
  errors: number;
  firstError?: string;
  ms: { p50: number; p99: number };
  cpuSeconds: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function enrollAll(job: EnrollJob): Promise<EnrollResult> {
  const keys = Array.from({ length: job.count }, () => generateKeyPair());
  const hubPub = fromBase64(job.hubPub, 32);
  const ms: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (next < job.count) {
        const n = next++;
        const hostname = `${job.prefix}${n}.dc${(n % job.spokes) + 1}.example.com`;
        const s = performance.now();
        try {
          const reply = await askSigned(
            job.addr,
            { type: 'enroll', hostname, token: job.token },
            {
              id: hostname,
              role: 'envoy',
              keyPair: keys[n]!,
              ca: job.ca,
              trusts: (k) => Buffer.from(k).equals(hubPub),
              timeoutMs: 60_000,
            },
          );
          if (reply.type !== 'assignment' || reply.status !== 'assigned')
            throw new Error(`hub answered ${reply.type} ${'status' in reply ? reply.status : ''}`);
          ms.push(performance.now() - s);
        } catch (e) {
          errors++;
          firstError ??= String(e);
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    enrolled: ms.length,
    seconds,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    ms: { p50: pct(ms, 50), p99: pct(ms, 99) },
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

process.once('message', (job: EnrollJob) => {
  enrollAll(job).then(
    (r) => process.send?.(r, () => process.exit(0)),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
});
