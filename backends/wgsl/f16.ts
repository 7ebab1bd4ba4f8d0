/**
 * The `--f16` compile option: the graph's f32 tensors (weights and activations) become f16, so a
 * target with `f16` stores and computes them in f16. The IR stays the source of truth (the CPU
 * reference runs the converted graph too); the signature does not change: f32 inputs are cast to
 * f16 by the first nodes and f16 results back to f32 under the outputs' own names.
 */
import { computeKnown, inferNode, symbolicValue } from "../../compiler/infer.js";
import type { Attrs } from "../../compiler/ir/attrs.js";
import { formatLoc, Graph, type Node, type Value } from "../../compiler/ir/graph.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { tensorType, type TensorType } from "../../compiler/ir/types.js";
import "../../compiler/ops/index.js";
import { getOp, OpError } from "../../compiler/ops/registry.js";

export class F16Error extends Error {}

const half = (t: TensorType): TensorType => (t.dtype === "f32" ? { ...t, dtype: "f16" } : t);

/** Dtype attributes that say f32 (Cast `to`, ConstantOfShape `dtype`) say f16. */
function halfAttrs(n: Node): Attrs {
  const spec = getOp(n.op)?.attrs ?? {};
  const out: Record<string, Attrs[string]> = { ...n.attrs };
  for (const [k, v] of Object.entries(n.attrs)) if (spec[k]?.kind === "dtype" && v === "f32") out[k] = "f16";
  return out;
}

function where(n: Node): string {
  const loc = formatLoc(n.loc);
  return `${loc ? `${loc}: ` : ""}node %${n.outputs[0]?.name ?? n.id}${n.scope ? ` in ${n.scope}` : ""} (${n.op})`;
}

/**
 * A copy of `g` computing in f16 wherever it computed in f32. Constants must hold their data
 * (bind weights first); types are re-inferred node by node, so an op that cannot take f16 fails
 * here naming the node.
 */
export function toF16(g: Graph): Graph {
  const ng = new Graph(g.name);
  for (const s of g.symbols.values()) ng.declareSymbol(s);
  for (const [k, p] of g.policies) ng.policies.set(k, p);
  const map = new Map<Value, Value>();
  const outputs = new Set(g.outputs);
  const casts: { from: Value; to: Value }[] = [];
  // Graph inputs returned as outputs are returned as they came in (not as their f16 cast).
  const asInput = new Map<Value, Value>();
  for (const v of g.inputs) {
    const nv = ng.addInput(v.type, v.name);
    map.set(v, nv);
    asInput.set(v, nv);
  }
  for (const [v, c] of g.constants) {
    if (v.type.dtype !== "f32") {
      map.set(v, ng.addConstant(v.type, v.name, c.data, c.ref));
      continue;
    }
    if (!c.data)
      throw new F16Error(`constant %${v.name} has no data (ref "${c.ref}"): bind its weights before --f16`);
    // A constant that is also a graph output keeps its name for the f32 cast back (below).
    const name = outputs.has(v) ? `${v.name}_f16` : v.name;
    map.set(v, ng.addConstant(half(v.type), name, makeTensor("f16", c.data.shape, c.data.data)));
    if (outputs.has(v)) casts.push({ from: v, to: map.get(v)! });
  }
  const known = computeKnown(ng);
  for (const v of g.inputs)
    if (v.type.dtype === "f32") {
      const n = ng.addNode(
        "Cast",
        [map.get(v)!],
        [half(v.type)],
        { to: "f16" },
        { names: [`${v.name}_f16`] },
      );
      map.set(v, n.outputs[0]);
    }
  for (const n of g.nodes) {
    const def = getOp(n.op);
    if (!def) throw new F16Error(`${where(n)}: unknown op`);
    const inputs = n.inputs.map((v) => (v ? map.get(v)! : null));
    const attrs = halfAttrs(n);
    let types: TensorType[];
    try {
      types = inferNode(ng, def, { op: n.op, attrs, inputs, outputs: n.outputs }, n.outputs.length, {
        known,
        dataDims: "declared",
      });
    } catch (e) {
      if (e instanceof OpError) throw new F16Error(`${where(n)}: in f16: ${e.message}`);
      throw e;
    }
    // Results keep their axes roles; graph outputs that turned f16 get a cast back (below).
    types = types.map((t, i) => tensorType(t.dtype, t.dims, n.outputs[i].type.axes));
    const names = n.outputs.map((o, i) =>
      outputs.has(o) && types[i].dtype !== o.type.dtype ? `${o.name}_f16` : o.name,
    );
    const m = ng.addNode(n.op, inputs, types, attrs, {
      names,
      ...(n.policy !== undefined ? { policy: n.policy } : {}),
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
      ...(n.loc !== undefined ? { loc: n.loc } : {}),
    });
    const sv = symbolicValue(ng, def, m, { known, dataDims: "declared" });
    if (sv) known.set(m.outputs[0], sv);
    n.outputs.forEach((o, i) => {
      map.set(o, m.outputs[i]);
      if (names[i] !== o.name) casts.push({ from: o, to: m.outputs[i] });
    });
  }
  const back = new Map<Value, Value>();
  for (const { from, to } of casts) {
    const n = ng.addNode("Cast", [to], [from.type], { to: from.type.dtype }, { names: [from.name] });
    back.set(from, n.outputs[0]);
  }
  for (const v of g.outputs) ng.outputs.push(asInput.get(v) ?? back.get(v) ?? map.get(v)!);
  return ng;
}
