/**
 * Generic kernels on the devices: the Fashion-MNIST ViT reduced by a ToMe schedule (a different
 * static token count per block) scheduled with one kernel per class of units, each step binding
 * its own counts, run on WebGPU (Dawn + lavapipe) and on the CUDA emulator against the CPU
 * reference. Skips only without an adapter / g++ (with the reason).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, emulateProgram } from "../../backends/cuda/program.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { missingTools } from "../../backends/cuda/toolchain.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { compileVariant } from "../../bench/fmnist-eval.js";
import { fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { compileProgram } from "../../runtime/artifact.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { repoRoot, skipUnlessRequired } from "../util/helpers.js";

const ex = join(repoRoot, "examples", "fmnist-vit");
const policy = join(repoRoot, "bench", "policies", "tome-sched-48-40-16-8.tokr");
const v = compileVariant(join(ex, "vit_fmnist_opset17.onnx"), "tome", {
  source: readFileSync(policy, "utf8"),
  file: policy,
});
const x = fmnistBatch(readIdxImages(join(ex, "t500-images-idx3-ubyte.gz")), 0, 2);
const feeds = new Map([[v.graph.inputs[0].name, x]]);
const out = v.graph.outputs[0].name;
const want = runGraph(v.graph, feeds).get(out)!;

function assertClose(got: Tensor, tol: number): void {
  assert.deepEqual([...got.shape], [...want.shape]);
  let m = 0;
  for (let i = 0; i < got.data.length; i++) m = Math.max(m, Math.abs(got.data[i] - want.data[i]));
  assert.ok(m < tol, `max |diff| ${m}`);
}

test("WebGPU: the reduced ViT with generic kernels equals the reference", async (t) => {
  const rt = await gpuRuntime();
  if (typeof rt === "string") return t.skip(rt);
  const p = buildProgram(v.graph, rt.target);
  const perShape = buildProgram(v.graph, rt.target, { genericKernels: false });
  assert.ok(
    p.kernels.length * 2 <= perShape.kernels.length,
    `${p.kernels.length} vs ${perShape.kernels.length}`,
  );
  assert.ok(p.steps.some((s) => s.bind !== undefined));
  const prog = await rt.load(compileProgram(p, "wgsl", rt.target, renderWgsl));
  try {
    assertClose((await prog.run(feeds)).get(out)!, 1e-3);
  } finally {
    prog.destroy();
  }
});

const missing = missingTools();
const skipEmu = skipUnlessRequired(
  missing.some((m) => m.startsWith("g++")) ? `needs g++: ${missing.join("; ")}` : false,
);

test("CUDA emulator: the reduced ViT with generic kernels equals the reference", { skip: skipEmu }, () => {
  const p = buildProgram(v.graph, CUDA_TARGET);
  assert.ok(p.steps.some((s) => s.bind !== undefined));
  const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-generic-"));
  try {
    const a = compileCudaProgram(p, dir, { nvcc: false });
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as {
      steps: { bind?: Record<string, number> }[];
    };
    assert.deepEqual(
      manifest.steps.map((s) => s.bind ?? null),
      p.steps.map((s) => s.bind ?? null),
    );
    const emu = buildEmulator(readFileSync(a.cu, "utf8"));
    assertClose(emulateProgram(emu, p, feeds).get(out)!, 1e-3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
