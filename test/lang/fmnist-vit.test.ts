import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import ort from "onnxruntime-node";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { bindWeights, unboundRefs } from "../../compiler/cli/load.js";
import { main } from "../../compiler/cli/main.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { assertValid } from "../../compiler/verify.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import { assertClose, repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
const onnx = join(ex, "vit_fmnist_opset17.onnx");

// vit.tokr with weights from `tokr import --weights-out`, on the CPU backend, against onnxruntime-node.
test("vit.tokr bound to the ONNX model's initializers matches onnxruntime-node within 1e-4", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tokr-vit-"));
  try {
    const wfile = join(dir, "w.safetensors");
    const err: string[] = [];
    const code = await main(["import", onnx, "--weights-out", wfile], {
      stdout: () => {},
      stderr: (t) => err.push(t),
    });
    assert.equal(code, 0, err.join(""));
    const weights = readSafetensorsFile(wfile);
    // Keys are the ONNX initializer names: PyTorch names, plus the exporter's pre-transposed MatMul weights.
    const torch = readSafetensorsFile(join(ex, "vit_fmnist.safetensors"));
    assert.deepEqual(weights.get("heads.head.weight")!.data, torch.get("heads.head.weight")!.data);
    const inProj = torch.get("encoder.layers.encoder_layer_0.self_attention.in_proj_weight")!; // [192, 64]
    const t817 = weights.get("onnx::MatMul_817")!; // [64, 192] = its transpose
    assert.deepEqual([...t817.shape], [64, 192]);
    assert.equal(t817.data[5 * 192 + 7], inProj.data[7 * 64 + 5]);

    const g = compileTokr(readFileSync(join(ex, "vit.tokr"), "utf8"), "vit.tokr");
    // 8 model parameters, 12 per layer (4 in attn, 4 in mlp, 4 layernorm).
    assert.equal(bindWeights(g, weights, "w.safetensors"), 8 + 6 * 12);
    assert.deepEqual(unboundRefs(g), []);
    assertValid(g);

    const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, 8);
    const got = runGraph(g, new Map([["pixels", x]])).get("logits")!;
    const session = await ort.InferenceSession.create(onnx);
    const res = await session.run({
      pixels: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]),
    });
    assertClose(
      got,
      makeTensor("f32", [8, 10], res.logits.data as Float32Array),
      1e-4,
      "logits of images 0..8",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
