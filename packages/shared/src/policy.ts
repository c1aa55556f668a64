import { lstat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { type ConfigFileError, parseConfigLocated, readConfigFolder } from './config.js';
import { errorText } from './errors.js';
import { buildGraph, findCycle } from './policy-graph.js';
import { resourceSchema } from './policy-resources.js';
import { targetShape } from './policy-target.js';
import { arr, custom, def, json, obj, oneOf, opt, record, str, type Infer } from './schema.js';
import { Templates } from './template.js';

export { RESOURCE_KINDS, resourceLabel, resourceSchema } from './policy-resources.js';
export type { Resource, ResourceKind, ResourceOf } from './policy-resources.js';

/**
 * Policies live in the applied config bundle as `<config_dir>/policies/*.yaml` (and .yml),
 * read in file-name order. A file holds one policy (the README has every key and kind):
 *
 *   name: web            # defaults to the file name
 *   hosts: ["web*.dc1.*"]
 *   when: { os_id: debian }
 *   require: [base]      # every resource of policy "base" first
 *   vars: { workers: 4 } # for templates
 *   mode: audit          # overrides the agent's mode for this policy
 *   resources:           # in order, unless require/notify say otherwise
 *     - file: /etc/nginx/nginx.conf
 *       template: templates/nginx.conf.liquid
 *       notify: [service:nginx]
 *     - service: nginx
 *       state: running
 */

const POLICY_NAME = /^[A-Za-z0-9_.-]{1,200}$/;

export const policySchema = obj({
  name: opt(str({ min: 1, max: 200, pattern: POLICY_NAME, hint: 'must be letters, digits, ".", "-" or "_"' })),
  description: opt(str({ max: 2000 })),
  ...targetShape,
  match: opt(
    custom('match', () => {
      throw new Error('`match:` is now `hosts:` (hostname globs) and `when:` (trait conditions); see the README');
    }),
  ),
  mode: opt(oneOf(['enforce', 'audit'] as const)),
  vars: opt(record(json({ maxDepth: 8 }), { maxKeys: 1000 })),
  require: opt(arr(str({ min: 1, max: 200 }), { max: 100 })),
  resources: def(arr(resourceSchema, { max: 5000 }), []),
});

export type Policy = Omit<Infer<typeof policySchema>, 'match'> & {
  name: string;
  file: string;
  /** The line of a key path in the policy file, for problems found after parsing. */
  line: (path: string) => number;
};

export type PolicyError = ConfigFileError;

export interface LoadedPolicies {
  policies: Policy[];
  errors: PolicyError[];
}

/**
 * Reads every policy file of a bundle and checks them as a set: names unique, every
 * `require`/`notify` naming something that exists, and no ordering cycle. A bad file is
 * reported (file and line), never thrown.
 */
export function loadPolicies(configDir: string): LoadedPolicies {
  const policies: Policy[] = [];
  const errors = readConfigFolder(configDir, 'policies', (file, text, fileName) => {
    const { value: p, line } = parseConfigLocated(text, file, policySchema);
    const name = p.name ?? fileName;
    if (!POLICY_NAME.test(name))
      throw new Error(`${file}:1: name: the file name gives the policy name "${name}", which is not usable; set name:`);
    policies.push({ ...p, name, file, line });
  });
  const out: LoadedPolicies = { policies, errors };
  if (out.errors.length === 0) out.errors.push(...checkPolicySet(out.policies));
  return out;
}

const at = (p: Policy, path: string, message: string): PolicyError => ({
  file: p.file,
  message: `${p.file}:${p.line(path)}: ${path}: ${message}`,
});

/** Problems only visible across files: duplicate names, dangling references, cycles. */
export function checkPolicySet(policies: readonly Policy[]): PolicyError[] {
  const errors: PolicyError[] = [];
  const seen = new Map<string, Policy>();
  for (const p of policies) {
    const dup = seen.get(p.name);
    if (dup) errors.push(at(p, 'name', `policy "${p.name}" is already defined in ${dup.file}`));
    seen.set(p.name, p);
  }
  if (errors.length > 0) return errors;
  const g = buildGraph(policies);
  for (const pr of g.problems) {
    const p = policies[pr.origin.policy] as Policy;
    const isPolicy = pr.origin.path.startsWith('require');
    const why =
      pr.kind === 'self'
        ? `${JSON.stringify(pr.ref)} names the ${isPolicy ? 'policy' : 'resource'} itself`
        : pr.kind === 'ambiguous'
          ? `${JSON.stringify(pr.ref)} names several resources of policy ${p.name}; give each its own name:`
          : isPolicy
            ? `no policy named ${JSON.stringify(pr.ref)} in the bundle`
            : `no resource ${JSON.stringify(pr.ref)} in any policy (references are kind:name, as results label resources)`;
    errors.push(at(p, pr.origin.path, why));
  }
  if (errors.length > 0) return errors;
  const cycle = findCycle(g);
  if (cycle) {
    const origin = cycle.origin ?? { policy: g.nodes[cycle.nodes[0] as number]?.policy ?? 0, path: 'resources' };
    const names = cycle.nodes.map((id) => {
      const n = g.nodes[id];
      const p = policies[n?.policy ?? 0] as Policy;
      return n?.resource && p.name !== policies[origin.policy]?.name ? `${n.label} (policy ${p.name})` : n?.label;
    });
    errors.push(
      at(
        policies[origin.policy] as Policy,
        origin.path,
        `ordering cycle: ${names.join(' -> ')}; each must come before the next, so none can go first: remove one require or notify`,
      ),
    );
  }
  return errors;
}

/**
 * Everything the hub checks before it signs a bundle: each file, the set, and the bundle files
 * that resources name (`source:`, `template:` parsed as Liquid, `key_source:`).
 */
export async function validatePolicyBundle(configDir: string): Promise<LoadedPolicies> {
  const loaded = loadPolicies(configDir);
  if (loaded.errors.length > 0) return loaded;
  const root = resolve(configDir);
  let templates: Templates | undefined;
  for (const p of loaded.policies) {
    for (const [i, r] of p.resources.entries()) {
      const refs: [string, string][] = [];
      if (r.kind === 'file' && r.source) refs.push(['source', r.source]);
      if (r.kind === 'file' && r.template) refs.push(['template', r.template]);
      if (r.kind === 'repository' && r.key_source) refs.push(['key_source', r.key_source]);
      for (const [key, rel] of refs) {
        const path = `resources[${i}].${key}`;
        const abs = resolve(root, rel);
        const st = abs.startsWith(root + sep) ? await lstat(abs).catch(() => undefined) : undefined;
        if (!st?.isFile()) {
          loaded.errors.push(at(p, path, `${rel} is not a file in the config bundle (${relative(root, abs)})`));
          continue;
        }
        if (key !== 'template') continue;
        templates ??= new Templates(root);
        try {
          await templates.check(rel);
        } catch (e) {
          loaded.errors.push(at(p, path, errorText(e)));
        }
      }
    }
  }
  return loaded;
}
