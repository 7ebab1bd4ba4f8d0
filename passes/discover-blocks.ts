import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { type Dim, dimEquals } from "../compiler/ir/sym.js";
import { withDims } from "../compiler/ir/types.js";
import type { Pass } from "./manager.js";

/** One transformer block found in the graph. */
export interface Block {
  readonly index: number;
  /** The block's input on the residual stream. */
  readonly input: Value;
  readonly attention: Node;
  /** `input + attn(input)` and `mid + mlp(mid)`. */
  readonly attnAdd: Node;
  readonly mlpAdd: Node;
  readonly attnNodes: readonly Node[];
  readonly mlpNodes: readonly Node[];
  /** Key count of the attention, and the residual axis it comes from (-1 if not unique). */
  readonly tokens: Dim;
  readonly tokenAxis: number;
}

/** Nodes reachable forward from `from` (by data edges), as a set. */
function descendants(g: Graph, from: Value): Set<Node> {
  const seen = new Set<Node>();
  const live = new Set<Value>([from]);
  for (const n of g.nodes)
    if (n.inputs.some((v) => v && live.has(v))) {
      seen.add(n);
      for (const o of n.outputs) live.add(o);
    }
  return seen;
}

/** Nodes between `from` and `to`: descendants of `from` that `to` depends on (including to's producer). */
function between(g: Graph, from: Value, to: Value, prod: Map<Value, Node>): Node[] {
  const down = descendants(g, from);
  const out = new Set<Node>();
  const work = [to];
  while (work.length) {
    const n = prod.get(work.pop()!);
    if (!n || out.has(n) || !down.has(n)) continue;
    out.add(n);
    for (const v of n.inputs) if (v) work.push(v);
  }
  return g.nodes.filter((n) => out.has(n));
}

/** For an Add reading `x` directly: its other operand. */
function residualBranch(n: Node, x: Value): Value | undefined {
  if (n.op !== "Add" || n.inputs.length !== 2) return undefined;
  const [a, b] = n.inputs;
  return a === x ? (b ?? undefined) : b === x ? (a ?? undefined) : undefined;
}

/**
 * Finds transformer blocks in graph order: for each `attention`, the residual `Add(x, branch)`
 * whose branch contains it, then the next residual `Add(mid, mlp(mid))` over the result whose
 * branch has no attention. Read-only; see `discoverBlocksPass` for the annotations.
 */
export function findBlocks(g: Graph): Block[] {
  const prod = g.producerMap();
  const blocks: Block[] = [];
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  for (const att of g.nodes) {
    if (att.op !== "attention") continue;
    const fromAtt = descendants(g, att.outputs[0]);
    // The first Add after the attention reading it on one side and a value from before it on the other.
    let found: { add: Node; x: Value } | undefined;
    for (const n of g.nodes.slice(order.get(att)! + 1)) {
      if (n.op !== "Add" || !fromAtt.has(n)) continue;
      const x = n.inputs.find((v) => v && !(prod.get(v) && fromAtt.has(prod.get(v)!)));
      if (x && residualBranch(n, x) && descendants(g, x).has(att)) found = { add: n, x };
      if (found) break;
    }
    if (!found) continue;
    const mid = found.add.outputs[0];
    const attnNodes = between(g, found.x, residualBranch(found.add, found.x)!, prod);
    const mlpAdd = g.users(mid).find((u) => {
      const br = residualBranch(u, mid);
      return (
        br !== undefined &&
        br !== mid &&
        prod.has(br) &&
        !between(g, mid, br, prod).some((n) => n.op === "attention")
      );
    });
    if (!mlpAdd) continue;
    const mlpNodes = between(g, mid, residualBranch(mlpAdd, mid)!, prod);
    const k = att.inputs[1]!;
    const tokens = k.type.dims[2];
    const axes = found.x.type.dims.flatMap((d, i) => (dimEquals(d, tokens) ? [i] : []));
    blocks.push({
      index: blocks.length,
      input: found.x,
      attention: att,
      attnAdd: found.add,
      mlpAdd,
      attnNodes,
      mlpNodes,
      tokens,
      tokenAxis: axes.length === 1 ? axes[0] : -1,
    });
  }
  return blocks;
}

/** Marks `axis` of `v` with the token role, keeping other roles. */
function markToken(g: Graph, v: Value, axis: number): boolean {
  const t = v.type;
  if (t.axes?.[axis] === "token") return false;
  const axes = t.dims.map((_, i) => (i === axis ? "token" : (t.axes?.[i] ?? null)));
  g.setType(v, withDims(t, t.dims, axes));
  return true;
}

/**
 * Names transformer blocks: scopes `blocks.K` (the residual Adds), `blocks.K.attn` and
 * `blocks.K.mlp` (their branches), and marks the token axis (the one the attention's key count
 * comes from) on the residual stream values.
 */
export const discoverBlocksPass: Pass = {
  name: "discover-blocks",
  description:
    "scope transformer blocks (blocks.K, .attn, .mlp) and mark the token axis of the residual stream",
  run(g, ctx) {
    let changed = false;
    const scope = (n: Node, s: string): void => {
      if (n.scope === s) return;
      g.setScope(n, s);
      changed = true;
    };
    for (const b of findBlocks(g)) {
      const k = `blocks.${b.index}`;
      for (const n of b.attnNodes) scope(n, `${k}.attn`);
      for (const n of b.mlpNodes) scope(n, `${k}.mlp`);
      scope(b.attnAdd, k);
      scope(b.mlpAdd, k);
      if (b.tokenAxis >= 0)
        for (const v of [b.input, b.attnAdd.outputs[0], b.mlpAdd.outputs[0]])
          if (markToken(g, v, b.tokenAxis)) changed = true;
      ctx.remarks.push(`discover-blocks: ${k} (${b.attnNodes.length} attn, ${b.mlpNodes.length} mlp nodes)`);
    }
    return changed;
  },
};
