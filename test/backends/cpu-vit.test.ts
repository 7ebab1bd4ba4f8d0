import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import ort from "onnxruntime-node";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { assertValid } from "../../compiler/verify.js";
import { argmaxRows, fmnistBatch, readIdxImages, readIdxLabels } from "../../examples/fmnist-vit/idx.js";
import { buildVit } from "../../examples/fmnist-vit/vit-ir.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { assertClose, repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");

// The real ViT written as IR, run by the reference backend, against onnxruntime-node on the exported ONNX model.
test("Fashion-MNIST ViT on the CPU backend matches onnxruntime-node within 1e-4", async () => {
  const g = buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
  assertValid(g);
  const imgs = readIdxImages(join(ex, "t500-images-idx3-ubyte.gz"));
  const labels = readIdxLabels(join(ex, "t500-labels-idx1-ubyte.gz"));
  const session = await ort.InferenceSession.create(join(ex, "vit_fmnist_opset17.onnx"));
  let ours = 0;
  let theirs = 0;
  const batch = 32;
  for (let s = 0; s < 64; s += batch) {
    const x = fmnistBatch(imgs, s, batch);
    const got = runGraph(g, new Map([["pixels", x]])).get("logits")!;
    const res = await session.run({
      pixels: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]),
    });
    const want = makeTensor("f32", [batch, 10], res.logits.data as Float32Array);
    assertClose(got, want, 1e-4, `logits of images ${s}..${s + batch}`);
    argmaxRows(got).forEach((p, i) => (ours += p === labels[s + i] ? 1 : 0));
    argmaxRows(want).forEach((p, i) => (theirs += p === labels[s + i] ? 1 : 0));
  }
  assert.equal(ours, theirs);
  assert.ok(ours >= 48, `accuracy on 64 images is ${ours}/64; the model reaches 84% on the test set`);
});

test("the ViT graph carries a symbolic batch: one graph serves batch 1 and batch 3", () => {
  const g = buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
  const imgs = readIdxImages(join(ex, "t500-images-idx3-ubyte.gz"));
  const three = runGraph(g, new Map([["pixels", fmnistBatch(imgs, 0, 3)]])).get("logits")!;
  const one = runGraph(g, new Map([["pixels", fmnistBatch(imgs, 2, 1)]])).get("logits")!;
  assert.deepEqual([...three.shape], [3, 10]);
  assertClose(one, makeTensor("f32", [1, 10], three.data.slice(20, 30)), 1e-6, "image 2 alone vs in a batch");
});
