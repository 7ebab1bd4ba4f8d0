import { computeKnown, inferNode } from "../../../compiler/infer.js";
import { Graph, type Value } from "../../../compiler/ir/graph.js";
import type { Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType, type TensorType } from "../../../compiler/ir/types.js";
import "../../../compiler/ops/index.js";
import { getOp, refCtx, type OpDef } from "../../../compiler/ops/registry.js";
import type { OpCase } from "./types.js";

export interface Prepared {
  readonly def: OpDef;
  readonly inTypes: readonly (TensorType | null)[];
  readonly outTypes: readonly TensorType[];
  readonly want: readonly Tensor[];
}

/** Infers a case's (possibly symbolic) output types and computes the reference outputs. */
export function prepare(c: OpCase): Prepared {
  const def = getOp(c.op);
  if (!def) throw new Error(`${c.name}: op ${c.op} is not registered`);
  const inTypes = c.types ?? c.inputs.map((t) => (t ? tensorType(t.dtype, t.shape) : null));
  const g = new Graph("case");
  const vals: (Value | null)[] = inTypes.map((t, i) => {
    if (!t) return null;
    const data = c.inputs[i];
    return c.consts?.includes(i) && data ? g.addConstant(t, `x${i}`, data) : g.addInput(t, `x${i}`);
  });
  const numOutputs = c.numOutputs ?? 1;
  const outTypes = inferNode(g, def, { op: c.op, attrs: c.attrs ?? {}, inputs: vals }, numOutputs, {
    known: computeKnown(g),
    dataDims: "mint",
  });
  const want = def.reference(c.inputs, refCtx(def, c.attrs ?? {}, numOutputs, c.env ?? {}));
  return { def, inTypes, outTypes, want };
}

/** Problems comparing backend outputs with the reference (empty when they match). */
export function compare(c: OpCase, got: readonly Tensor[], want: readonly Tensor[]): string[] {
  const tol = c.tol ?? 1e-5;
  const errs: string[] = [];
  want.forEach((w, o) => {
    const g = got[o];
    if (!g) return errs.push(`output ${o} missing`);
    if (g.shape.join(",") !== w.shape.join(","))
      return errs.push(`output ${o}: shape [${g.shape}] != [${w.shape}]`);
    let bad = 0;
    let first = "";
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i];
      const b = w.data[i];
      // a === b first: equal infinities differ by NaN.
      const ok = a === b || (Number.isNaN(b) ? Number.isNaN(a) : Math.abs(a - b) <= tol * (1 + Math.abs(b)));
      if (!ok && bad++ === 0) first = `[${i}] got ${a}, want ${b}`;
    }
    if (bad) errs.push(`output ${o}: ${bad} of ${w.data.length} elements differ, first ${first}`);
    return undefined;
  });
  return errs;
}
