import { resourceLabel, type Resource } from './policy-resources.js';

/**
 * The order resources are applied in. Each resource is a node; `require:` and `notify:` add
 * edges (a notifier comes before what it notifies), and a policy's `require: [other]` puts every
 * resource of `other` before every resource of this policy (through one node per policy, so
 * the edges stay linear). Otherwise file order holds: policies by file name, resources as written.
 */
export interface GraphPolicy {
  name: string;
  require?: readonly string[] | undefined;
  resources: readonly Resource[];
}

/** Where an edge was written: the policy (index) and the key path inside its file. */
export interface Origin {
  policy: number;
  path: string;
}

export interface GraphNode {
  id: number;
  /** Index of the policy this node belongs to. */
  policy: number;
  /** The resource, or undefined for a policy's end node. */
  resource: Resource | undefined;
  /** Index of the resource in its policy. */
  index: number;
  label: string;
  /** Nodes that must be applied before this one. */
  deps: number[];
  /** Nodes whose change triggers this one (their `notify:` names it). */
  notifiers: number[];
}

export interface GraphProblem {
  origin: Origin;
  ref: string;
  /** `missing`: no such resource or policy; `ambiguous`: several resources of one policy carry the label. */
  kind: 'missing' | 'ambiguous' | 'self';
  /** The node that holds the reference (for resource references). */
  node?: number;
}

export interface Graph {
  nodes: GraphNode[];
  problems: GraphProblem[];
  edges: { from: number; to: number; origin?: Origin }[];
}

export function buildGraph(policies: readonly GraphPolicy[]): Graph {
  const nodes: GraphNode[] = [];
  const edges: Graph['edges'] = [];
  const problems: GraphProblem[] = [];
  const local: Map<string, number[]>[] = [];
  const global = new Map<string, number[]>();
  policies.forEach((p, pi) => {
    const m = new Map<string, number[]>();
    local.push(m);
    p.resources.forEach((r, ri) => {
      const id = nodes.length;
      const label = resourceLabel(r);
      nodes.push({ id, policy: pi, resource: r, index: ri, label, deps: [], notifiers: [] });
      m.set(label, [...(m.get(label) ?? []), id]);
      global.set(label, [...(global.get(label) ?? []), id]);
    });
  });
  const endOf = policies.map((p, pi) => {
    const id = nodes.length;
    nodes.push({ id, policy: pi, resource: undefined, index: -1, label: `policy:${p.name}`, deps: [], notifiers: [] });
    return id;
  });
  const edge = (from: number, to: number, origin?: Origin) => {
    (nodes[to] as GraphNode).deps.push(from);
    edges.push(origin ? { from, to, origin } : { from, to });
  };
  // Same policy first; otherwise every resource of that label in the other policies given.
  const resolve = (ref: string, pi: number, origin: Origin, node: number): number[] => {
    const mine = local[pi]?.get(ref);
    if (mine && mine.length > 1) problems.push({ origin, ref, kind: 'ambiguous', node });
    const found = mine ?? global.get(ref) ?? [];
    if (found.length === 0) problems.push({ origin, ref, kind: 'missing', node });
    if (found.includes(node)) {
      problems.push({ origin, ref, kind: 'self', node });
      return [];
    }
    return mine && mine.length > 1 ? [] : found;
  };
  for (const n of nodes) {
    const r = n.resource;
    if (!r) continue;
    r.require?.forEach((ref, k) => {
      const origin = { policy: n.policy, path: `resources[${n.index}].require[${k}]` };
      for (const dep of resolve(ref, n.policy, origin, n.id)) edge(dep, n.id, origin);
    });
    r.notify?.forEach((ref, k) => {
      const origin = { policy: n.policy, path: `resources[${n.index}].notify[${k}]` };
      for (const target of resolve(ref, n.policy, origin, n.id)) {
        edge(n.id, target, origin);
        (nodes[target] as GraphNode).notifiers.push(n.id);
      }
    });
    edge(n.id, endOf[n.policy] as number);
  }
  const byName = new Map(policies.map((p, pi) => [p.name, pi]));
  policies.forEach((p, pi) => {
    p.require?.forEach((name, k) => {
      const origin = { policy: pi, path: `require[${k}]` };
      const other = byName.get(name);
      if (other === undefined) problems.push({ origin, ref: name, kind: 'missing' });
      else if (other === pi) problems.push({ origin, ref: name, kind: 'self' });
      else for (const n of nodes) if (n.policy === pi && n.resource) edge(endOf[other] as number, n.id, origin);
    });
  });
  return { nodes, edges, problems };
}

/** The first ordering cycle found, as its nodes in order (first repeated at the end), or undefined. */
export function findCycle(g: Graph): { nodes: number[]; origin: Origin | undefined } | undefined {
  const n = g.nodes.length;
  const color = new Uint8Array(n);
  const out: number[][] = Array.from({ length: n }, () => []);
  for (const e of g.edges) (out[e.from] as number[]).push(e.to);
  for (let start = 0; start < n; start++) {
    if (color[start]) continue;
    const stack: { node: number; next: number }[] = [{ node: start, next: 0 }];
    color[start] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { node: number; next: number };
      const succ = out[top.node] as number[];
      if (top.next >= succ.length) {
        color[top.node] = 2;
        stack.pop();
        continue;
      }
      const to = succ[top.next++] as number;
      if (color[to] === 0) {
        color[to] = 1;
        stack.push({ node: to, next: 0 });
      } else if (color[to] === 1) {
        const from = stack.findIndex((s) => s.node === to);
        const cycle = [...stack.slice(from).map((s) => s.node), to];
        // Report it where the operator wrote one of its edges.
        let origin: Origin | undefined;
        for (let i = 0; i + 1 < cycle.length && !origin; i++)
          origin = g.edges.find((e) => e.from === cycle[i] && e.to === cycle[i + 1] && e.origin)?.origin;
        return { nodes: cycle, origin };
      }
    }
  }
  return undefined;
}

/**
 * Applies `require`/`notify` order while keeping file order wherever they leave a choice
 * (Kahn's algorithm, always taking the lowest-numbered ready node). Assumes no cycle.
 */
export function applyOrder(g: Graph): number[] {
  const n = g.nodes.length;
  const pending = new Int32Array(n);
  const out: number[][] = Array.from({ length: n }, () => []);
  for (const node of g.nodes) {
    pending[node.id] = node.deps.length;
    for (const d of node.deps) (out[d] as number[]).push(node.id);
  }
  const heap: number[] = [];
  const push = (v: number) => {
    heap.push(v);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((heap[p] as number) <= v) break;
      heap[i] = heap[p] as number;
      i = p;
    }
    heap[i] = v;
  };
  const pop = (): number => {
    const top = heap[0] as number;
    const last = heap.pop() as number;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && (heap[r] as number) < (heap[l] as number) ? r : l;
        if ((heap[c] as number) >= last) break;
        heap[i] = heap[c] as number;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  };
  for (let i = 0; i < n; i++) if (pending[i] === 0) push(i);
  const order: number[] = [];
  while (heap.length > 0) {
    const v = pop();
    order.push(v);
    for (const w of out[v] as number[]) {
      const left = (pending[w] as number) - 1;
      pending[w] = left;
      if (left === 0) push(w);
    }
  }
  return order;
}
