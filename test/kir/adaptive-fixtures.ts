import { readFileSync } from "node:fs";
import { join } from "node:path";
import { computeKnown } from "../../compiler/infer.js";
import type { Graph, Node, Value } from "../../compiler/ir/graph.js";
import { symbolName } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { tensorType } from "../../compiler/ir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { assertValid } from "../../compiler/verify.js";
import { PassManager } from "../../passes/manager.js";
import { insertNode } from "../../passes/token-sites.js";
import { nodesOf } from "../passes/reduce-fixtures.js";
import { repoRoot } from "../util/helpers.js";

/**
 * Turns every static `tokens.prune` of `g` (from a prune policy) into an adaptive one with the
 * same scores: `threshold`, capacity = the static keep, and the count output. Reshape targets that
 * spell the static count as a constant (ONNX exports) read it from the pruned tensor's shape
 * instead (Shape -> Gather -> Concat), so they follow the data-dependent symbol.
 */
export function makeAdaptive(g: Graph, threshold: number): void {
  for (const p of nodesOf(g, "tokens.prune")) {
    const keep = p.attrs.keep;
    if (typeof keep !== "number") throw new Error("makeAdaptive needs a static numeric keep");
    const attrs = {
      threshold,
      capacity: keep,
      fuse: p.attrs.fuse ?? false,
      protect_first: p.attrs.protect_first ?? 0,
    };
    const a = insertNode(g, { before: p }, "tokens.prune", p.inputs, 3, attrs, {
      ...(p.scope ? { scope: p.scope } : {}),
      names: [`${p.outputs[0].name}_adaptive`],
    });
    const rows = keep + (attrs.fuse === true ? 1 : 0);
    // Every output moves (y, and the index a merge's sizes or a mask column follow).
    p.outputs.forEach((o, i) => g.replaceAllUses(o, a.outputs[i]));
    g.erase(p);
    followReshapes(g, a, rows);
  }
  new PassManager("shape-infer").run(g);
  assertValid(g);
}

/** Reshapes after `prune` whose constant target holds `rows` get the symbol from a Shape instead. */
function followReshapes(g: Graph, prune: Node, rows: number): void {
  const known = computeKnown(g);
  const y = prune.outputs[0];
  const k = symbolName(y.type.dims[1]);
  if (!k) throw new Error("adaptive prune without a symbol");
  const after = g.nodes.slice(g.nodes.indexOf(prune) + 1);
  const i64 = (name: string, vals: number[]): Value =>
    g.addConstant(
      tensorType("i64", [vals.length]),
      name,
      makeTensor("i64", [vals.length], Float64Array.from(vals)),
    );
  let shape: Value | undefined;
  for (const n of after.filter((m) => m.op === "Reshape")) {
    const target = known.get(n.inputs[1]!);
    if (!target || !target.includes(rows) || !g.constants.has(n.inputs[1]!)) continue;
    const at = { before: n };
    shape ??= insertNode(g, at, "Shape", [y], 1, {}, {}).outputs[0];
    const kv = insertNode(
      g,
      at,
      "Gather",
      [shape, i64(`${n.outputs[0].name}_k_at`, [1])],
      1,
      { axis: 0 },
      {},
    );
    const parts = target.map((d, i) =>
      d === rows ? kv.outputs[0] : i64(`${n.outputs[0].name}_t${i}`, [d as number]),
    );
    const cat = insertNode(g, at, "Concat", parts, 1, { axis: 0 }, {});
    g.setInput(n, 1, cat.outputs[0]);
  }
}

/** The leading `shape` box of `t` (outputs with a data-dependent dim come back at its capacity). */
export function leadingBox(t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.every((d, i) => d === shape[i])) return t;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let src = 0;
    let rest = i;
    let stride = 1;
    for (let a = shape.length - 1; a >= 0; a--) {
      src += (rest % shape[a]) * stride;
      rest = Math.floor(rest / shape[a]);
      stride *= t.shape[a];
    }
    data[i] = t.data[src];
  }
  return makeTensor(t.dtype, [...shape], data);
}

/**
 * examples/vit-tiny.tokr shrunk for interpreters: 48 px (9 patches + CLS = 10 tokens), width 32,
 * 2 heads, MLP 64, `depth` blocks, weights with std 0.3 (not 0.02) so attention, and with it the
 * kept count, differs between images.
 */
export function smallVit(depth: number): Graph {
  const src = readFileSync(join(repoRoot, "examples", "vit-tiny.tokr"), "utf8")
    .replace("img = 224", "img = 48")
    .replace("depth = 12", `depth = ${depth}`)
    .replace("dim = 192", "dim = 32")
    .replace("heads = 3", "heads = 2")
    .replace("mlp_dim = 768", "mlp_dim = 64")
    .replaceAll("std: 0.02", "std: 0.3");
  return compileTokr(src, "vit-tiny.tokr");
}
