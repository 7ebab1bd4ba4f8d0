import assert from "node:assert/strict";
import type { Attrs } from "../../compiler/ir/attrs.js";
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { verifyGraph, formatDiagnostic } from "../../compiler/verify.js";
import { runGraph } from "../../backends/cpu/interpreter.js";

/**
 * Runs one op end to end on concrete inputs: builds a graph (types inferred from the inputs'
 * static shapes), verifies it, and executes it with the CPU interpreter, which also checks every
 * result against its inferred type. Returns the op's outputs and the graph.
 */
export function runSingleOp(
  op: string,
  inputs: readonly (Tensor | null)[],
  attrs: Attrs = {},
  numOutputs = 1,
): { outs: Tensor[]; g: Graph } {
  const b = new GraphBuilder("single");
  const vals = inputs.map((t, i) => (t ? b.input(`in${i}`, t.dtype, t.shape) : null));
  const outs = b.ops(op, vals, attrs, numOutputs);
  const g = b.output(...outs);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  const feeds = new Map<string, Tensor>();
  inputs.forEach((t, i) => t && feeds.set(`in${i}`, t));
  const res = runGraph(g, feeds);
  return { outs: outs.map((o) => res.get(o.name)!), g };
}
