/**
 * Long fuzz runs: `npm run fuzz -- --minutes N [--seed S] [--target NAME]`. Every target runs in
 * turn for a slice of the time with a fresh seed, until the minutes are spent. A failure prints
 * the target, the seed and fast-check's counterexample, and exits 1; replay it with
 * `npm run fuzz -- --seed S --target NAME` (and keep it as a regression test).
 */
import { startSuite } from './suite.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

const minutes = Number(arg('minutes') ?? 5);
const only = arg('target');
const fixedSeed = arg('seed') === undefined ? undefined : Number(arg('seed'));
if (!Number.isFinite(minutes) || minutes <= 0) {
  process.stderr.write('usage: npm run fuzz -- --minutes N [--seed S] [--target NAME]\n');
  process.exit(2);
}

const suite = await startSuite();
const targets = suite.targets.filter((t) => only === undefined || t.name === only);
if (targets.length === 0) {
  process.stderr.write(`no target "${only}"; targets: ${suite.targets.map((t) => t.name).join(', ')}\n`);
  await suite.stop();
  process.exit(2);
}
const deadline = Date.now() + minutes * 60_000;
const slice = Math.max(10_000, Math.min(60_000, (minutes * 60_000) / (targets.length * 2)));
let failed = false;

async function once(t: (typeof targets)[number], seed: number, timed: boolean): Promise<void> {
  try {
    await t.check({
      seed,
      endOnFailure: true,
      ...(timed
        ? {
            numRuns: Number.MAX_SAFE_INTEGER,
            interruptAfterTimeLimit: Math.max(1000, Math.min(slice, deadline - Date.now())),
            markInterruptAsFailure: false,
          }
        : { numRuns: t.runs }),
    });
    process.stdout.write(`fuzz ${t.name} seed ${seed}: ok; ${suite.stats.get(t.name)?.summary()}\n`);
  } catch (e) {
    failed = true;
    process.stdout.write(`\nFUZZ FAILURE in "${t.name}" with seed ${seed}\n${(e as Error).message}\n`);
    process.stdout.write(`replay: npm run fuzz -- --seed ${seed} --target '${t.name}'\n`);
  }
}

try {
  if (fixedSeed !== undefined) {
    for (const t of targets) if (!failed) await once(t, fixedSeed, false);
  } else {
    for (let round = 0; Date.now() < deadline && !failed; round++) {
      for (const t of targets) {
        if (failed || Date.now() >= deadline) break;
        await once(t, (Date.now() ^ (round * 7919)) >>> 0, true);
      }
    }
  }
} finally {
  await suite.stop();
}
process.exit(failed ? 1 : 0);
