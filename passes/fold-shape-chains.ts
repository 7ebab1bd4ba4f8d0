import type { Pass } from "./manager.js";
import { i64Const, reshapeTarget } from "./match.js";
import { eraseDeadProducers, nodeLabel } from "./rewrite.js";

/**
 * Exporters compute Reshape targets at run time (Shape → Gather → Unsqueeze → Concat) even when
 * inference already knows the result type symbolically. fold-constants folds the chains whose
 * values are plain numbers; this pass handles the rest: a Reshape whose target is not a constant
 * gets a constant target with 0 (copy the input dim) and -1 (inferred) for its symbolic dims,
 * when that reproduces the declared output type. The dead shape chain is erased.
 */
export const foldShapeChainsPass: Pass = {
  name: "fold-shape-chains",
  description:
    "replace computed Reshape targets by constants (0/-1 for symbolic dims) where the result type is known",
  run(g, ctx) {
    let changed = false;
    for (const n of [...g.nodes]) {
      if (n.op !== "Reshape") continue;
      const [x, shape] = n.inputs;
      if (!x || !shape || g.constants.get(shape)?.data) continue;
      const target = reshapeTarget(x.type.dims, n.outputs[0].type.dims, n.attrs.allowzero === 1);
      if (!target) continue;
      g.setInput(n, 1, i64Const(g, target, `${n.outputs[0].name}_shape`));
      eraseDeadProducers(g, [shape]);
      ctx.remarks.push(`fold-shape-chains: constant target [${target.join(", ")}] for ${nodeLabel(n)}`);
      changed = true;
    }
    return changed;
  },
};
