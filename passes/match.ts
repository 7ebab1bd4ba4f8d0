import { computeKnown, inferNode } from "../compiler/infer.js";
import type { Attrs } from "../compiler/ir/attrs.js";
import type { Graph, Node, NodeOptions, Value } from "../compiler/ir/graph.js";
import { type Dim, dimEquals } from "../compiler/ir/sym.js";
import { makeTensor } from "../compiler/ir/tensor.js";
import { tensorType } from "../compiler/ir/types.js";
import "../compiler/ops/index.js";
import { getOp } from "../compiler/ops/registry.js";
import { splatValue } from "./canonicalize.js";

// Helpers the structure-recognition passes share: producer/user queries and node insertion with inference.

/** The producer of `v` when it is an `op` node. */
export function producerOp(g: Graph, v: Value | null | undefined, op: string): Node | undefined {
  const p = v ? g.producer(v) : undefined;
  return p?.op === op ? p : undefined;
}

/** The only node reading `v`, when `v` is not also a graph output. */
export function soleUser(g: Graph, v: Value): Node | undefined {
  if (g.outputs.includes(v)) return undefined;
  const us = g.users(v);
  return us.length === 1 ? us[0] : undefined;
}

/** The splat value of a constant operand (re-exported so fusions read one module). */
export function constScalar(g: Graph, v: Value | null | undefined): number | undefined {
  return v ? splatValue(g, v) : undefined;
}

/** For a binary node with one splat-constant operand: the other operand and the constant. */
export function splitConst(g: Graph, n: Node): { x: Value; c: number; constFirst: boolean } | undefined {
  const [a, b] = n.inputs;
  if (!a || !b) return undefined;
  const cb = constScalar(g, b);
  if (cb !== undefined && constScalar(g, a) === undefined) return { x: a, c: cb, constFirst: false };
  const ca = constScalar(g, a);
  if (ca !== undefined && cb === undefined) return { x: b, c: ca, constFirst: true };
  return undefined;
}

/** Inserts `op` before `anchor`, inferring its output types (throws OpError on misuse). */
export function insertInferred(
  g: Graph,
  anchor: Node,
  op: string,
  inputs: readonly (Value | null)[],
  attrs: Attrs = {},
  opts: NodeOptions & { numOutputs?: number } = {},
): Node {
  const def = getOp(op);
  if (!def) throw new Error(`unknown op ${op}`);
  const n = opts.numOutputs ?? 1;
  const types = inferNode(g, def, { op, attrs, inputs }, n, { known: computeKnown(g), dataDims: "mint" });
  return g.insertBefore(anchor, op, inputs, types, attrs, opts);
}

/** A new i64 vector constant. */
export function i64Const(g: Graph, vals: readonly number[], hint = "shape"): Value {
  return g.addConstant(tensorType("i64", [vals.length]), hint, makeTensor("i64", [vals.length], vals));
}

/**
 * A constant Reshape target that turns `from` into `to` for every value of the symbols: static
 * dims as numbers, a symbolic dim equal to the input's at the same position as 0 (when
 * `allowzero` is off), and at most one other symbolic dim as -1. Undefined when none exists.
 */
export function reshapeTarget(
  from: readonly Dim[],
  to: readonly Dim[],
  allowzero = false,
): number[] | undefined {
  const out: number[] = [];
  let inferred = false;
  for (let i = 0; i < to.length; i++) {
    const d = to[i];
    if (typeof d === "number") {
      if (d === 0 && !allowzero) return undefined; // 0 would mean "copy"
      out.push(d);
    } else if (!allowzero && i < from.length && dimEquals(from[i], d)) out.push(0);
    else if (!inferred) {
      inferred = true;
      out.push(-1);
    } else return undefined;
  }
  return out;
}

/** Same numbers in the same order. */
export function sameInts(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Transpose's perm attribute (ONNX default: reversed axes). */
export function permOf(n: Node): number[] {
  const p = n.attrs.perm;
  if (Array.isArray(p)) return p as number[];
  const r = n.inputs[0]?.type.dims.length ?? 0;
  return Array.from({ length: r }, (_, i) => r - 1 - i);
}
