import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { nodesOf } from "../passes/reduce-fixtures.js";
import { repoRoot } from "../util/helpers.js";

/**
 * Adaptive prunes come from prune policies with a `threshold` (passes/insert-token-pruning.ts,
 * which also makes constant Reshape targets of ONNX exports follow the data-dependent count).
 */

/** `g` with each prune's count output appended to the graph outputs (the per-example kept counts). */
export function withCounts(g: Graph): Graph {
  for (const p of nodesOf(g, "tokens.prune")) (g.outputs as unknown as unknown[]).push(p.outputs[2]);
  return g;
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
