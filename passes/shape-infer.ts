import type { Graph, Node } from "../compiler/ir/graph.js";
import { computeKnown, inferNode, type InferMode, symbolicValue } from "../compiler/infer.js";
import { type Dim, dimEquals, isSym, substitute, sym } from "../compiler/ir/sym.js";
import { printType, sameAxes, sameShapeType, tensorType, type TensorType } from "../compiler/ir/types.js";
import "../compiler/ops/index.js";
import { getOp, OpError } from "../compiler/ops/registry.js";
import type { Pass } from "./manager.js";
import { nodeLabel } from "./rewrite.js";

/**
 * Re-infers every node's output types in graph order, so that a change upstream (a new input
 * shape, a pruned token axis) reaches every value. Axis roles the inference cannot see are kept.
 */
export const shapeInferPass: Pass = {
  name: "shape-infer",
  description: "re-infer every node's output types in order",
  run(g, ctx) {
    const known = computeKnown(g);
    const mode: InferMode = { known, dataDims: "mint" };
    let changed = false;
    for (const n of g.nodes) {
      const def = getOp(n.op);
      if (!def) throw new Error(`${nodeLabel(n)}: unknown op '${n.op}'`);
      const before = new Set(g.symbols.keys());
      let types: TensorType[];
      try {
        types = inferNode(g, def, n, n.outputs.length, mode);
      } catch (e) {
        if (e instanceof OpError) throw new Error(`${nodeLabel(n)}: ${e.message}`, { cause: e });
        throw e;
      }
      types = reuseDataDims(g, n, types, before);
      n.outputs.forEach((o, i) => {
        const t = keepRoles(types[i], o.type);
        if (sameShapeType(t, o.type) && sameAxes(t, o.type)) return;
        g.setType(o, t);
        ctx.remarks.push(`shape-infer: %${o.name} is now ${printType(t)}`);
        changed = true;
      });
      const sv = symbolicValue(g, def, n, mode);
      if (sv) known.set(n.outputs[0], sv);
    }
    return changed;
  },
};

/** Declared roles survive when inference names none (ops that do not propagate roles). */
function keepRoles(inferred: TensorType, declared: TensorType): TensorType {
  if (inferred.axes || !declared.axes || declared.dims.length !== inferred.dims.length) return inferred;
  return tensorType(inferred.dtype, inferred.dims, declared.axes);
}

/**
 * Minting gives every data-dependent dim a fresh symbol; when the node already declares a symbol
 * with the same capacity at that position, that one is kept instead, so re-running is a no-op.
 */
function reuseDataDims(g: Graph, n: Node, types: TensorType[], before: ReadonlySet<string>): TensorType[] {
  const minted = [...g.symbols.keys()].filter((s) => !before.has(s));
  if (minted.length === 0) return types;
  const map = new Map<string, Dim>();
  types.forEach((t, i) =>
    t.dims.forEach((d, axis) => {
      const m = minted.find((s) => dimEquals(d, sym(s)));
      const old = n.outputs[i]?.type.dims[axis];
      if (!m || map.has(m) || old === undefined || !isSym(old)) return;
      const oldDecl = g.symbols.get(old.key);
      const cap = g.symbols.get(m)?.capacity;
      if (oldDecl && !minted.includes(old.key) && capEquals(oldDecl.capacity, cap)) map.set(m, old);
    }),
  );
  for (const s of map.keys()) g.symbols.delete(s);
  if (map.size === 0) return types;
  return types.map((t) =>
    tensorType(
      t.dtype,
      t.dims.map((d) => substitute(d, map)),
      t.axes,
    ),
  );
}

function capEquals(a: Dim | undefined, b: Dim | undefined): boolean {
  return a === undefined || b === undefined ? a === b : dimEquals(a, b);
}
