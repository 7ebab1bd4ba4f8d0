import type { Graph, Node, Value } from "../ir/graph.js";
import { dimEquals, mul } from "../ir/sym.js";
import type { OpDef } from "../ops/registry.js";
import { broadcastOffset, elementwiseKernel, unravel } from "./builder.js";
import { KirError } from "./expr.js";
import { loadAs, lowerCtx, pointwiseCtx, toStorage } from "./lower.js";
import { type Expr, type Kernel, type Target, registerType, storageType } from "./types.js";

/**
 * Fusion of elementwise chains: pointwise nodes whose outputs have one shape are grouped so that
 * each group becomes one kernel computing the chain in registers. A group loads its external
 * inputs (broadcast as needed) and stores only the values used outside it.
 */

/** A failure while lowering one node (the scheduler adds the node's name and location). */
export class NodeError extends Error {
  constructor(
    readonly node: Node,
    message: string,
  ) {
    super(message);
  }
}

/** A node the fuser may put in a group: a pointwise op with one output and no absent inputs. */
export function fusible(n: Node, def: OpDef | undefined): boolean {
  return !!def?.pointwise && !def.view && n.outputs.length === 1 && n.inputs.every((v) => v !== null);
}

function sameDims(a: Value, b: Value): boolean {
  const x = a.type.dims;
  const y = b.type.dims;
  return x.length === y.length && x.every((d, i) => dimEquals(d, y[i]));
}

/**
 * Groups the fusible nodes of `g` (each group in topological order; non-fusible nodes are not in
 * any group). Greedy in node order: a node joins the group of a producer with the same output
 * shape unless that would make a cycle between kernels (a path leaving the group and coming
 * back) or need more than `maxParams` buffer parameters, in which case the chain is split.
 */
export function fusionGroups(
  g: Graph,
  defs: ReadonlyMap<Node, OpDef | undefined>,
  maxParams: number,
): Node[][] {
  const nodes = g.nodes;
  const pos = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  const producer = new Map<Value, Node>();
  const users = new Map<Value, Node[]>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const v of n.inputs) if (v) users.set(v, [...(users.get(v) ?? []), n]);
  }
  const outputs = new Set(g.outputs);
  const ok = nodes.map((n) => fusible(n, defs.get(n)));
  // Union-find over node positions; members and the last position per root.
  const parent = nodes.map((_, i) => i);
  const members = nodes.map((_, i) => [i]);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  const lastPos = (r: number): number => members[r][members[r].length - 1];

  /** Units directly downstream of unit `r` (other than itself). */
  const successors = (r: number): Set<number> => {
    const out = new Set<number>();
    for (const m of members[r])
      for (const o of nodes[m].outputs)
        for (const u of users.get(o) ?? []) {
          const s = find(pos.get(u)!);
          if (s !== r) out.add(s);
        }
    return out;
  };
  /** Whether `to` is reachable from `from` through at least one other unit. */
  const indirect = (from: number, to: number): boolean => {
    const limit = lastPos(to);
    const seen = new Set<number>([from, to]);
    const stack = [...successors(from)].filter((s) => s !== to);
    for (const s of stack) seen.add(s);
    while (stack.length) {
      const u = stack.pop()!;
      for (const s of successors(u)) {
        if (s === to) return true;
        // Topological order: a unit starting after `to` ends cannot reach it.
        if (seen.has(s) || members[s][0] > limit) continue;
        seen.add(s);
        stack.push(s);
      }
    }
    return false;
  };
  const paramCount = (ms: readonly number[]): number => {
    const inside = new Set(ms.map((m) => nodes[m]));
    const ext = new Set<Value>();
    let stored = 0;
    for (const m of ms) {
      const n = nodes[m];
      for (const v of n.inputs) if (v && !inside.has(producer.get(v)!)) ext.add(v);
      const o = n.outputs[0];
      if (outputs.has(o) || (users.get(o) ?? []).some((u) => !inside.has(u))) stored++;
    }
    return ext.size + stored;
  };

  nodes.forEach((n, i) => {
    if (!ok[i]) return;
    for (const v of n.inputs) {
      const q = v ? producer.get(v) : undefined;
      if (!q || !ok[pos.get(q)!] || !sameDims(q.outputs[0], n.outputs[0])) continue;
      const a = find(pos.get(q)!);
      const b = find(i);
      if (a === b) continue;
      const merged = [...members[a], ...members[b]].sort((x, y) => x - y);
      if (paramCount(merged) > maxParams) continue;
      if (indirect(a, b) || indirect(b, a)) continue;
      parent[b] = a;
      members[a] = merged;
      members[b] = [];
    }
  });
  const groups: Node[][] = [];
  nodes.forEach((_, i) => {
    if (ok[i] && find(i) === i) groups.push(members[i].map((m) => nodes[m]));
  });
  return groups;
}

