/**
 * Adaptive pruning on WGSL (Dawn + lavapipe) and on emulated CUDA (the small program also built
 * with nvcc when it is installed), against the CPU reference on
 * the live rows: the graph cases of cases/adaptive.ts (attention after an adaptive prune with every
 * importance kind, causal, EViT fuse), a small ViT and the imported Fashion-MNIST ViT with an
 * adaptive prune (capacity 99 of 197 tokens) at block 3. See docs/backends.md, "Adaptive token counts".
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { buildEmulator } from "../../backends/cuda/cpu.js";
import { compileCudaProgram, emulateProgram } from "../../backends/cuda/program.js";
import { CUDA_TARGET } from "../../backends/cuda/target.js";
import { compileFatbinAsync } from "../../backends/cuda/nvcc.js";
import { findNvcc, missingTools } from "../../backends/cuda/toolchain.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Graph } from "../../compiler/ir/graph.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { argmaxRows, fmnistBatch, readIdxImages } from "../../examples/fmnist-vit/idx.js";
import { compileProgram } from "../../runtime/artifact.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { leadingBox, smallVit, withCounts } from "../kir/adaptive-fixtures.js";
import { fmnistDir, fmnistVit, images, reduce } from "../passes/reduce-fixtures.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { assertClose, skipUnlessRequired } from "../util/helpers.js";
import { adaptiveReference, allAdaptiveCases } from "./cases/adaptive.js";

/** The small ViT (10 tokens) with an adaptive prune at block 1: counts 5, 4, 4 of capacity 7. */
function smallAdaptive(): { graph: Graph; feeds: Map<string, Tensor> } {
  const g = smallVit(3);
  reduce(g, "blocks.1.layer: prune(threshold: 0.08, keep: 0.7, protect: 1)");
  return { graph: withCounts(g), feeds: new Map([[g.inputs[0].name, images(3, 48)]]) };
}

/** The imported ViT with an adaptive prune at block 3 (capacity 99): counts 71, 39, 24 on images 0..2. */
function fmnistAdaptive(): { graph: Graph; feeds: Map<string, Tensor> } {
  const g = fmnistVit();
  reduce(g, "blocks.3: prune(threshold: 0.005, keep: 0.5, protect: 1)");
  const x = fmnistBatch(readIdxImages(join(fmnistDir, "t500-images-idx3-ubyte.gz")), 0, 3);
  return { graph: withCounts(g), feeds: new Map([["pixels", x]]) };
}

/** Every reference output matches on its live rows; counts are below the capacity and unequal. */
function check(
  g: Graph,
  got: ReadonlyMap<string, Tensor>,
  want: ReadonlyMap<string, Tensor>,
  tol: number,
  what: string,
): void {
  for (const [name, w] of want) assertClose(leadingBox(got.get(name)!, w.shape), w, tol, `${name} (${what})`);
  const counts = g.outputs
    .filter((o) => o.type.dtype === "i32")
    .map((o) => Array.from(want.get(o.name)!.data));
  for (const c of counts) assert.ok(new Set(c).size > 1, `counts ${c} differ across the batch`);
  const logits = want.get("logits");
  if (logits) assert.deepEqual(argmaxRows(got.get("logits")!), argmaxRows(logits), `top-1 (${what})`);
}

const cases = allAdaptiveCases();

describe("adaptive token counts on WGSL", () => {
  let rt: WebGpuRuntime | string = "not started";
  before(async () => {
    rt = await gpuRuntime();
    if (typeof rt === "string") console.log(`# skipping adaptive WGSL runs: ${rt}`);
  });

  async function runGpu(
    r: WebGpuRuntime,
    g: Graph,
    feeds: ReadonlyMap<string, Tensor>,
    matmul = r.target.matmul,
  ): Promise<Map<string, Tensor>> {
    const target = { ...r.target, matmul };
    const program = await r.load(compileProgram(buildProgram(g, target), "wgsl", target, renderWgsl));
    try {
      return await program.run(feeds);
    } finally {
      program.destroy();
    }
  }

  for (const [name, load, tol] of [
    ["graph cases (attention cls/colsum/graph, causal, fuse; a second prune)", () => cases, 1e-4],
    ["small ViT, adaptive prune at block 1", smallAdaptive, 1e-4],
    ["Fashion-MNIST ViT (ONNX), adaptive prune at block 3", fmnistAdaptive, 1e-3],
  ] as const)
    it(name, async (t) => {
      if (typeof rt === "string") return t.skip(rt);
      const { graph, feeds } = load();
      const want = runGraph(graph, feeds);
      check(graph, await runGpu(rt, graph, feeds), want, tol, "wgsl");
    });

  // Tiled targets take the workgroup attention: its barriers sit in loops bounded by the live length.
  it("graph cases with the workgroup attention (tiled target)", async (t) => {
    if (typeof rt === "string") return t.skip(rt);
    const want = adaptiveReference(cases);
    check(cases.graph, await runGpu(rt, cases.graph, cases.feeds, "tiled"), want, 1e-4, "wgsl tiled");
  });
});

const gxx = missingTools().filter((m) => m.startsWith("g++"));
const skipEmu = skipUnlessRequired(gxx.length ? `needs g++: ${gxx.join("; ")}` : false);
const skipNvcc = skipUnlessRequired(findNvcc() ? false : "nvcc not found (set CUDA_HOME)");

describe("adaptive token counts on emulated CUDA (both thread orders)", { skip: skipEmu }, () => {
  for (const [name, load, tol] of [
    ["graph cases (attention cls/colsum/graph, causal, fuse; a second prune)", () => cases, 1e-4],
    ["Fashion-MNIST ViT (ONNX), adaptive prune at block 3", fmnistAdaptive, 1e-3],
  ] as const)
    it(name, async () => {
      const { graph, feeds } = load();
      const small = name.startsWith("graph");
      const want = small ? adaptiveReference(cases) : runGraph(graph, feeds);
      const p = buildProgram(graph, CUDA_TARGET);
      const dir = mkdtempSync(join(tmpdir(), "tokr-cuda-adaptive-"));
      const cu = compileCudaProgram(p, dir, { nvcc: false }).cu;
      // The small program's .cu also builds with nvcc (the count-buffer parameters included).
      const fatbin = small && !skipNvcc ? compileFatbinAsync(cu) : undefined;
      try {
        const emu = buildEmulator(readFileSync(cu, "utf8"));
        for (const order of ["forward", "reverse"] as const)
          check(graph, emulateProgram(emu, p, feeds, order), want, tol, `cuda emulated, ${order}`);
      } finally {
        const r = await fatbin; // before rmSync: nvcc reads the directory
        if (r) assert.ok(existsSync(r.fatbinPath), "nvcc wrote the fatbin");
        rmSync(dir, { recursive: true, force: true });
      }
    });
});
