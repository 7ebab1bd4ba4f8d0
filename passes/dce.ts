import type { Graph, Value } from "../compiler/ir/graph.js";
import type { Pass } from "./manager.js";
import { isPure, nodeLabel } from "./rewrite.js";

/**
 * Dead-code elimination: erases pure nodes none of whose results is used (by a node or as a
 * graph output) and constants nothing reads. One backward sweep with use counts suffices
 * because nodes are in topological order.
 */
export const dcePass: Pass = {
  name: "dce",
  description: "remove pure nodes whose results are unused, and unused constants",
  run(g, ctx) {
    const uses = new Map<Value, number>();
    const use = (v: Value | null, k: number): void => {
      if (v) uses.set(v, (uses.get(v) ?? 0) + k);
    };
    for (const n of g.nodes) for (const v of n.inputs) use(v, 1);
    for (const v of g.outputs) use(v, 1);
    let changed = false;
    for (const n of [...g.nodes].reverse()) {
      if (!isPure(n) || n.outputs.some((o) => (uses.get(o) ?? 0) > 0)) continue;
      ctx.remarks.push(`dce: erased ${nodeLabel(n)}`);
      g.erase(n);
      for (const v of n.inputs) use(v, -1);
      changed = true;
    }
    return eraseUnusedConstants(g, uses, ctx.remarks) || changed;
  },
};

function eraseUnusedConstants(g: Graph, uses: ReadonlyMap<Value, number>, remarks: string[]): boolean {
  let changed = false;
  for (const v of [...g.constants.keys()]) {
    if ((uses.get(v) ?? 0) > 0) continue;
    remarks.push(`dce: erased constant %${v.name}`);
    g.eraseConstant(v);
    changed = true;
  }
  return changed;
}
