import { createServer } from 'node:net';

/**
 * A port for a daemon that must be named before it starts (hubs and spokes name each other).
 * Picked below Linux's ephemeral range (32768-60999), where port-0 listeners and outgoing
 * connections take theirs, so the port cannot be handed to someone else between this check
 * and the daemon's bind; only another caller of this function could collide. Each vitest
 * worker plans in a range of its own (two files running at once once both planned the same
 * port and one daemon failed with EADDRINUSE); elsewhere the bind check and a random start
 * make a collision unlikely.
 */
const PLANNED_PORTS = plannedRange(Number(process.env.VITEST_POOL_ID ?? 0));
let nextPlanned = PLANNED_PORTS.low + Math.floor(Math.random() * (PLANNED_PORTS.high - PLANNED_PORTS.low));

function plannedRange(worker: number): { low: number; high: number } {
  const all = { low: 20_000, high: 32_000 };
  const slices = 8;
  if (!Number.isInteger(worker) || worker < 1) return all;
  const size = (all.high - all.low) / slices;
  const low = all.low + ((worker - 1) % slices) * size;
  return { low, high: low + size };
}

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = nextPlanned;
    nextPlanned = nextPlanned + 1 >= PLANNED_PORTS.high ? PLANNED_PORTS.low : nextPlanned + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${PLANNED_PORTS.low} and ${PLANNED_PORTS.high} after 200 tries`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port nothing listens on (bound on port 0, then released): a dial to it is refused. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
