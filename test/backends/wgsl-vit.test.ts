/**
 * The Fashion-MNIST ViT end to end on WebGPU (Dawn + lavapipe in CI): the graph written as IR
 * from the safetensors, and the exported ONNX model after the onnx-structure pipeline, scheduled
 * with `buildProgram` for the device and run on a fixed batch of test images; the logits match
 * the CPU reference interpreter and the predictions are identical. Skips (with the reason) only
 * when there is no adapter; an op without a kernel fails with the scheduler's error.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { importOnnxFile } from "../../compiler/onnx/import.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { buildVit } from "../../examples/fmnist-vit/vit-ir.js";
import { PassManager } from "../../passes/manager.js";
import "../../passes/index.js";
import { compileProgram } from "../../runtime/artifact.js";
import { readSafetensorsFile } from "../../runtime/node-io.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { repoRoot } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
/** Images 0..7 of the bundled test subset, one batch of 8. */
const FIRST = 0;
const BATCH = 8;

function irVit(): Graph {
  return buildVit(readSafetensorsFile(join(ex, "vit_fmnist.safetensors")));
}

function onnxVit(): Graph {
  const g = importOnnxFile(join(ex, "vit_fmnist_opset17.onnx"), "vit_fmnist_opset17.onnx");
  new PassManager("onnx-structure").run(g);
  return g;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

/** Schedules `g` for the device, runs the batch, returns the logits. */
async function runOnGpu(rt: WebGpuRuntime, g: Graph, x: Tensor): Promise<Tensor> {
  const program = await rt.load(compileProgram(buildProgram(g, rt.target), "wgsl", rt.target, renderWgsl));
  try {
    const out = await program.run(new Map([[g.inputs[0].name, x]]));
    return out.get(g.outputs[0].name)!;
  } finally {
    program.destroy();
  }
}

let rt: WebGpuRuntime | string = "not started";
let pixels: Tensor;

describe("Fashion-MNIST ViT on WebGPU", () => {
  before(async () => {
    rt = await gpuRuntime({ f16: true });
    if (typeof rt === "string") console.log(`# skipping the WGSL ViT: ${rt}`);
    pixels = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), FIRST, BATCH);
  });

  for (const [name, load] of [
    ["IR from safetensors (vit-ir.ts)", irVit],
    ["ONNX import + onnx-structure", onnxVit],
  ] as const)
    it(`${name}: logits within 1e-3 of the CPU reference, same predictions`, async (t) => {
      if (typeof rt === "string") return t.skip(rt);
      const g = load();
      const want = runGraph(g, new Map([[g.inputs[0].name, pixels]])).get(g.outputs[0].name)!;
      const got = await runOnGpu(rt, g, pixels);
      const diff = maxAbsDiff(got, want);
      console.log(`# ${name}: max |logit diff| vs CPU ${diff.toExponential(2)} (batch ${BATCH})`);
      assert.ok(diff <= 1e-3, `max |diff| ${diff}`);
      assert.deepEqual(argmaxRows(got), argmaxRows(want));
    });
});
