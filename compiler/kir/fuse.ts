import type { Graph, Node, Value } from "../ir/graph.js";
import { dimEquals, mul } from "../ir/sym.js";
import type { OpDef } from "../ops/registry.js";
import { type KernelBuilder, broadcastOffset, elementwiseKernel, unravel } from "./builder.js";
import { KirError } from "./expr.js";
import { loadAs, lowerCtx, pointwiseCtx, toStorage } from "./lower.js";
import { stridedOffset } from "./views.js";
import type { ElementStrides } from "../ops/registry.js";
import {
  type Epilogue,
  type EpilogueSite,
  type Expr,
  type Kernel,
  type Target,
  registerType,
  storageType,
} from "./types.js";

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
 * External inputs a kernel reads through strides (kir/views.ts): the scheduler binds `base`
 * in place of the value and loads element idx at the strides.
 */
export type InputViews = ReadonlyMap<Value, ElementStrides & { readonly base: Value }>;

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
  views: InputViews = new Map(),
): FusedKernel {
  const outDims = group[0].outputs[0].type.dims;
  const ext = externalInputs(group, new Set());
  const outs = group.map((n) => n.outputs[0]).filter((o) => stored.has(o));
  if (outs.length === 0) throw new KirError(`fused kernel ${name} stores nothing`);
  const wg = Math.min(64, target.maxWorkgroupInvocations);
  const kernel = elementwiseKernel(name, mul(...outDims), wg, (kb) => {
    const inBufs = ext.map((v, j) => kb.buffer(`in${j}`, storageType(v.type.dtype, target), "read"));
    const outBufs = outs.map((v, j) => kb.buffer(`out${j}`, storageType(v.type.dtype, target), "read_write"));
    return (i) => {
      let idx: Expr[] | undefined;
      const site = { flat: i, coords: () => (idx ??= unravel(kb, i, outDims)) };
      chainAt(kb, name, group, defs, ext, inBufs, site, new Map(), target, views, (o, reg) => {
        const j = outs.indexOf(o);
        if (j >= 0) kb.store(outBufs[j], i, toStorage(reg, o.type.dtype, target));
      });
    };
  });
  return { kernel, args: [...ext.map((v) => views.get(v)?.base ?? v), ...outs] };
}

/** Values a group reads that it does not compute (nor are `given`), in first-use order. */
function externalInputs(group: readonly Node[], given: ReadonlySet<Value>): Value[] {
  const produced = new Set(group.map((n) => n.outputs[0]));
  const ext: Value[] = [];
  for (const n of group)
    for (const v of n.inputs) if (v && !produced.has(v) && !given.has(v) && !ext.includes(v)) ext.push(v);
  return ext;
}

/**
 * Emits one element of a pointwise chain at `site`: external inputs are loaded from `inBufs`
 * (same-dims ones at the flat index, others broadcast from the coordinates), `seed` values are
 * registers already computed; `done(value, register)` is called for every member's result.
 */
function chainAt(
  kb: KernelBuilder,
  name: string,
  group: readonly Node[],
  defs: ReadonlyMap<Node, OpDef | undefined>,
  ext: readonly Value[],
  inBufs: readonly string[],
  site: EpilogueSite,
  seed: ReadonlyMap<Value, Expr>,
  target: Target,
  views: InputViews,
  done: (v: Value, reg: Expr) => void,
): void {
  const outDims = group[0].outputs[0].type.dims;
  const regs = new Map<Value, Expr>(seed);
  const value = (v: Value): Expr => {
    const r = regs.get(v);
    if (r) return r;
    const j = ext.indexOf(v);
    const same =
      v.type.dims.length === outDims.length && v.type.dims.every((d, a) => dimEquals(d, outDims[a]));
    const view = views.get(v);
    const off = view
      ? stridedOffset(site.coords(), v.type.dims, view)
      : same
        ? site.flat
        : broadcastOffset(site.coords(), v.type.dims);
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
      throw new KirError(`pointwise rule of ${n.op} produced ${r.t}, expected ${want} for ${o.type.dtype}`);
    const reg = kb.let(`v${k}`, r);
    regs.set(o, reg);
    done(o, reg);
  }
}

