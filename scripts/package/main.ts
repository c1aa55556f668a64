/** `npm run package`: builds the agent executable and the Debian packages into dist/ (see build.ts). */
import { statSync } from 'node:fs';
import { relative } from 'node:path';
import { ensurePackages } from './build.js';
import { ROOT } from './esbuild.js';

const out = await ensurePackages();
const mib = (f: string) => `${(statSync(f).size / 2 ** 20).toFixed(1)} MiB`;
process.stdout.write(`${relative(ROOT, out.agent.exe)}  ${mib(out.agent.exe)}  sha256 ${out.agent.sha256}\n`);
for (const deb of Object.values(out.debs)) process.stdout.write(`${relative(ROOT, deb)}  ${mib(deb)}\n`);
