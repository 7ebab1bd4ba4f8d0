import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Graph, Node } from "../../compiler/ir/graph.js";
import { attachPolicyFile, compileTokr } from "../../compiler/lang/check.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { PassManager } from "../../passes/manager.js";
import { repoRoot } from "../util/helpers.js";

/** Shared fixtures of the token-reduction tests (test/passes/reduce-*.test.ts). */

export const fmnistDir = join(repoRoot, "examples", "fmnist-vit");

/** examples/vit-tiny.tokr at a small size: `img` pixels (16-pixel patches), `depth` blocks. */
export function vitTiny(img: number, depth: number): Graph {
  const src = readFileSync(join(repoRoot, "examples", "vit-tiny.tokr"), "utf8")
    .replace("img = 224", `img = ${img}`)
    .replace("depth = 12", `depth = ${depth}`);
  return compileTokr(src, "vit-tiny.tokr");
}

/** The Fashion-MNIST ViT imported from ONNX with its blocks named (`onnx-structure`). */
export function fmnistVit(): Graph {
  const g = importOnnxFile(join(fmnistDir, "vit_fmnist_opset17.onnx"), "vit.onnx");
  new PassManager("onnx-structure").run(g);
  return g;
}

/** Attaches `policy p { RULES }` and runs the `reduce` pipeline (verifying after every pass). */
export function reduce(g: Graph, ...rules: string[]): PassManager {
  attachPolicyFile(g, `policy p {\n${rules.map((r) => `  ${r}\n`).join("")}}\n`, "p.tokr");
  const pm = new PassManager("reduce");
  pm.run(g);
  return pm;
}

/** Key counts of the attentions, in graph order. */
export function attentionTokens(g: Graph): unknown[] {
  return g.nodes.filter((n) => n.op === "attention").map((n) => n.inputs[1]!.type.dims[2]);
}

export function nodesOf(g: Graph, op: string): Node[] {
  return g.nodes.filter((n) => n.op === op);
}

/** A deterministic image batch for the small ViT. */
export function images(b: number, img: number): Tensor {
  const n = b * 3 * img * img;
  return makeTensor(
    "f32",
    [b, 3, img, img],
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)),
  );
}
