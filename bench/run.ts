import { writeFileSync } from 'node:fs';
import { fmt, machine, printFigures, type Figure } from './lib.js';

/**
 * `npm run bench`: runs every benchmark in turn and writes bench/results.md with each
 * figure, its target and the reference measured in the same run. `npm run bench -- NAME`
 * runs only the named ones.
 */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<Figure[]> }>> = {
  protocol: () => import('./protocol.js'),
  'spoke-checkin': () => import('./spoke-checkin.js'),
  'query-flood': () => import('./query-flood.js'),
  envoy: () => import('./envoy.js'),
  'hub-query': () => import('./hub-query.js'),
  'hub-routing': () => import('./hub-routing.js'),
  jobs: () => import('./jobs.js'),
  'hub-failover': () => import('./hub-failover.js'),
  'config-publish': () => import('./config-publish.js'),
  policies: () => import('./policies.js'),
};

const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = only.length > 0 ? only : Object.keys(BENCHES);
const all: Figure[] = [];
for (const name of names) {
  const load = BENCHES[name];
  if (!load) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  console.log(`--- ${name}`);
  const figs = await (await load()).run();
  printFigures(figs);
  all.push(...figs);
}

const rows = all.map(
  (f) =>
    `| ${f.bench} | ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.target || ''} | ${f.reference ?? ''} | ${f.pass === undefined ? '' : f.pass ? 'pass' : '**miss**'} |`,
);
const md = `# Benchmark results

Machine: ${machine()}. Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}.

| bench | figure | value | target | reference (same run) | verdict |
| --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
if (only.length === 0) writeFileSync(new URL('./results.md', import.meta.url), md);
const missed = all.filter((f) => f.pass === false);
if (missed.length > 0) console.log(`\n${missed.length} figure(s) missed their target`);
