import assert from "node:assert/strict";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown, symbolicValue } from "../../compiler/infer.js";
import type { Attrs } from "../../compiler/ir/attrs.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import type { DType } from "../../compiler/ir/dtype.js";
import { type Dim, parseDim, printDim } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { type AxisRole, printType } from "../../compiler/ir/types.js";
import { formatDiagnostic, verifyGraph } from "../../compiler/verify.js";
import { getOp } from "../../compiler/ops/registry.js";

/** Test drivers for the shape ops: one node on concrete inputs, run through the whole stack. */

/** An argument: a tensor fed as a graph input, a constant (`{ c }`, so its values are known), or absent. */
export type Arg = Tensor | { readonly c: Tensor } | null;

export function c(t: Tensor): { readonly c: Tensor } {
  return { c: t };
}

/** Known values of every value, derived the way the verifier does. */
export function knownValues(g: Graph): Map<Value, readonly Dim[]> {
  const known = computeKnown(g);
  for (const n of g.nodes) {
    const sv = symbolicValue(g, getOp(n.op)!, n, { known, dataDims: "declared" });
    if (sv) known.set(n.outputs[0], sv);
  }
  return known;
}

/**
 * Builds a one-node graph (types inferred), verifies it, runs the CPU interpreter (which checks
 * results against the inferred types) and, where the op evaluated output 0 at compile time,
 * checks those values equal the computed ones. Returns the outputs.
 */
export function runOp(op: string, args: readonly Arg[], attrs: Attrs = {}, numOutputs = 1): Tensor[] {
  const b = new GraphBuilder("t");
  const feeds = new Map<string, Tensor>();
  const vals = args.map((a, i) => {
    if (a === null) return null;
    if ("c" in a) return b.constant(a.c, `c${i}`);
    feeds.set(`x${i}`, a);
    return b.input(`x${i}`, a.dtype, a.shape);
  });
  const outs = b.ops(op, vals, attrs, numOutputs);
  const g = b.output(...outs);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  const res = runGraph(g, feeds);
  const got = outs.map((o) => res.get(o.name)!);
  const k = knownValues(g).get(outs[0]);
  if (k) assert.deepEqual([...k], Array.from(got[0].data), `${op}: compile-time values differ from the run`);
  return got;
}

/** Whether output 0 of a single-node run is known at compile time (for checking symbolic coverage). */
export function knownOf(g: Graph, v: Value): readonly Dim[] | undefined {
  return knownValues(g).get(v);
}

/** The op-test harness's helpers, under the names the shape tests use. */
export { opDef, ref as refRun } from "./harness.js";

export const iota = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** An i64 constant argument for runOp. */
export const i64 = (vals: number[]): { readonly c: Tensor } => c(makeTensor("i64", [vals.length], vals));

/** Infers one node on a fresh builder; string inputs are types like "f32[B@batch, N - 1]", arrays are i64 constants. */
export function inferOne(
  op: string,
  inputs: readonly (string | number[] | null)[],
  attrs: Record<string, number | number[]> = {},
  numOutputs = 1,
): string[] {
  const b = new GraphBuilder("t");
  const vals = inputs.map((x, i) => {
    if (x === null) return null;
    if (Array.isArray(x)) return b.const("i64", [x.length], x);
    const m = /^(\w+)\[(.*)\]$/.exec(x)!;
    const parts = m[2] === "" ? [] : m[2].split(",");
    const dims = parts.map((p) => parseDim(p.split("@")[0]));
    const roles = parts.map((p) => (p.split("@")[1] ?? null) as AxisRole | null);
    for (const d of dims) for (const s of printDim(d).match(/[A-Za-z_]\w*/g) ?? []) b.symbol(s);
    return b.input(`x${i}`, m[1] as DType, dims, roles);
  });
  return b.ops(op, vals, attrs, numOutputs).map((v) => printType(v.type));
}
