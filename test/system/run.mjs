#!/usr/bin/env node
/**
 * `npm run test:system [-- --full] [vitest args...]`: the whole-system fault scenarios.
 * --full (or AXLE_SYSTEM_FULL=1) runs them at full size: 3 hubs, 4 spokes, 1,000 envoys and
 * 5,000 reconnecting; without it, the CI size that `npm test` runs.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const full = args.includes('--full');
const rest = args.filter((a) => a !== '--full');
const vitest = `${root}node_modules/vitest/vitest.mjs`;
const env = { ...process.env, ...(full ? { AXLE_SYSTEM_FULL: '1' } : {}) };
// Full size: one fleet at a time; two fleets of 1,000 envoys would only fight over two cores.
const child = spawn(process.execPath, [vitest, 'run', 'test/system/', ...(full ? ['--maxWorkers=1'] : []), ...rest], {
  cwd: root,
  env,
  stdio: 'inherit',
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => child.kill(s));
child.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));
