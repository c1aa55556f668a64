/**
 * `npm run package` (after `npm run build`): the agent executable and the Debian packages,
 * into dist/ at the top of the checkout. Tests call the same functions; steps whose inputs
 * did not change are skipped (steps.ts), and a lock lets two test files ask at once while one
 * of them builds.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentOutputs, buildAgent } from './agent.js';
import { ROOT } from './esbuild.js';
import { strippedNode } from './steps.js';

export const DIST = join(ROOT, 'dist');
const WORK = join(DIST, '.work');

export interface Outputs {
  agent: AgentOutputs;
}

/** Runs `fn` holding dist/.lock; a lock left by a process that died is taken over. */
async function locked<T>(fn: () => Promise<T>): Promise<T> {
  const lock = join(DIST, '.lock');
  mkdirSync(DIST, { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!holderAlive(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lock} is still held after 10 minutes`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function holderAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    // Being created right now, or its creator died before writing the pid.
    const s = statSync(lock, { throwIfNoEntry: false });
    return s !== undefined && Date.now() - s.mtimeMs < 10_000;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The agent executable and its bootstrap template in dist/agent/. */
export function ensureAgent(): Promise<AgentOutputs> {
  return locked(async () => {
    mkdirSync(WORK, { recursive: true });
    const out = join(DIST, 'agent');
    mkdirSync(out, { recursive: true });
    return buildAgent({ work: WORK, out, node: await strippedNode(WORK) });
  });
}