// ---------- epilogues: a pointwise group fused into the store of the op that feeds it ----------

/** A node whose lowering takes an epilogue, and the pointwise group applied to its output 0. */
export interface EpilogueFusion {
  readonly node: Node;
  readonly group: readonly Node[];
}

/**
 * Pairs each node whose op offers `lowerEpilogue` with the fusion group that consumes its single
 * output, when: every user of that output is in the group (and it is not a graph output), the
 * group's elements have the output's dims, the group produces exactly one value used outside it
 * (it becomes the node's stored output), and the merged kernel stays within `maxParams` buffers.
 * Merging cannot make a cycle: every path out of the node goes through the group, and a path from
 * the group back to the node would be a cycle in the graph.
 */
export function epilogueFusions(
  g: Graph,
  defs: ReadonlyMap<Node, OpDef | undefined>,
  groups: readonly (readonly Node[])[],
  maxParams: number,
): EpilogueFusion[] {
  const groupOf = new Map<Node, readonly Node[]>();
  for (const grp of groups) for (const n of grp) groupOf.set(n, grp);
  const users = new Map<Value, Node[]>();
  for (const n of g.nodes) for (const v of n.inputs) if (v) users.set(v, [...(users.get(v) ?? []), n]);
  const outputs = new Set(g.outputs);
  const taken = new Set<readonly Node[]>();
  const out: EpilogueFusion[] = [];
  for (const n of g.nodes) {
    if (!defs.get(n)?.lowerEpilogue || n.outputs.length !== 1) continue;
    const o = n.outputs[0];
    const us = users.get(o) ?? [];
    const grp = us.length ? groupOf.get(us[0]) : undefined;
    if (!grp || taken.has(grp) || outputs.has(o) || !us.every((u) => groupOf.get(u) === grp)) continue;
    if (!sameDims(grp[0].outputs[0], o)) continue;
    const inside = new Set(grp);
    const escaping = grp
      .map((m) => m.outputs[0])
      .filter((v) => outputs.has(v) || (users.get(v) ?? []).some((u) => !inside.has(u)));
    if (escaping.length !== 1) continue;
    const own = n.inputs.filter((v) => v !== null).length;
    if (own + externalInputs(grp, new Set([o])).length + 1 > maxParams) continue;
    taken.add(grp);
    out.push({ node: n, group: grp });
  }
  return out;
}

/** An epilogue computing `group` from `from` (the fed node's output 0) and storing `result`. */
export interface ChainEpilogue {
  readonly epilogue: Epilogue;
  /** The values bound to the epilogue's inputs, in order (strided ones: their bases). */
  readonly inputs: readonly Value[];
}

/** The `Epilogue` of a pointwise group applied to value `from`, whose result is `result`. */
export function chainEpilogue(
  name: string,
  group: readonly Node[],
  defs: ReadonlyMap<Node, OpDef | undefined>,
  from: Value,
  result: Value,
  target: Target,
  views: InputViews = new Map(),
): ChainEpilogue {
  const ext = externalInputs(group, new Set([from]));
  const epilogue: Epilogue = {
    inputs: ext.map((v) => v.type),
    dtype: result.type.dtype,
    setup(kb) {
      const inBufs = ext.map((v, j) => kb.buffer(`e${j}`, storageType(v.type.dtype, target), "read"));
      return (value, site) => {
        let got: Expr | undefined;
        let idx: readonly Expr[] | undefined;
        const cached = { flat: site.flat, coords: () => (idx ??= site.coords()) };
        chainAt(
          kb,
          name,
          group,
          defs,
          ext,
          inBufs,
          cached,
          new Map([[from, value]]),
          target,
          views,
          (v, reg) => {
            if (v === result) got = reg;
          },
        );
        if (!got) throw new KirError(`epilogue of ${name} does not compute %${result.name}`);
        return got;
      };
    },
  };
  return { epilogue, inputs: ext.map((v) => views.get(v)?.base ?? v) };
}
