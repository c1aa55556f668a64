import { HostRouter } from '@axle/hub';
import { rate, type Figure } from './lib.js';

/**
 * Enrollment routing: decisions per second with 100 spokes of 5 patterns each (the pure
 * routing decision on a compiled router, host names spread over early, late and no match).
 * The whole enrollment path is bench/enroll.ts.
 */

export async function run(): Promise<Figure[]> {
  const spokes = Array.from({ length: 100 }, (_, i) => ({
    id: `s${i}`,
    patterns: [`*.dc${i}.example.com`, `web*.rack${i}.*`, `db?.zone${i}.*`, `{api,app}*.pod${i}.*`, `edge${i}-*.cdn.*`],
  }));
  const router = new HostRouter(spokes, 's0');
  const hosts = Array.from({ length: 4096 }, (_, i) => {
    const k = i % 4;
    const n = (i * 37) % 100;
    if (k === 0) return `web${i}.dc${n}.example.com`;
    if (k === 1) return `app${i}.pod${n}.k8s.example.com`;
    if (k === 2) return `edge${n}-${i}.cdn.example.net`;
    return `unmatched${i}.example.org`;
  });
  let i = 0;
  let sink = 0;
  const decisions = rate(() => {
    sink += router.first(hosts[i++ & 4095] as string)?.length ?? 0;
  }, 1500);
  const worst = rate(() => {
    sink += router.first('unmatched.example.org')?.length ?? 0;
  }, 1000);
  if (sink < 0) console.log(sink);

  return [
    {
      bench: 'hub-routing',
      name: 'routing decisions, 100 spokes x 5 patterns',
      value: decisions,
      unit: 'ops/s',
      target: '',
      reference: `no-match worst case ${Math.round(worst).toLocaleString('en-US')} ops/s`,
    },
  ];
}
