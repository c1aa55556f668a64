/** `npm run package`: builds the agent executable and the Debian packages into dist/ (see build.ts). */
import { relative } from 'node:path';
import { ensureAgent } from './build.js';
import { ROOT } from './esbuild.js';

const agent = await ensureAgent();
process.stdout.write(`${relative(ROOT, agent.exe)}  sha256 ${agent.sha256}\n`);
