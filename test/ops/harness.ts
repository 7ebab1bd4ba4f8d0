import type { Attrs } from "../../compiler/ir/attrs.js";
import { Graph, type Value } from "../../compiler/ir/graph.js";
import type { DType } from "../../compiler/ir/dtype.js";
import { type Dim, parseDim } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";

import { type AxisRole, type TensorType, printType, tensorType } from "../../compiler/ir/types.js";
import { computeKnown, inferNode } from "../../compiler/infer.js";
import "../../compiler/ops/index.js";
import { getOp, type OpDef, refCtx } from "../../compiler/ops/registry.js";

/** Small drivers for op tests: symbolic inference on a throwaway graph, and direct reference calls. */

export function opDef(name: string): OpDef {
  const def = getOp(name);
  if (!def) throw new Error(`op ${name} is not registered`);
  return def;
}

/** `ty("f32[B@batch, N, 64]")`: a type from its printed form (dims parsed with parseDim). */
export function ty(text: string): TensorType {
  const m = /^(\w+)\[(.*)\]$/.exec(text.trim());
  if (!m) throw new Error(`bad type ${text}`);
  const parts = m[2].trim() === "" ? [] : splitTop(m[2]);
  const dims: Dim[] = [];
  const roles: (AxisRole | null)[] = [];
  for (const p of parts) {
    const [d, role] = p.split("@");
    dims.push(parseDim(d.trim()));
    roles.push(role ? (role.trim() as AxisRole) : null);
  }
  return tensorType(m[1] as DType, dims, roles);
}

function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** An input of an inference case: a type, a constant tensor (its values become known), or absent. */
export type InferArg = TensorType | Tensor | null;

function isTensor(a: InferArg): a is Tensor {
  return a !== null && "shape" in a;
}

/** Infers a node's output types on a fresh graph; symbols of input types are declared. */
export function infer(
  op: string,
  args: readonly InferArg[],
  attrs: Attrs = {},
  numOutputs = 1,
): TensorType[] {
  const g = new Graph("t");
  const inputs: (Value | null)[] = args.map((a, i) => {
    if (a === null) return null;
    if (isTensor(a)) return g.addConstant(tensorType(a.dtype, a.shape), `c${i}`, a);
    return g.addInput(a, `x${i}`);
  });
  return inferNode(g, opDef(op), { op, attrs, inputs }, numOutputs, {
    known: computeKnown(g),
    dataDims: "mint",
  });
}

/** Printed output types of an inference case. */
export function inferStr(op: string, args: readonly InferArg[], attrs: Attrs = {}, numOutputs = 1): string[] {
  return infer(op, args, attrs, numOutputs).map(printType);
}

/** Runs an op's reference implementation. */
export function ref(
  op: string,
  inputs: readonly (Tensor | null)[],
  attrs: Attrs = {},
  numOutputs = 1,
): Tensor[] {
  const def = opDef(op);
  return def.reference(inputs, refCtx(def, attrs, numOutputs));
}
