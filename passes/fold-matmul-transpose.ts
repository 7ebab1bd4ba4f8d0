import type { Graph } from "../compiler/ir/graph.js";
import type { Pass } from "./manager.js";
import { permOf } from "./match.js";
import { eraseDeadProducers, nodeLabel } from "./rewrite.js";

/**
 * Folds a Transpose feeding MatMul's A into the MatMul's `perm_a` attribute when the transpose
 * keeps the last (K) axis last and B has no batch dims (a weight): the matmul kernel then reads
 * A's rows in the permuted order and the Transpose's copy kernel disappears. torch's
 * sequence-first attention exports `Transpose(x, [1, 0, 2])` before every QKV projection.
 * A transpose with other users stays for them. Chains compose: an existing `perm_a` reads
 * through the new one.
 */
export const foldMatmulTransposePass: Pass = {
  name: "fold-matmul-transpose",
  description: "fold a Transpose (K axis kept last) feeding MatMul's A into its perm_a attribute",
  run(g: Graph, ctx): boolean {
    let changed = false;
    for (const n of [...g.nodes]) {
      if (n.op !== "MatMul") continue;
      for (;;) {
        const [a, b] = n.inputs;
        const t = a ? g.producer(a) : undefined;
        if (!a || !b || !t || t.op !== "Transpose" || !t.inputs[0] || b.type.dims.length > 2) break;
        const r = a.type.dims.length;
        const tp = permOf(t);
        if (r < 3 || tp.length !== r || tp[r - 1] !== r - 1) break;
        // A = Transpose(x, tp) read through perm_a p: element axis i comes from x axis tp[p[i]].
        const prev = n.attrs.perm_a;
        const inner = Array.isArray(prev) ? (prev as number[]) : tp.map((_, i) => i);
        const perm = inner.map((i) => tp[i]);
        g.setInput(n, 0, t.inputs[0]);
        g.setAttrs(n, { ...n.attrs, perm_a: perm });
        ctx.remarks.push(
          `fold-matmul-transpose: ${nodeLabel(t)} into ${nodeLabel(n)} perm_a [${perm.join(", ")}]`,
        );
        eraseDeadProducers(g, [a]);
        changed = true;
      }
    }
    return changed;
  },
};