/** A fused group lowered to one kernel, with the values bound to its parameters in order. */
export interface FusedKernel {
  readonly kernel: Kernel;
  /** External inputs (read), then stored values (written): one per kernel parameter. */
  readonly args: readonly Value[];
}

/**
 * One kernel for a group of same-shape pointwise nodes (in topological order): every invocation
 * computes one element of the chain in registers and stores the values in `stored`.
 */
export function fusedKernel(
  name: string,
  group: readonly Node[],
  defs: ReadonlyMap<Node, OpDef | undefined>,
  stored: ReadonlySet<Value>,
  target: Target,
): FusedKernel {
  const outDims = group[0].outputs[0].type.dims;
  const produced = new Set(group.map((n) => n.outputs[0]));
  const ext: Value[] = [];
  for (const n of group) for (const v of n.inputs) if (v && !produced.has(v) && !ext.includes(v)) ext.push(v);
  const outs = group.map((n) => n.outputs[0]).filter((o) => stored.has(o));
  if (outs.length === 0) throw new KirError(`fused kernel ${name} stores nothing`);
  const wg = Math.min(64, target.maxWorkgroupInvocations);
  const kernel = elementwiseKernel(name, mul(...outDims), wg, (kb) => {
    const inBufs = ext.map((v, j) => kb.buffer(`in${j}`, storageType(v.type.dtype, target), "read"));
    const outBufs = outs.map((v, j) => kb.buffer(`out${j}`, storageType(v.type.dtype, target), "read_write"));
    return (i) => {
      let idx: Expr[] | undefined;
      const regs = new Map<Value, Expr>();
      const value = (v: Value): Expr => {
        const r = regs.get(v);
        if (r) return r;
        const j = ext.indexOf(v);
        const same =
          v.type.dims.length === outDims.length && v.type.dims.every((d, a) => dimEquals(d, outDims[a]));
        const off = same ? i : broadcastOffset((idx ??= unravel(kb, i, outDims)), v.type.dims);
        const loaded = kb.let(`x${j}`, loadAs(kb, inBufs[j], off, v.type.dtype, target));
        regs.set(v, loaded);
        return loaded;
      };
      group.forEach((n, k) => {
        try {
          member(n, k);
        } catch (e) {
          if (e instanceof NodeError || !(e instanceof Error)) throw e;
          throw new NodeError(n, e.message);
        }
      });
      function member(n: Node, k: number): void {
        const def = defs.get(n);
        if (!def?.pointwise) throw new KirError(`${n.op} is not pointwise`);
        const o = n.outputs[0];
        const ctx = lowerCtx(
          def,
          name,
          n.attrs,
          n.inputs.map((v) => v?.type ?? null),
          [o.type],
          target,
        );
        const r = def.pointwise(
          n.inputs.map((v) => value(v!)),
          pointwiseCtx(ctx, def),
        );
        const want = registerType(o.type.dtype, target);
        if (r.t !== want)
          throw new KirError(
            `pointwise rule of ${n.op} produced ${r.t}, expected ${want} for ${o.type.dtype}`,
          );
        const reg = kb.let(`v${k}`, r);
        regs.set(o, reg);
        const j = outs.indexOf(o);
        if (j >= 0) kb.store(outBufs[j], i, toStorage(reg, o.type.dtype, target));
      }
    };
  });
  return { kernel, args: [...ext, ...outs] };
}
