import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { computeKnown, type InferMode, MAX_KNOWN_ELEMENTS, symbolicValue } from "../compiler/infer.js";
import { isFloat } from "../compiler/ir/dtype.js";
import type { Dim } from "../compiler/ir/sym.js";
import { makeTensor, numel, type Tensor } from "../compiler/ir/tensor.js";
import { printType, type TensorType } from "../compiler/ir/types.js";
import "../compiler/ops/index.js";
import { getOp, OpError, type OpDef, refCtx } from "../compiler/ops/registry.js";
import type { Pass } from "./manager.js";
import { nodeLabel } from "./rewrite.js";

/**
 * Evaluates pure nodes whose inputs are all constants with data (through the op's reference,
 * the same semantics every backend is checked against) and nodes whose output 0 is known at
 * compile time through symbolic evaluation (Shape of static dims). One forward sweep reaches
 * a fixpoint because folded results feed later nodes in topological order.
 */
export const foldConstantsPass: Pass = {
  name: "fold-constants",
  description: "evaluate pure nodes on constant inputs and replace them by constants",
  run(g, ctx) {
    const known = computeKnown(g);
    const mode: InferMode = { known, dataDims: "declared" };
    let changed = false;
    for (const n of [...g.nodes]) {
      const def = getOp(n.op);
      if (!def) continue;
      const sv = symbolicValue(g, def, n, mode);
      if (sv) known.set(n.outputs[0], sv);
      const fits = n.outputs.every((o) => isStatic(o.type) && staticNumel(o.type) <= ctx.foldMaxElements);
      if (!def.pure || !fits) continue;
      const tensors = evaluate(g, def, n) ?? fromSymbolic(n, sv);
      if (!tensors) continue;
      for (const [v, t] of replaceByConstants(g, n, tensors))
        if (!isFloat(t.dtype) && t.data.length <= MAX_KNOWN_ELEMENTS) known.set(v, Array.from(t.data));
      ctx.remarks.push(`fold-constants: folded ${nodeLabel(n)}`);
      changed = true;
    }
    return changed;
  },
};

function isStatic(t: TensorType): boolean {
  return t.dims.every((d) => typeof d === "number");
}

function staticNumel(t: TensorType): number {
  return numel(t.dims as number[]);
}

/** Runs the reference when every present input is a constant with data; undefined otherwise. */
function evaluate(g: Graph, def: OpDef, n: Node): Tensor[] | undefined {
  const args: (Tensor | null)[] = [];
  for (const v of n.inputs) {
    if (v === null) {
      args.push(null);
      continue;
    }
    const data = g.constants.get(v)?.data;
    if (!data) return undefined;
    args.push(data);
  }
  let outs: Tensor[];
  try {
    outs = def.reference(args, refCtx(def, n.attrs, n.outputs.length));
  } catch (e) {
    // Bad data (e.g. an out-of-range index) is left for run time to report where it happens.
    if (e instanceof OpError) return undefined;
    throw e;
  }
  n.outputs.forEach((o, i) => {
    const t = outs[i];
    const ok =
      t &&
      t.dtype === o.type.dtype &&
      t.shape.length === o.type.dims.length &&
      t.shape.every((d, k) => d === o.type.dims[k]);
    if (!ok)
      throw new Error(
        `${nodeLabel(n)}: the reference gives ${t ? `${t.dtype}[${t.shape.join(", ")}]` : "no value"} for %${o.name}, declared ${printType(o.type)}`,
      );
  });
  return outs.slice(0, n.outputs.length);
}

/** A single-output node whose value is fully known as plain numbers (no symbols) becomes a constant. */
function fromSymbolic(n: Node, sv: readonly Dim[] | undefined): Tensor[] | undefined {
  if (n.outputs.length !== 1) return undefined;
  const t = n.outputs[0].type;
  if (!sv || !sv.every((d: Dim) => typeof d === "number") || sv.length !== staticNumel(t)) return undefined;
  return [makeTensor(t.dtype, t.dims as number[], sv as number[])];
}

/** Swaps the node's results for constants of the same names; returns the new constants. */
function replaceByConstants(g: Graph, n: Node, tensors: readonly Tensor[]): [Value, Tensor][] {
  const olds = [...n.outputs];
  g.erase(n, true); // frees the names so the constants can take them over
  return olds.map((o, i) => {
    const c = g.addConstant(o.type, o.name, tensors[i]);
    g.replaceAllUses(o, c);
    return [c, tensors[i]];
  });
}
