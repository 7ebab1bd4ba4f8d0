// FLOPs ratio (graphReport at batch 1, as bench/fidelity.ts counts it) and tokens entering each block of
// the Fashion-MNIST ViT under policies written inline, for a quick look before a fidelity run. Usage:
//   node --import tsx bench/policy-flops.ts "blocks[0..5]: merge(schedule: [48, 40, 16, 8, 0, 0])" ...
// Each argument is the body of one policy (rules separated by ";").
import { join } from "node:path";
import { repoRootFrom } from "../scripts/paths.js";
import { compileVariant, firstLine } from "./fmnist-eval.js";

const onnx = join(repoRootFrom(import.meta.url), "examples", "fmnist-vit", "vit_fmnist_opset17.onnx");
const base = compileVariant(onnx, "unreduced");
for (const body of process.argv.slice(2)) {
  try {
    const source = `policy p {\n  ${body.split(";").join("\n  ")}\n}\n`;
    const v = compileVariant(onnx, "p", { source, file: "<arg>" });
    console.log(`${(v.flops / base.flops).toFixed(5)}  tokens ${v.tokens.join(", ")}  ${body}`);
  } catch (e) {
    console.log(`error  ${body}: ${firstLine(e)}`);
  }
}
