import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fmt, machine, printFigures, type Figure } from './lib.js';

/**
 * `npm run bench`: runs every benchmark in turn and writes bench/results.md with each
 * figure, its target and the reference measured in the same run. `npm run bench -- NAME`
 * runs only the named ones and replaces just their rows in bench/results.md (noting when).
 */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<Figure[]> }>> = {
  protocol: () => import('./protocol.js'),
  'spoke-checkin': () => import('./spoke-checkin.js'),
  'query-flood': () => import('./query-flood.js'),
  envoy: () => import('./envoy.js'),
  'hub-query': () => import('./hub-query.js'),
  'spoke-memory': () => import('./spoke-memory.js'),
  'hub-routing': () => import('./hub-routing.js'),
  enroll: () => import('./enroll.js'),
  jobs: () => import('./jobs.js'),
  rollout: () => import('./rollout.js'),
  'hub-failover': () => import('./hub-failover.js'),
  'config-publish': () => import('./config-publish.js'),
  policies: () => import('./policies.js'),
  demo: () => import('./demo.js'),
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

const row = (f: Figure) =>
  `| ${f.bench} | ${f.name} | ${fmt(f.value)} ${f.unit} | ${f.target || ''} | ${f.reference ?? ''} | ${f.pass === undefined ? '' : f.pass ? 'pass' : '**miss**'} |`;
const day = new Date().toISOString().slice(0, 10);
const file = new URL('./results.md', import.meta.url);
if (only.length === 0) {
  writeFileSync(
    file,
    `# Benchmark results

Machine: ${machine()}. Written by \`npm run bench\` on ${day}.

| bench | figure | value | target | reference (same run) | verdict |
| --- | --- | --- | --- | --- | --- |
${all.map(row).join('\n')}
`,
  );
} else if (existsSync(file)) {
  // One bench re-run alone: its rows replace the old ones in the main table, in place (or at
  // its end), and a note says when. Tables further down (before/after notes) are left as written.
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const head = lines.findIndex((l) => l.startsWith('| bench | figure |'));
  let end = head + 1;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  const benchOf = (l: string) => /^\| ([^|]+?) \|/.exec(l)?.[1];
  const out: string[] = [];
  let placed = false;
  lines.forEach((l, i) => {
    const b = head >= 0 && i > head && i < end ? benchOf(l) : undefined;
    if (b !== undefined && names.includes(b)) {
      if (!placed) out.push(...all.map(row));
      placed = true;
    } else if (!l.startsWith('Re-run alone:') || !names.every((n) => l.includes(`\`${n}\``))) out.push(l);
    if (i === end - 1 && !placed) {
      out.push(...all.map(row));
      placed = true;
    }
  });
  if (!placed) out.push('', ...all.map(row));
  out.push('', `Re-run alone: ${names.map((n) => `\`${n}\``).join(', ')} on ${day} (${machine()}).`);
  writeFileSync(file, `${out.join('\n').replace(/\n{3,}/g, '\n\n')}\n`);
}
const missed = all.filter((f) => f.pass === false);
if (missed.length > 0) console.log(`\n${missed.length} figure(s) missed their target`);
