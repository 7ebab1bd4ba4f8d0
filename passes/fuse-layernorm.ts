import type { Graph, Node, Value } from "../compiler/ir/graph.js";
import { isFloat } from "../compiler/ir/dtype.js";
import type { Pass } from "./manager.js";
import { constScalar, insertInferred, producerOp, soleUser } from "./match.js";
import { eraseDeadProducers, type Pattern, rewritePatterns } from "./rewrite.js";

/** The axes a keepdims ReduceMean reduces (attribute or constant input), normalised and sorted. */
function meanAxes(g: Graph, n: Node): number[] | undefined {
  if (n.attrs.keepdims === 0) return undefined;
  const r = n.inputs[0]?.type.dims.length ?? 0;
  const a = n.inputs[1];
  const raw = a ? g.constants.get(a)?.data?.data : (n.attrs.axes as readonly number[] | undefined);
  if (!raw || raw.length === 0) return undefined;
  return Array.from(raw, (x) => (x < 0 ? x + r : x)).sort((p, q) => p - q);
}

/** True when `axes` is the suffix [r-k, r) of a rank-r tensor (what LayerNormalization normalises). */
function isSuffix(axes: readonly number[], r: number): boolean {
  return axes.every((a, i) => a === r - axes.length + i);
}

/** A constant whose shape fits the normalised dims (so it broadcasts as LayerNormalization's scale/bias). */
function affineParam(g: Graph, v: Value | null | undefined, k: number): boolean {
  return !!v && g.constants.has(v) && v.type.dims.length <= k && isFloat(v.type.dtype);
}

/**
 * `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta]` → LayerNormalization,
 * matched on the Div. Both means must reduce the same trailing axes with keepdims, the square is
 * `Pow(d, 2)` of the same difference `d`, and eps a positive scalar constant.
 */
const layerNormPattern: Pattern = {
  name: "fuse-layernorm",
  op: "Div",
  match(div, g) {
    const [d, std] = div.inputs;
    const sub = producerOp(g, d, "Sub");
    const sqrt = producerOp(g, std, "Sqrt");
    const addEps = sqrt && producerOp(g, sqrt.inputs[0], "Add");
    if (!sub || !sqrt || !addEps || !d) return undefined;
    const [x, mean] = sub.inputs;
    const m1 = producerOp(g, mean, "ReduceMean");
    if (!x || !m1 || m1.inputs[0] !== x) return undefined;
    const epsIdx = constScalar(g, addEps.inputs[1]) !== undefined ? 1 : 0;
    const eps = constScalar(g, addEps.inputs[epsIdx]);
    const m2 = producerOp(g, addEps.inputs[1 - epsIdx], "ReduceMean");
    const pow = m2 && producerOp(g, m2.inputs[0], "Pow");
    if (eps === undefined || !(eps > 0) || !pow || pow.inputs[0] !== d || constScalar(g, pow.inputs[1]) !== 2)
      return undefined;
    if (addEps.inputs[epsIdx]!.type.dims.length > 0 && addEps.inputs[epsIdx]!.type.dims.some((k) => k !== 1))
      return undefined;
    const r = x.type.dims.length;
    const ax1 = meanAxes(g, m1);
    const ax2 = meanAxes(g, m2);
    if (!ax1 || !ax2 || ax1.join() !== ax2.join() || !isSuffix(ax1, r) || !isFloat(x.type.dtype))
      return undefined;
    // Optional affine tail, each step the single user of the previous.
    let out: Node = div;
    let scale: Value | null = null;
    let bias: Value | null = null;
    const mul = soleUser(g, out.outputs[0]);
    const pick = (n: Node | undefined, op: string): Value | undefined => {
      if (n?.op !== op) return undefined;
      const o =
        n.inputs[0] === out.outputs[0] ? n.inputs[1] : n.inputs[1] === out.outputs[0] ? n.inputs[0] : null;
      return affineParam(g, o, ax1.length) ? o! : undefined;
    };
    const s = pick(mul, "Mul");
    if (s && mul) {
      scale = s;
      out = mul;
      const b = pick(soleUser(g, out.outputs[0]), "Add");
      if (b) {
        bias = b;
        out = soleUser(g, out.outputs[0])!;
      }
    }
    const last = out;
    return (g: Graph) => {
      const attrs = { axis: r - ax1.length, epsilon: eps };
      const opts = last.scope ? { scope: last.scope } : {};
      const ln = insertInferred(g, last, "LayerNormalization", [x, scale, bias], attrs, opts);
      if (!scale && bias) throw new Error("unreachable: bias without scale");
      g.replaceAllUses(last.outputs[0], ln.outputs[0]);
      eraseDeadProducers(g, [last.outputs[0]]);
    };
  },
};

/** Fuses the exported LayerNorm expansion into LayerNormalization. */
export const fuseLayerNormPass: Pass = {
  name: "fuse-layernorm",
  description: "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add] → LayerNormalization",
  run(g, ctx) {
    return rewritePatterns(g, [layerNormPattern], ctx.remarks);
  },
};
