import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import ort from "onnxruntime-node";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { printType } from "../../compiler/ir/types.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { assertValid } from "../../compiler/verify.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { assertClose, repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
const model = join(ex, "vit_fmnist_opset17.onnx");

// The real exported ViT, imported as is, run by the reference backend, against onnxruntime-node.
test("the imported Fashion-MNIST ViT verifies and matches onnxruntime-node within 1e-4 on 16 images", async () => {
  const g = importOnnxFile(model, "vit.onnx");
  assertValid(g);
  assert.deepEqual(
    g.inputs.map((v) => `${v.name}: ${printType(v.type)}`),
    ["pixels: f32[batch, 1, 28, 28]"],
  );
  assert.deepEqual(
    g.outputs.map((v) => `${v.name}: ${printType(v.type)}`),
    ["logits: f32[batch, 10]"],
  );
  assert.ok(g.nodes.every((n) => n.loc?.file === "vit.onnx" && typeof n.loc.node === "string"));
  assert.ok(g.nodes.some((n) => n.loc?.node === "/conv_proj/Conv"));
  const imgs = readIdxImages(join(ex, "t500-images-idx3-ubyte.gz"));
  const session = await ort.InferenceSession.create(model);
  const x = fmnistBatch(imgs, 100, 16);
  const got = runGraph(g, new Map([["pixels", x]])).get("logits")!;
  const res = await session.run({ pixels: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) });
  const want = makeTensor("f32", [16, 10], res.logits.data as Float32Array);
  assertClose(got, want, 1e-4, "logits of images 100..116");
});
