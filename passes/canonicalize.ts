import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { sameShapeType } from "../compiler/ir/types.js";
import type { Pass } from "./manager.js";
import { type Pattern, type Rewrite, rewritePatterns } from "./rewrite.js";

/** The single value every element of a constant holds, if it is a splat with data. */
export function splatValue(g: Graph, v: Value | null): number | undefined {
  const d = v ? g.constants.get(v)?.data : undefined;
  if (!d || d.data.length === 0) return undefined;
  const x = d.data[0];
  for (let i = 1; i < d.data.length; i++) if (d.data[i] !== x) return undefined;
  return x;
}

/** `x` when the node's result has exactly x's dtype and dims, i.e. replacing it changes no type. */
function sameAs(n: Node, x: Value | null): Rewrite | undefined {
  return x && n.outputs.length === 1 && sameShapeType(n.outputs[0].type, x.type) ? [x] : undefined;
}

/** `op(x, k)` (and `op(k, x)` when `commutes`) is x for a splat constant k of `unit`. */
function unitOperand(name: string, op: string, unit: number, commutes: boolean): Pattern {
  return {
    name,
    op,
    match(n, g) {
      const [a, b] = n.inputs;
      if (splatValue(g, b) === unit) return sameAs(n, a);
      if (commutes && splatValue(g, a) === unit) return sameAs(n, b);
      return undefined;
    },
  };
}

/** ONNX Transpose: `perm` defaults to reversing the axes. */
function permOf(n: Node): readonly number[] | undefined {
  const p = n.attrs.perm;
  if (Array.isArray(p)) return p as readonly number[];
  const r = n.inputs[0]?.type.dims.length;
  return r === undefined ? undefined : Array.from({ length: r }, (_, i) => r - 1 - i);
}

function producerOf(g: Graph, v: Value | null, op: string): Node | undefined {
  const p = v ? g.producer(v) : undefined;
  return p?.op === op ? p : undefined;
}

/** `outer(inner(x))` is x when both only re-view the data and the final type is x's. */
function viewPair(name: string, outer: string, inner: string): Pattern {
  return {
    name,
    op: outer,
    match(n, g) {
      const p = producerOf(g, n.inputs[0], inner);
      return p ? sameAs(n, p.inputs[0]) : undefined;
    },
  };
}

// Note x + 0 turns -0 into +0; no inference result depends on the sign of a zero.
export const CANONICAL_PATTERNS: readonly Pattern[] = [
  { name: "identity", op: "Identity", match: (n) => sameAs(n, n.inputs[0]) },
  unitOperand("mul-one", "Mul", 1, true),
  unitOperand("add-zero", "Add", 0, true),
  unitOperand("sub-zero", "Sub", 0, false),
  unitOperand("div-one", "Div", 1, false),
  {
    name: "transpose-identity",
    op: "Transpose",
    match(n) {
      const perm = permOf(n);
      return perm?.every((p, i) => p === i) ? sameAs(n, n.inputs[0]) : undefined;
    },
  },
  {
    // y = T(T(x, p1), p2): y[i] = x[p1[p2[i]]], one Transpose with perm p1 ∘ p2.
    name: "transpose-transpose",
    op: "Transpose",
    match(n, g) {
      const inner = producerOf(g, n.inputs[0], "Transpose");
      const p1 = inner && permOf(inner);
      const p2 = permOf(n);
      if (!inner || !p1 || !p2 || p1.length !== p2.length) return undefined;
      const perm = p2.map((i) => p1[i]);
      return (gr: Graph) => {
        gr.setInput(n, 0, inner.inputs[0]);
        gr.setAttrs(n, { ...n.attrs, perm });
      };
    },
  },
  { name: "reshape-noop", op: "Reshape", match: (n) => sameAs(n, n.inputs[0]) },
  {
    // Reshape only reads its input's element count, except where a 0 copies an input dim.
    name: "reshape-reshape",
    op: "Reshape",
    match(n, g) {
      const inner = producerOf(g, n.inputs[0], "Reshape");
      const target = n.inputs[1] ? g.constants.get(n.inputs[1])?.data : undefined;
      if (!inner || !target || (n.attrs.allowzero !== 1 && target.data.includes(0))) return undefined;
      return (gr: Graph) => gr.setInput(n, 0, inner.inputs[0]);
    },
  },
  {
    name: "cast-noop",
    op: "Cast",
    match: (n) => (n.attrs.to === n.inputs[0]?.type.dtype ? sameAs(n, n.inputs[0]) : undefined),
  },
  viewPair("squeeze-unsqueeze", "Squeeze", "Unsqueeze"),
  viewPair("unsqueeze-squeeze", "Unsqueeze", "Squeeze"),
];

/** Local algebraic simplifications applied to a fixpoint; never changes a value's type. */
export const canonicalizePass: Pass = {
  name: "canonicalize",
  description:
    "local simplifications: Identity, x*1, x+0, Transpose pairs, no-op Reshape/Cast, Squeeze(Unsqueeze)",
  run(g, ctx) {
    return rewritePatterns(g, CANONICAL_PATTERNS, ctx.remarks);
  },
};
