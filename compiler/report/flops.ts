import { computeKnown, type InferMode, makeInferCtx, symbolicValue } from "../infer.js";
import type { Graph } from "../ir/graph.js";
import type { Dim } from "../ir/sym.js";
import "../ops/index.js";
import { getOp, OpError } from "../ops/registry.js";

/**
 * FLOPs of every node in graph order from the ops' `flops` functions (symbols left symbolic);
 * undefined where the op declares no count or cannot count this use.
 */
export function nodeFlops(g: Graph): (Dim | undefined)[] {
  const known = computeKnown(g);
  const mode: InferMode = { known, dataDims: "declared" };
  return g.nodes.map((n) => {
    const def = getOp(n.op);
    let flops: Dim | undefined;
    if (def?.flops) {
      try {
        flops = def.flops(
          makeInferCtx(g, def, n, n.outputs.length, mode),
          n.outputs.map((o) => o.type),
        );
      } catch (e) {
        if (!(e instanceof OpError)) throw e;
      }
    }
    const sv = def ? symbolicValue(g, def, n, mode) : undefined;
    if (sv) known.set(n.outputs[0], sv);
    return flops;
  });
}
