import { canonicalHostname, errorText, isCanonicalHostname } from '@axle/shared';
import { type ImportDeps, importEnvoys } from './import.js';
import type { Change } from '../store/model.js';

/**
 * Directory entries stored before host names were canonical (0.1 kept names as envoys sent
 * them). On becoming primary the hub re-registers each under its canonical name (same key;
 * placed and adopted like an import) and then removes the old spelling. Where the canonical
 * name is already taken, or the name cannot be made canonical, the old entry is removed and
 * said so in the event log: that host enrolls again. Entries whose re-registration fails (a
 * spoke down) are left for the next start. See "Host names" in README.md.
 */
export async function canonicalizeDirectory(d: ImportDeps): Promise<void> {
  const legacy = [...d.state.envoys.values()]
    .filter((e) => !isCanonicalHostname(e.hostname))
    .sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  if (legacy.length === 0) return;
  const renames: { from: string; to: string; pubkey: string }[] = [];
  const dropped: { hostname: string; why: string }[] = [];
  const claimed = new Set<string>();
  for (const e of legacy) {
    let to: string;
    try {
      to = canonicalHostname(e.hostname);
    } catch (err) {
      dropped.push({ hostname: e.hostname, why: errorText(err) });
      continue;
    }
    if (d.state.envoys.has(to) || claimed.has(to)) {
      dropped.push({ hostname: e.hostname, why: `"${to}" is already enrolled` });
      continue;
    }
    claimed.add(to);
    renames.push({ from: e.hostname, to, pubkey: e.pubkey });
  }
  const res = await importEnvoys(
    d,
    renames.map((r) => ({ hostname: r.to, pubkey: r.pubkey })),
    'canonical host names',
  );
  const done = renames.filter((r) => d.state.envoys.get(r.to)?.pubkey === r.pubkey);
  const changes: Change[] = [...done.map((r) => r.from), ...dropped.map((x) => x.hostname)].map(
    (hostname): Change => ({ kind: 'envoy.remove', hostname }),
  );
  if (done.length > 0) {
    changes.push(
      d.events.change('envoy.renamed', {
        count: done.length,
        renamed: done.slice(0, 100).map((r) => ({ from: r.from, to: r.to })),
      }),
    );
  }
  for (const x of dropped) changes.push(d.events.change('envoy.removed', { hostname: x.hostname, reason: x.why }));
  if (changes.length > 0) {
    await d.state.applyAll(changes);
  }
  d.log.warn(
    { renamed: done.length, removed: dropped.length, left: renames.length - done.length, errors: res.errors },
    'stored host names that were not canonical: renamed or removed (see the event log)',
  );
}
